"""Creating VideoJobs and waiting on them through watches with deadlines."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from videojob_testkit.kube import Cluster, wait_for

GROUP, VERSION, PLURAL = "videojob.dev", "v1alpha1", "videojobs"


def custom(cluster: Cluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api)


def create(cluster: Cluster, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob",
            "metadata": {"name": name}, "spec": spec}
    obj: dict[str, Any] = custom(cluster).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body)
    return obj


def get(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = custom(cluster).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name)
    return obj


def patch_spec(cluster: Cluster, namespace: str, name: str, **spec: Any) -> None:
    custom(cluster).patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                   {"spec": spec})


def delete(cluster: Cluster, namespace: str, name: str) -> None:
    custom(cluster).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


class _Items:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.items = doc.get("items", [])
        self.metadata = client.V1ListMeta(resource_version=doc["metadata"]["resourceVersion"])


def wait(cluster: Cluster, namespace: str, name: str, predicate: Any, timeout: float = 120,
         what: str = "") -> dict[str, Any]:
    """The VideoJob once `predicate(obj)` holds, watching until `timeout`."""
    api = custom(cluster)

    def list_fn(**kw: Any) -> Any:
        if kw.get("watch"):
            return api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **kw)
        return _Items(api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **kw))

    obj: dict[str, Any] = wait_for(list_fn, predicate, timeout=timeout,
                                   what=what or f"VideoJob {name}",
                                   field_selector=f"metadata.name={name}")
    return obj


def phase_is(*phases: str) -> Any:
    return lambda vj: (vj.get("status") or {}).get("phase") in phases


def stage(vj: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in vj["status"]["stages"] if s["name"] == name)
