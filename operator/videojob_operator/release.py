"""`videojob-operator release`: the chart's pre-delete hook, so that uninstalling never leaves a
finalizer behind.

Helm keeps custom resources on uninstall, so the VideoJobs stay; but their finalizer
(`videojob.dev/cancel`) would have no operator left to remove it, and neither they nor their
namespace could ever be deleted. Before the release goes, this:

0. deletes the binding of the chart's policy that adds the finalizer to each VideoJob as it is
   created (`--finalizer-policy-binding`; finalizer-policy.yaml), so none created from now on
   gets one;
1. scales the operator's Deployment to 0 and waits until no replica is left (a running operator
   adds its finalizer back at the next reconcile of each VideoJob it sees change);
2. removes the operator's finalizer from every VideoJob of the namespaces it served, each patch
   with the resourceVersion it read (a conflict is read again and retried).

The VideoJobs stay as they are, with their Jobs: deleting one later deletes its Jobs by garbage
collection (they are owned by it). An operator installed again adds its finalizer back and
carries on from their status.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any, cast

from kubernetes import client
from kubernetes.client import ApiException

from videojob_common.pipeline import Obj

from . import logs
from .api import FINALIZER, GROUP, PLURAL, VERSION
from .kube import api_client

log = logging.getLogger("videojob.release")

ATTEMPTS = 5  # reads and patches of one VideoJob that keeps changing


def without_finalizer(vj: Obj) -> Obj | None:
    """The merge patch that removes the operator's finalizer from `vj`, for the version read;
    None if it has none."""
    meta = vj["metadata"]
    finalizers = meta.get("finalizers") or []
    if FINALIZER not in finalizers:
        return None
    return {"metadata": {"finalizers": [f for f in finalizers if f != FINALIZER],
                         "resourceVersion": meta["resourceVersion"]}}


def unbind_finalizer_policy(admission: client.AdmissionregistrationV1Api, name: str) -> None:
    """The binding of the policy that adds the finalizer at creation deleted (gone already: the
    same)."""
    try:
        admission.delete_mutating_admission_policy_binding(name)
        log.info("deleted MutatingAdmissionPolicyBinding %s", name)
    except ApiException as e:
        if e.status != 404:
            raise


def stop_operator(apps: client.AppsV1Api, namespace: str, name: str, timeout: float) -> None:
    """The operator's Deployment at 0 replicas, and none of them left (or no Deployment)."""
    try:
        apps.patch_namespaced_deployment(name, namespace, {"spec": {"replicas": 0}})
    except ApiException as e:
        if e.status == 404:
            return
        raise
    deadline = time.monotonic() + timeout
    while True:
        dep: Any = apps.read_namespaced_deployment(name, namespace)
        replicas = dep.status.replicas or 0
        if not replicas and (dep.status.observed_generation or 0) >= (
                dep.metadata.generation or 0):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the operator ({namespace}/{name}) still has {replicas} "
                               f"replica(s) after {timeout:.0f} s")
        time.sleep(1)


def release_all(custom: client.CustomObjectsApi, namespaces: list[str]) -> int:
    """Removes the finalizer from every VideoJob in `namespaces` (all if empty); how many."""
    listings: list[Any] = (
        [custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL) for ns in namespaces]
        if namespaces else [custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)])
    released = 0
    for listing in listings:
        for vj in listing["items"]:
            released += release_one(custom, vj)
    return released


def release_one(custom: client.CustomObjectsApi, vj: Obj) -> int:
    meta = vj["metadata"]
    ns, name = meta["namespace"], meta["name"]
    for _ in range(ATTEMPTS):
        patch = without_finalizer(vj)
        if patch is None:
            return 0
        try:
            custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, patch)
            log.info("finalizer removed from VideoJob %s/%s", ns, name)
            return 1
        except ApiException as e:
            if e.status == 404:
                return 0
            if e.status != 409:
                raise
        try:
            vj = cast(Obj, custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name))
        except ApiException as e:
            if e.status == 404:
                return 0
            raise
    raise RuntimeError(f"VideoJob {ns}/{name} kept changing; its finalizer is still there")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="videojob-operator release", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deployment", required=True, metavar="NAMESPACE/NAME",
                        help="the operator's Deployment, scaled to 0 first")
    parser.add_argument("-n", "--namespace", action="append", default=[],
                        help="a namespace the operator served (repeatable); default: all")
    parser.add_argument("--finalizer-policy-binding", default="", metavar="NAME",
                        help="the MutatingAdmissionPolicyBinding that adds the finalizer at "
                             "creation, deleted first (none: nothing to delete)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for the operator's replicas to go")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds in a row with no finalizer found before it ends")
    args = parser.parse_args(argv)
    logs.setup("INFO")
    namespace, _, name = args.deployment.partition("/")
    if not namespace or not name:
        parser.error("--deployment: expected NAMESPACE/NAME")
    api = api_client()
    if args.finalizer_policy_binding:
        unbind_finalizer_policy(client.AdmissionregistrationV1Api(api),
                                args.finalizer_policy_binding)
    stop_operator(client.AppsV1Api(api), namespace, name, args.timeout)
    custom = client.CustomObjectsApi(api)
    released = release_all(custom, list(args.namespace))
    # A replica still shutting down may have added the finalizer back in its last reconcile:
    # look again until `--settle` seconds in a row find none.
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < args.settle:
        time.sleep(1)
        again = release_all(custom, list(args.namespace))
        if again:
            released += again
            quiet_since = time.monotonic()
    log.info("operator stopped; finalizer removed from %d VideoJob(s)", released)
    return 0
