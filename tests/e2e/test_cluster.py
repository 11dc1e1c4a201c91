"""The local cluster is a real Kubernetes: each test goes through the API only.

Owner-reference garbage collection, the Job controller, the scheduler's GPU accounting,
PodSecurity admission and `kubectl logs` are the upstream components at work; the node agent runs
the pods. The same tests run against kind (VIDEOJOB_TEST_KUBECONFIG).
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from videojob_testkit import REPO
from videojob_testkit.kube import (
    TEST_IMAGE,
    Cluster,
    condition,
    job_finished,
    pod_phase_is,
    wait_for,
    wait_gone,
)

pytestmark = pytest.mark.e2e

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def job(name: str, script: str, **spec: Any) -> dict[str, Any]:
    template = spec.pop("template", {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            **spec,
            "template": {
                "metadata": {"labels": {"test": name}},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{"name": "main", "image": TEST_IMAGE,
                                    "command": ["sh", "-c", script]}],
                    **template,
                },
            },
        },
    }


def pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": TEST_IMAGE, "command": ["sh", "-c", script],
                 **spec.pop("container", {})}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5,
                 "containers": [container], **spec},
    }


def run_pod(cluster: Cluster, namespace: str, body: dict[str, Any], timeout: float = 60) -> Any:
    cluster.core.create_namespaced_pod(namespace, body)
    name = body["metadata"]["name"]
    return wait_for(cluster.core.list_namespaced_pod, pod_phase_is("Succeeded", "Failed"),
                    namespace=namespace, field_selector=f"metadata.name={name}",
                    timeout=timeout, what=f"pod {name} to finish")


def logs(cluster: Cluster, namespace: str, name: str, **kw: Any) -> str:
    text: str = cluster.core.read_namespaced_pod_log(name, namespace, **kw)
    return text


def test_job_with_three_completions_completes(cluster: Cluster, namespace: str) -> None:
    cluster.batch.create_namespaced_job(
        namespace, job("three", "echo done", completions=3, parallelism=2))
    done = wait_for(cluster.batch.list_namespaced_job, job_finished, namespace=namespace,
                    timeout=60, what="job three to finish")
    assert condition(done, "Complete").status == "True"
    assert done.status.succeeded == 3
    pods = cluster.core.list_namespaced_pod(namespace, label_selector="test=three").items
    assert sorted(p.status.phase for p in pods) == ["Succeeded"] * 3


def test_indexed_job_pods_see_their_completion_index(cluster: Cluster, namespace: str) -> None:
    cluster.batch.create_namespaced_job(namespace, job(
        "indexed", 'echo "index=$JOB_COMPLETION_INDEX"', completions=3, parallelism=3,
        completionMode="Indexed"))
    done = wait_for(cluster.batch.list_namespaced_job, job_finished, namespace=namespace,
                    timeout=60, what="indexed job to finish")
    assert done.status.succeeded == 3
    pods = cluster.core.list_namespaced_pod(namespace, label_selector="test=indexed").items
    seen = {}
    for p in pods:
        annotated = p.metadata.annotations["batch.kubernetes.io/job-completion-index"]
        seen[annotated] = logs(cluster, namespace, p.metadata.name).strip()
    assert seen == {"0": "index=0", "1": "index=1", "2": "index=2"}


def test_gpu_pods_beyond_capacity_stay_pending_until_a_gpu_frees(
        cluster: Cluster, namespace: str) -> None:
    """Three one-GPU pods on a two-GPU node: two run, the third waits Unschedulable."""
    running_now: set[str] = set()
    succeeded: set[str] = set()
    unschedulable_seen: set[str] = set()
    most_at_once = 0
    watching = threading.Event()

    def observe() -> None:
        nonlocal most_at_once
        w = watch.Watch()
        watching.set()
        for event in w.stream(cluster.core.list_namespaced_pod, namespace, timeout_seconds=90):
            p = event["object"]
            scheduled = condition(p, "PodScheduled")
            if scheduled is not None and scheduled.reason == "Unschedulable":
                unschedulable_seen.add(p.metadata.name)
            if p.status.phase == "Running":
                running_now.add(p.metadata.name)
            else:
                running_now.discard(p.metadata.name)
            if p.status.phase == "Succeeded":
                succeeded.add(p.metadata.name)
            most_at_once = max(most_at_once, len(running_now))
            if len(succeeded) == 3:
                w.stop()

    observer = threading.Thread(target=observe, daemon=True)
    observer.start()
    watching.wait()
    for i in range(3):
        cluster.core.create_namespaced_pod(namespace, pod(
            f"gpu-{i}", 'echo "devices=$NVIDIA_VISIBLE_DEVICES"; sleep 3',
            container={"resources": {"limits": {"nvidia.com/gpu": "1"}}},
            tolerations=[GPU_TOLERATION]))
    observer.join(timeout=90)
    assert succeeded == {"gpu-0", "gpu-1", "gpu-2"}
    assert most_at_once == 2
    assert len(unschedulable_seen) >= 1, "one pod must have waited for a GPU"
    devices = {f"gpu-{i}": logs(cluster, namespace, f"gpu-{i}").strip() for i in range(3)}
    if cluster.local:  # the node agent plays the device plugin; kind has none
        # Two pods ran at once, so both device indices were handed out, and no other.
        assert set(devices.values()) == {"devices=0", "devices=1"}, devices
    nodes = {p.spec.node_name for p in cluster.core.list_namespaced_pod(namespace).items}
    assert len(nodes) == 1


def test_foreground_job_deletion_delivers_sigterm(cluster: Cluster, namespace: str) -> None:
    script = ("trap 'echo handled SIGTERM > /dev/termination-log; exit 0' TERM; "
              "echo started; while true; do sleep 0.1; done")
    cluster.batch.create_namespaced_job(namespace, job("victim", script))
    running = wait_for(cluster.core.list_namespaced_pod, pod_phase_is("Running"),
                       namespace=namespace, label_selector="test=victim", timeout=60,
                       what="victim pod to run")
    wait_for(cluster.core.list_namespaced_pod,
             lambda p: "started" in logs(cluster, namespace, p.metadata.name),
             namespace=namespace, label_selector="test=victim", timeout=20,
             what="the trap to be installed")
    name = running.metadata.name
    messages: list[str] = []

    def record() -> None:
        w = watch.Watch()
        for event in w.stream(cluster.core.list_namespaced_pod, namespace,
                              field_selector=f"metadata.name={name}", timeout_seconds=60,
                              resource_version=running.metadata.resource_version):
            for s in event["object"].status.container_statuses or []:
                if s.state.terminated is not None and s.state.terminated.message:
                    messages.append(s.state.terminated.message.strip())
            if event["type"] == "DELETED":
                w.stop()

    recorder = threading.Thread(target=record, daemon=True)
    recorder.start()
    cluster.batch.delete_namespaced_job("victim", namespace, propagation_policy="Foreground")
    wait_gone(cluster.batch.read_namespaced_job, name="victim", namespace=namespace,
              timeout=30, what="job victim")
    wait_gone(cluster.core.read_namespaced_pod, name=name, namespace=namespace, timeout=30,
              what=f"pod {name}")
    recorder.join(timeout=10)
    assert "handled SIGTERM" in messages


def test_deleting_an_owner_deletes_its_dependents(cluster: Cluster, namespace: str) -> None:
    owner = cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid,
           "blockOwnerDeletion": True}
    cluster.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "dependent", "ownerReferences": [ref]}})
    dependent_pod = pod("dependent-pod", "sleep 60")
    dependent_pod["metadata"]["ownerReferences"] = [ref]
    cluster.core.create_namespaced_pod(namespace, dependent_pod)
    wait_for(cluster.core.list_namespaced_pod, pod_phase_is("Running"), namespace=namespace,
             field_selector="metadata.name=dependent-pod", timeout=60, what="dependent pod")
    cluster.core.delete_namespaced_config_map("owner", namespace)
    wait_gone(cluster.core.read_namespaced_config_map, name="dependent", namespace=namespace,
              timeout=30, what="dependent configmap")
    wait_gone(cluster.core.read_namespaced_pod, name="dependent-pod", namespace=namespace,
              timeout=30, what="dependent pod")


@pytest.mark.parametrize("namespace", [{"pod-security.kubernetes.io/enforce": "restricted"}],
                         indirect=True)
def test_pod_security_restricted_rejects_a_privileged_pod(cluster: Cluster, namespace: str) -> None:
    bad = pod("privileged", "true", container={"securityContext": {"privileged": True}})
    with pytest.raises(client.ApiException) as err:
        cluster.core.create_namespaced_pod(namespace, bad)
    assert err.value.status == 403
    message = json.loads(err.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message
    assert 'privileged (container "main" must not set securityContext.privileged=true)' in message
    good = pod("restricted", "echo ok", securityContext={
        "runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        container={"securityContext": {"allowPrivilegeEscalation": False,
                                       "capabilities": {"drop": ["ALL"]}}})
    assert run_pod(cluster, namespace, good).status.phase == "Succeeded"


def test_configmap_volume_is_readable_at_its_mount_path(cluster: Cluster, namespace: str) -> None:
    cluster.core.create_namespaced_config_map(namespace, {
        "metadata": {"name": "settings"}, "data": {"greeting": "hello from a configmap"}})
    mount = "/etc/videojob-test-settings"
    reader = pod("reader", f"cat {mount}/greeting",
                 volumes=[{"name": "settings", "configMap": {"name": "settings"}}],
                 container={"volumeMounts": [{"name": "settings", "mountPath": mount,
                                              "readOnly": True}]})
    assert run_pod(cluster, namespace, reader).status.phase == "Succeeded"
    assert logs(cluster, namespace, "reader").strip() == "hello from a configmap"
    # Mounts belong to the pod's own mount namespace: another pod does not see them.
    other = pod("other", f"test -e {mount}/greeting && echo visible || echo absent")
    run_pod(cluster, namespace, other)
    assert logs(cluster, namespace, "other").strip() == "absent"


def test_secret_downward_api_and_projected_volumes_with_sub_path_and_read_only(
        cluster: Cluster, namespace: str) -> None:
    cluster.core.create_namespaced_secret(namespace, {
        "metadata": {"name": "creds"}, "stringData": {"user": "ada", "pass": "pw"}})
    cluster.core.create_namespaced_config_map(namespace, {
        "metadata": {"name": "cfg"}, "data": {"app.conf": "level=debug"}})
    script = ("cat /srv/vjt/creds/user; echo; cat /srv/vjt/etc/app.conf; echo; "
              "cat /srv/vjt/info/labels; echo; cat /srv/vjt/bundle/ns /srv/vjt/bundle/conf; echo; "
              "touch /srv/vjt/creds/x 2>/dev/null && echo writable || echo read-only")
    body = pod("vols", script, volumes=[
        {"name": "creds", "secret": {"secretName": "creds", "items": [
            {"key": "user", "path": "user"}]}},
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "bundle", "projected": {"sources": [
            {"downwardAPI": {"items": [
                {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            {"configMap": {"name": "cfg", "items": [{"key": "app.conf", "path": "conf"}]}}]}},
    ], container={"volumeMounts": [
        {"name": "creds", "mountPath": "/srv/vjt/creds", "readOnly": True},
        {"name": "cfg", "mountPath": "/srv/vjt/etc/app.conf", "subPath": "app.conf"},
        {"name": "info", "mountPath": "/srv/vjt/info"},
        {"name": "bundle", "mountPath": "/srv/vjt/bundle"},
    ]})
    body["metadata"]["labels"] = {"tier": "gpu"}
    done = run_pod(cluster, namespace, body)
    assert done.status.phase == "Succeeded", logs(cluster, namespace, "vols")
    assert logs(cluster, namespace, "vols").splitlines() == [
        "ada", "level=debug", 'tier="gpu"', f"{namespace}level=debug", "read-only"]


def test_kubectl_logs_returns_what_the_container_printed(cluster: Cluster, namespace: str) -> None:
    run_pod(cluster, namespace, pod("talker", "echo line one; echo line two >&2; echo line three"))
    out = cluster.kubectl("logs", "-n", namespace, "talker").stdout
    assert out.splitlines() == ["line one", "line two", "line three"]
    tail = cluster.kubectl("logs", "-n", namespace, "talker", "--tail=1").stdout
    assert tail.splitlines() == ["line three"]
    first = cluster.kubectl("logs", "-n", namespace, "talker", "--limit-bytes=4").stdout
    assert first == "line"
    stamped = cluster.kubectl("logs", "-n", namespace, "talker", "--timestamps").stdout
    stamp, text = stamped.splitlines()[0].split(" ", 1)
    assert text == "line one"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", stamp), stamp


def test_kubectl_logs_follows_a_running_container(cluster: Cluster, namespace: str) -> None:
    cluster.core.create_namespaced_pod(
        namespace, pod("ticker", "for i in 1 2 3; do echo tick $i; sleep 0.5; done"))
    wait_for(cluster.core.list_namespaced_pod, pod_phase_is("Running", "Succeeded"),
             namespace=namespace, field_selector="metadata.name=ticker", timeout=60,
             what="ticker to start")
    out = cluster.kubectl("logs", "-n", namespace, "ticker", "-f", timeout=30).stdout
    assert out.splitlines() == ["tick 1", "tick 2", "tick 3"]


def test_kubectl_get_nodes_shows_gpu_capacity(cluster: Cluster) -> None:
    out = cluster.kubectl("get", "nodes", "-o", "json").stdout
    gpus = {n["metadata"]["name"]: n["status"]["capacity"].get("nvidia.com/gpu")
            for n in json.loads(out)["items"]}
    assert "2" in gpus.values()
    table = cluster.kubectl(
        "get", "nodes", "-l", "nvidia.com/gpu.present=true",
        "-o", r"custom-columns=NAME:.metadata.name,GPU:.status.capacity.nvidia\.com/gpu").stdout
    assert table.splitlines()[1].split()[1] == "2"


def test_env_from_downward_api_secrets_and_configmaps(cluster: Cluster, namespace: str) -> None:
    cluster.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "cfg"}, "data": {"MODE": "fast", "LEVEL": "3"}})
    cluster.core.create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cret"}})
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "MODE_COPY", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}},
        {"name": "GREETING", "value": "hi $(POD_NAME) at $$(literal)"},
    ]
    body = pod("envy", 'echo "$POD_NAME|$POD_NS|$TEAM|$TOKEN|$MODE_COPY|$CFG_LEVEL|$GREETING|$PWD"',
               container={"env": env, "envFrom": [{"configMapRef": {"name": "cfg"},
                                                   "prefix": "CFG_"}],
                          "workingDir": "/tmp"})
    body["metadata"]["labels"] = {"team": "video"}
    run_pod(cluster, namespace, body)
    assert logs(cluster, namespace, "envy").strip() == (
        f"envy|{namespace}|video|s3cret|fast|3|hi envy at $(literal)|/tmp")


def test_init_containers_run_in_order_and_share_an_empty_dir(
        cluster: Cluster, namespace: str) -> None:
    mount = {"name": "work", "mountPath": "/work-dir"}
    body = pod("inits", "cat /work-dir/trail",
               initContainers=[
                   {"name": f"init-{i}", "image": TEST_IMAGE, "volumeMounts": [mount],
                    "command": ["sh", "-c", f"echo init-{i} >> /work-dir/trail"]}
                   for i in (1, 2)],
               volumes=[{"name": "work", "emptyDir": {}}],
               container={"volumeMounts": [mount]})
    done = run_pod(cluster, namespace, body)
    assert done.status.phase == "Succeeded"
    assert logs(cluster, namespace, "inits").split() == ["init-1", "init-2"]
    assert [s.state.terminated.reason for s in done.status.init_container_statuses] == [
        "Completed", "Completed"]


def test_failed_container_reports_exit_code_and_termination_message(
        cluster: Cluster, namespace: str) -> None:
    done = run_pod(cluster, namespace, pod(
        "failing", "echo 'input is corrupt' > /dev/termination-log; exit 3"))
    assert done.status.phase == "Failed"
    term = done.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason, term.message.strip()) == (3, "Error", "input is corrupt")
    assert term.started_at is not None and term.finished_at is not None


def test_pod_failure_policy_fails_the_job_on_a_permanent_exit_code(
        cluster: Cluster, namespace: str) -> None:
    body = job("permanent", "exit 42", backoffLimit=5, podFailurePolicy={"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]})
    cluster.batch.create_namespaced_job(namespace, body)
    done = wait_for(cluster.batch.list_namespaced_job, job_finished, namespace=namespace,
                    timeout=60, what="job permanent to fail")
    failed = condition(done, "Failed")
    assert failed.reason == "PodFailurePolicy"
    assert len(cluster.core.list_namespaced_pod(namespace, label_selector="test=permanent")
               .items) == 1, "FailJob must not retry"


def test_restart_policy_on_failure_restarts_the_container(
        cluster: Cluster, namespace: str) -> None:
    script = ("if [ -e /scratch/ran ]; then echo second run; "
              "else touch /scratch/ran; echo first run; exit 1; fi")
    body = pod("retry", script, restartPolicy="OnFailure",
               volumes=[{"name": "scratch", "emptyDir": {}}],
               container={"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]})
    done = run_pod(cluster, namespace, body, timeout=90)
    assert done.status.phase == "Succeeded"
    status = done.status.container_statuses[0]
    assert status.restart_count == 1
    assert status.last_state.terminated.exit_code == 1
    assert logs(cluster, namespace, "retry").strip() == "second run"
    assert logs(cluster, namespace, "retry", previous=True).strip() == "first run"


def test_service_account_token_authenticates_the_pod(cluster: Cluster, namespace: str) -> None:
    script = """
import json, os, ssl, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
url = "https://%s:%s/apis/authentication.k8s.io/v1/selfsubjectreviews" % (
    os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
req = urllib.request.Request(url, method="POST", data=json.dumps(
    {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode(),
    headers={"Authorization": "Bearer " + open(sa + "/token").read(),
             "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req, context=ctx))["status"]["userInfo"]["username"])
print(open(sa + "/namespace").read())
"""
    body = pod("whoami", "")
    body["spec"]["containers"][0]["command"] = ["python3", "-c", script]
    done = run_pod(cluster, namespace, body)
    assert done.status.phase == "Succeeded", logs(cluster, namespace, "whoami")
    assert logs(cluster, namespace, "whoami").split() == [
        f"system:serviceaccount:{namespace}:default", namespace]


def test_a_volume_over_the_checkout_does_not_hide_the_image(
        cluster: Cluster, namespace: str) -> None:
    """An emptyDir mounted over the directory holding the checkout (as a chart's /tmp volume
    does when the checkout is under /tmp) hides the host's files there, but not the images'
    programs and the environment they run from, as a volume never hides an image's files."""
    parent = REPO.resolve().parent
    if parent == Path("/"):
        pytest.skip("the checkout is at the root: there is no directory above it to cover")
    body = pod("covered", "")
    container = body["spec"]["containers"][0]
    del container["command"]
    container.update(image="ghcr.io/videojob/worker:0.1.0", args=["--version"],
                     volumeMounts=[{"name": "scratch", "mountPath": str(parent)}])
    body["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    done = run_pod(cluster, namespace, body)
    assert done.status.phase == "Succeeded", logs(cluster, namespace, "covered")
    assert logs(cluster, namespace, "covered").strip() == "0.1.0"


def test_a_missing_executable_is_a_start_error(cluster: Cluster, namespace: str) -> None:
    body = pod("nope", "")
    body["spec"]["containers"][0]["command"] = ["no-such-program-videojob"]
    done = run_pod(cluster, namespace, body)
    term = done.status.container_statuses[0].state.terminated
    assert done.status.phase == "Failed"
    assert term.exit_code == 128 and term.reason == "StartError"
    assert "no-such-program-videojob" in term.message


CPU_CGROUP = Path("/sys/fs/cgroup/cpu")
CPU_LINE = "awk -F: '$2 ~ /(^|,)cpu(,|$)/ {print $3}' /proc/self/cgroup"
OWN_CPU_GROUP = (f"{CPU_LINE}; g=/sys/fs/cgroup/cpu$({CPU_LINE}); "
                 "cat $g/cpu.shares $g/cpu.cfs_quota_us")


@pytest.mark.skipif(not (CPU_CGROUP / "cpu.shares").exists(), reason="needs cgroup v1's cpu")
@pytest.mark.parametrize(("resources", "shares", "quota"), [
    ({"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}, "512", "100000"),
    ({}, "2", "-1"),
], ids=["burstable", "best-effort"])
def test_a_pod_runs_in_a_cgroup_of_its_own_with_the_kubelets_cpu_weight(
        cluster: Cluster, namespace: str, resources: dict[str, Any], shares: str,
        quota: str) -> None:
    if not cluster.local:
        pytest.skip("the node agent's cgroups; a kubelet's are laid out by its runtime")
    name = f"weighted-{shares}"
    done = run_pod(cluster, namespace, pod(name, OWN_CPU_GROUP,
                                           container={"resources": resources}))
    out = logs(cluster, namespace, name).split()
    assert done.status.phase == "Succeeded", out
    group, got_shares, got_quota = out
    assert group.endswith(f"/pod{done.metadata.uid}")
    assert (got_shares, got_quota) == (shares, quota)
    # The group goes with the pod's processes.
    deadline = time.monotonic() + 10
    while (CPU_CGROUP / group.lstrip("/")).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (CPU_CGROUP / group.lstrip("/")).exists()
