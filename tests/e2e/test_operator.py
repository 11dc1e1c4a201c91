"""The operator against a real API server, Job controller and scheduler.

Stage pods run the scripted worker (scripted_worker.py): the prompt tells it to sleep, fail
permanently or transiently in a given stage, so each failure path is exercised for real.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from kubernetes import watch

from videojob_common.pipeline import stages_of
from videojob_common.progress_auth import (
    SECRET_KEY,
    namespace_token,
    opened,
    secret_name,
    signed,
    token_for,
)
from videojob_testkit import videojobs as vjs
from videojob_testkit.kube import Cluster, wait_for, wait_gone
from videojob_testkit.operator_process import PROGRESS_KEY, Operator
from videojob_testkit.processes import RedisServer, wait_until

STAGES = stages_of(narrated=False)  # the stages of a VideoJob without narration

pytestmark = pytest.mark.e2e

FAST = {"durationSeconds": 2, "fps": 4, "resolution": "64x64"}


def jobs_of(cluster: Cluster, namespace: str, name: str) -> list[Any]:
    items: list[Any] = cluster.batch.list_namespaced_job(
        namespace, label_selector=f"videojob.dev/name={name}").items
    return items


def pods_of(cluster: Cluster, namespace: str, name: str) -> list[Any]:
    items: list[Any] = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"videojob.dev/name={name}").items
    return items


def events_of(cluster: Cluster, namespace: str, name: str, until: str) -> list[str]:
    """The VideoJob's Event reasons in order, once one with reason `until` is there."""
    return [reason for reason, _ in event_log(cluster, namespace, name, until)]


def event_log(cluster: Cluster, namespace: str, name: str, until: str) -> list[tuple[str, str]]:
    """The VideoJob's Events (reason, message) in order, once one with reason `until` is there:
    Events are posted right after the status write they explain, so a test seeing the status
    may be early."""
    found: list[tuple[str, str]] = []

    def arrived() -> bool:
        nonlocal found
        evs = cluster.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=VideoJob")
        # resourceVersion orders them; timestamps have only one-second resolution
        found = [(e.reason, e.message) for e in sorted(
            evs.items, key=lambda e: int(e.metadata.resource_version))]
        return any(reason == until for reason, _ in found)

    wait_until(arrived, 10, f"Event {until} for {name}")
    return found


def test_videojob_runs_every_stage_as_an_owned_job(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    created = vjs.create(cluster, namespace, "sunset", prompt="a coastal city at sunset",
                         scenes=3, **FAST)
    done = vjs.wait(cluster, namespace, "sunset", vjs.phase_is("Succeeded", "Failed"))
    status = done["status"]
    assert status["phase"] == "Succeeded", status
    assert status["progress"] == 100
    assert [s["phase"] for s in status["stages"]] == ["Succeeded"] * 5
    assert status["outputURI"].endswith(f"/{namespace}/sunset/{created['metadata']['uid']}"
                                         "/output.mp4")
    assert status["output"]["bytes"] == 1234  # what publish reported in its termination message
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == 1
    assert status["effective"]["scenes"] == 3 and status["effective"]["retryLimit"] == 3

    jobs = {j.metadata.labels["videojob.dev/stage"]: j for j in jobs_of(cluster, namespace,
                                                                          "sunset")}
    assert set(jobs) == set(STAGES)
    uid = created["metadata"]["uid"]
    for stage_name, job in jobs.items():
        (owner,) = job.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid) == ("VideoJob", "sunset", uid)
        assert owner.controller and owner.block_owner_deletion
        assert job.metadata.name.startswith(f"sunset-{stage_name}-")
        assert job.spec.template.spec.restart_policy == "Never"
        assert job.spec.active_deadline_seconds == 900
        assert job.spec.template.metadata.labels["videojob.dev/stage"] == stage_name
        assert job.spec.template.metadata.labels["app.kubernetes.io/part-of"] == "videojob"
        rules = job.spec.pod_failure_policy.rules
        assert rules[0].action == "FailJob" and rules[0].on_exit_codes.values == [42]
        assert rules[1].action == "Ignore" and rules[1].on_pod_conditions[0].type == (
            "DisruptionTarget")
        limits = job.spec.template.spec.containers[0].resources.limits or {}
        if stage_name in ("keyframes", "segments"):
            assert limits == {"nvidia.com/gpu": "1"}
            assert any(t.key == "nvidia.com/gpu" for t in job.spec.template.spec.tolerations)
        else:
            assert "nvidia.com/gpu" not in limits
    segments = jobs["segments"].spec
    # Three scenes, two GPUs: admitted with the parallelism that fits the gpu pool.
    assert (segments.completion_mode, segments.completions, segments.parallelism) == (
        "Indexed", 3, 2)
    assert jobs["segments"].spec.backoff_limit_per_index == 3
    if cluster.local:
        starts = Counter((s, i) for s, i, e in running_operator.runs(uid) if e == "start")
        assert set(starts.values()) == {1}, starts  # no stage ran twice
        assert len(starts) == 4 + 3
    log = event_log(cluster, namespace, "sunset", until="Succeeded")
    reasons = [reason for reason, _ in log]
    assert reasons[0] == "Created" and reasons[-1] == "Succeeded"
    assert reasons.count("Created") == 1, reasons  # one Event per transition, even on conflicts
    told = "; ".join(message for _, message in log)  # a hand-off is one Event (planner.py)
    for stage in STAGES:
        assert told.count(f"stage {stage} started") == 1, log
        assert told.count(f"stage {stage} succeeded") == 1, log
    table = cluster.kubectl("get", "vj", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "PROGRESS", "STAGE", "QUEUE", "AGE", "OUTPUT"]
    assert table[1].split()[:4] == ["sunset", "Succeeded", "100", "publish"]


def test_at_most_two_gpu_stage_pods_run_on_the_two_gpu_node(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    most = 0
    running: set[str] = set()

    def observe() -> None:
        nonlocal most
        w = watch.Watch()
        try:
            for event in w.stream(cluster.core.list_namespaced_pod, namespace,
                                  label_selector="videojob.dev/stage=segments",
                                  timeout_seconds=120):
                p = event["object"]
                if p.status.phase == "Running" and event["type"] != "DELETED":
                    running.add(p.metadata.name)
                else:
                    running.discard(p.metadata.name)
                most = max(most, len(running))
        except Exception:  # the namespace goes away at the end of the test
            pass

    observer = threading.Thread(target=observe, daemon=True)
    observer.start()
    vjs.create(cluster, namespace, "wide", prompt="sleep:segments:1.5", scenes=4, **FAST)
    # Every segments pod has finished (and been seen doing so) before stitch can start.
    done = vjs.wait(cluster, namespace, "wide", vjs.phase_is("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded", done["status"]
    seg = vjs.stage(done, "segments")
    assert (seg["completed"], seg["total"]) == (4, 4)
    assert most == 2, f"GPU stage pods running at once: {most}"


def test_a_permanent_worker_error_fails_at_once_without_retries(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    vjs.create(cluster, namespace, "broken", prompt="fail:keyframes:permanent",
               retry={"limit": 3}, **FAST)
    done = vjs.wait(cluster, namespace, "broken", vjs.phase_is("Succeeded", "Failed"))
    status = done["status"]
    assert status["phase"] == "Failed"
    assert status["reason"] == "PermanentError"
    assert status["message"] == "permanent: scripted failure in keyframes"
    assert vjs.stage(done, "keyframes")["phase"] == "Failed"
    assert vjs.stage(done, "segments")["phase"] == "Pending"
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and failed["reason"] == "PermanentError"
    keyframe_pods = [p for p in pods_of(cluster, namespace, "broken")
                     if p.metadata.labels["videojob.dev/stage"] == "keyframes"]
    assert len(keyframe_pods) == 1, "a permanent error must not be retried"
    events_of(cluster, namespace, "broken", until="PermanentError")


def test_a_transient_error_is_retried_up_to_the_limit(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    vjs.create(cluster, namespace, "flaky", prompt="flaky:stitch:1", retry={"limit": 2}, **FAST)
    vjs.create(cluster, namespace, "hopeless", prompt="fail:plan:transient",
               retry={"limit": 2}, **FAST)
    flaky = vjs.wait(cluster, namespace, "flaky", vjs.phase_is("Succeeded", "Failed"))
    assert flaky["status"]["phase"] == "Succeeded", flaky["status"]
    assert vjs.stage(flaky, "stitch")["attempts"] == 2
    hopeless = vjs.wait(cluster, namespace, "hopeless", vjs.phase_is("Succeeded", "Failed"),
                        timeout=180)
    assert hopeless["status"]["phase"] == "Failed"
    assert hopeless["status"]["reason"] == "RetriesExhausted"
    plan_pods = [p for p in pods_of(cluster, namespace, "hopeless")
                 if p.metadata.labels["videojob.dev/stage"] == "plan"]
    assert len(plan_pods) == 3  # the first run and two retries


@pytest.mark.parametrize(("spec", "reason"), [
    ({"prompt": "sleep:plan:60", "timeouts": {"stageSeconds": 2}}, "StageTimeout"),
    ({"prompt": "sleep:keyframes:60", "timeouts": {"totalSeconds": 4}}, "TotalTimeout"),
    ({"prompt": "hello", "gpu": {"count": 3}, "timeouts": {"pendingSeconds": 2}},
     "Unschedulable"),
], ids=["stage", "total", "pending"])
def test_each_timeout_fires_with_its_reason(cluster: Cluster, namespace: str,
                                            running_operator: Operator, spec: dict[str, Any],
                                            reason: str) -> None:
    vjs.create(cluster, namespace, "slow", **FAST, **spec)
    done = vjs.wait(cluster, namespace, "slow", vjs.phase_is("Succeeded", "Failed"), timeout=60)
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["reason"] == reason, done["status"]["message"]
    wait_until(lambda: not [p for p in pods_of(cluster, namespace, "slow")
                            if p.status.phase in ("Running", "Pending")], 30,
               "no pod of the failed VideoJob running or pending")


def assert_nothing_left(cluster: Cluster, operator: Operator, namespace: str, name: str,
                        uid: str) -> None:
    wait_gone(lambda: vjs.get(cluster, namespace, name), timeout=20, what=f"VideoJob {name}")
    assert jobs_of(cluster, namespace, name) == []
    assert pods_of(cluster, namespace, name) == []
    if cluster.local:
        from localcluster import controlplane

        root = cluster.kubeconfig.parent
        alive = [pid for pid in controlplane.marked_processes(controlplane.Layout(root))
                 if uid.encode() in Path(f"/proc/{pid}/environ").read_bytes()]
        assert alive == [], f"worker processes still running: {alive}"


@pytest.mark.parametrize("stage", STAGES)
def test_deleting_a_videojob_in_any_stage_leaves_nothing(
        cluster: Cluster, namespace: str, running_operator: Operator, stage: str) -> None:
    created = vjs.create(cluster, namespace, "doomed", prompt=f"sleep:{stage}:60", scenes=2,
                         **FAST)
    uid = created["metadata"]["uid"]
    wait_for(cluster.core.list_namespaced_pod, lambda p: p.status.phase == "Running",
             namespace=namespace, label_selector=f"videojob.dev/stage={stage}", timeout=60,
             what=f"a {stage} pod running")
    if cluster.local:  # the worker has installed its SIGTERM handler
        wait_until(lambda: (stage, "0", "start") in running_operator.runs(uid), 20,
                   f"the {stage} worker to start")
    vjs.delete(cluster, namespace, "doomed")
    assert_nothing_left(cluster, running_operator, namespace, "doomed", uid)
    if cluster.local:
        events = [e for s, _, e in running_operator.runs(uid) if s == stage]
        assert "sigterm" in events, "the running worker must get SIGTERM"


def test_deleting_while_gpu_pods_are_pending_leaves_nothing(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    created = vjs.create(cluster, namespace, "waiting", prompt="hello", gpu={"count": 3},
                         **FAST)
    wait_for(cluster.core.list_namespaced_pod,
             lambda p: any(c.type == "PodScheduled" and c.reason == "Unschedulable"
                           for c in p.status.conditions or []),
             namespace=namespace, label_selector="videojob.dev/stage=keyframes", timeout=60,
             what="an unschedulable keyframes pod")
    vjs.delete(cluster, namespace, "waiting")
    assert_nothing_left(cluster, running_operator, namespace, "waiting",
                        created["metadata"]["uid"])


def test_suspend_and_resume_without_disturbing_the_running_stage(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    created = vjs.create(cluster, namespace, "pausable", prompt="sleep:segments:2", scenes=2,
                         **FAST)
    uid = created["metadata"]["uid"]
    first = wait_for(cluster.core.list_namespaced_pod, lambda p: p.status.phase == "Running",
                     namespace=namespace, label_selector="videojob.dev/stage=segments",
                     timeout=60, what="segments running")
    # Priority is mutable and must not touch the running stage.
    vjs.patch_spec(cluster, namespace, "pausable", priority=50)
    still = cluster.core.read_namespaced_pod(first.metadata.name, namespace)
    assert still.metadata.uid == first.metadata.uid and still.status.phase == "Running"
    vjs.patch_spec(cluster, namespace, "pausable", suspend=True)
    vjs.wait(cluster, namespace, "pausable", vjs.phase_is("Suspended"), timeout=30)
    job = next(j for j in jobs_of(cluster, namespace, "pausable")
               if j.metadata.labels["videojob.dev/stage"] == "segments")
    assert job.spec.suspend is True
    wait_until(lambda: not [p for p in pods_of(cluster, namespace, "pausable")
                            if p.metadata.labels["videojob.dev/stage"] == "segments"
                            and p.status.phase == "Running"], 30, "segments pods to stop")
    vjs.patch_spec(cluster, namespace, "pausable", suspend=False)
    done = vjs.wait(cluster, namespace, "pausable", vjs.phase_is("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert "Suspended" in events_of(cluster, namespace, "pausable", until="Resumed")
    if cluster.local:  # stages before segments ran once; segments was stopped and resumed
        done_runs = Counter(s for s, _, e in running_operator.runs(uid) if e == "done")
        assert done_runs == {"plan": 1, "keyframes": 1, "segments": 2, "stitch": 1,
                             "publish": 1}


def test_operator_killed_mid_stage_resumes_without_duplicates(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    created = vjs.create(cluster, namespace, "survivor", prompt="sleep:segments:2", scenes=2,
                         **FAST)
    wait_for(cluster.core.list_namespaced_pod, lambda p: p.status.phase == "Running",
             namespace=namespace, label_selector="videojob.dev/stage=segments", timeout=60,
             what="segments running")
    running_operator.kill()
    running_operator.start()
    done = vjs.wait(cluster, namespace, "survivor", vjs.phase_is("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert len(jobs_of(cluster, namespace, "survivor")) == 5
    if cluster.local:
        starts = Counter((s, i) for s, i, e in running_operator.runs(created["metadata"]["uid"])
                         if e == "start")
        assert set(starts.values()) == {1}, f"a stage ran twice: {starts}"


def test_a_stage_job_deleted_by_hand_is_recreated(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    vjs.create(cluster, namespace, "orphan", prompt="sleep:keyframes:3", **FAST)
    pod = wait_for(cluster.core.list_namespaced_pod, lambda p: p.status.phase == "Running",
                   namespace=namespace, label_selector="videojob.dev/stage=keyframes",
                   timeout=60, what="keyframes running")
    job_name = pod.metadata.labels["batch.kubernetes.io/job-name"]
    cluster.batch.delete_namespaced_job(job_name, namespace, propagation_policy="Background")
    done = vjs.wait(cluster, namespace, "orphan", vjs.phase_is("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded", done["status"]
    events_of(cluster, namespace, "orphan", until="StageJobLost")


def test_progress_reaches_the_status_while_a_stage_runs(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    vjs.create(cluster, namespace, "lively", prompt="sleep:stitch:3", **FAST)
    seen = vjs.wait(cluster, namespace, "lively",
                    lambda vj: (vj.get("status") or {}).get("currentStage") == "stitch"
                    and 0 < vjs.stage(vj, "stitch").get("progress", 0) < 100,
                    what="stitch progress between 0 and 100")
    assert vjs.stage(seen, "stitch")["message"].startswith("frame "), seen["status"]
    assert 20 < seen["status"]["progress"] < 100
    vjs.wait(cluster, namespace, "lively", vjs.phase_is("Succeeded"))


def test_only_its_own_videojobs_workers_can_report_its_progress(
        cluster: Cluster, namespace: str, running_operator: Operator,
        redis_server: RedisServer) -> None:
    """The stage pods sign their reports with their namespace's token, read from the one Secret
    the operator writes there; the test, as a tenant with Redis's password, forges reports (with
    other tokens, and with another namespace's, naming it) and replays one."""
    master = PROGRESS_KEY.encode()
    own = namespace_token(master, namespace, cluster.core.read_namespace(namespace).metadata.uid)
    created = vjs.create(cluster, namespace, "guarded", prompt="sleep:stitch:6", **FAST)
    uid = created["metadata"]["uid"]
    client = redis.Redis(port=redis_server.port)
    key = f"videojob:progress:{uid}:stitch"
    wait_until(lambda: client.get(key) is not None, 60, "a signed stitch report in Redis")
    captured = client.get(key)
    assert captured is not None and opened(captured, lambda _: [own]) is not None
    wait_until(lambda: client.get(key) != captured, 10, "a later stitch report")
    dropped_before = dropped(running_operator)

    def forged(message: str, sign_with: str | None, named: str = namespace) -> str:
        doc = json.dumps({"namespace": named, "name": "guarded", "uid": uid,
                          "stage": "stitch", "index": None, "attempt": 9, "percent": 99,
                          "message": message, "done": 1, "total": 1, "ts": 4e9})
        return doc if sign_with is None else signed(sign_with, doc)

    other = "default"  # a namespace the operator knows, whose pods hold its token
    attempts = [
        forged("forged: unsigned", None),
        forged("forged: another VideoJob's token", token_for(master, "some-other-uid")),
        forged("forged: a guessed token", "0" * 64),
        forged("forged: this namespace's name, an earlier uid",
               namespace_token(master, namespace, "an-earlier-uid")),
        forged("forged: another namespace's pod, naming it", namespace_token(
            master, other, cluster.core.read_namespace(other).metadata.uid), named=other),
    ]
    for message in attempts:
        client.publish("videojob:progress", message)
    client.publish("videojob:progress", captured)  # a replay of the worker's own older report
    wait_until(lambda: dropped(running_operator)["unverified"] - dropped_before["unverified"]
               >= len(attempts) and dropped(running_operator)["stale"] > dropped_before["stale"],
               20, "the forged and replayed reports dropped")
    done = vjs.wait(cluster, namespace, "guarded", vjs.phase_is("Succeeded"))
    assert "forged" not in json.dumps(done["status"])

    # The token: in the namespace's Secret, referenced by the stage Jobs, never in them.
    secret = cluster.core.read_namespaced_secret(secret_name(master), namespace)
    assert secret.immutable and base64.b64decode(secret.data[SECRET_KEY]).decode() == own
    made = [s.metadata.name for s in cluster.core.list_namespaced_secret(
        namespace, label_selector="app.kubernetes.io/managed-by=videojob-operator").items]
    assert made == [secret_name(master)]
    for job in jobs_of(cluster, namespace, "guarded"):
        manifest = json.dumps(cluster.api.sanitize_for_serialization(job))
        assert own not in manifest and secret_name(master) in manifest


def dropped(operator: Operator) -> dict[str, float]:
    metrics = operator.metrics()
    return {reason: metrics.get(f'videojob_progress_reports_dropped_total{{reason="{reason}"}}',
                                0.0) for reason in ("unverified", "invalid", "stale")}


INVALID = [
    ({}, "spec.prompt is required unless spec.images is given"),
    ({"prompt": "x", "scenes": 0}, "spec.scenes in body should be greater than or equal to 1"),
    ({"prompt": "x", "scenes": 33}, "spec.scenes in body should be less than or equal to 32"),
    ({"prompt": "x", "fps": 61}, "spec.fps in body should be less than or equal to 60"),
    ({"prompt": "x", "durationSeconds": 0}, "spec.durationSeconds"),
    ({"prompt": "x", "resolution": "1281x720"},
     "spec.resolution width must be an even number from 64 to 3840"),
    ({"prompt": "x", "resolution": "1280x4000"},
     "spec.resolution height must be an even number from 64 to 2160"),
    ({"prompt": "x", "resolution": "hd"}, "spec.resolution in body should match"),
    ({"prompt": "x", "transition": "wipe"}, 'spec.transition: Unsupported value: "wipe"'),
    ({"prompt": "x", "priority": 101}, "spec.priority in body should be less than or equal"),
    ({"images": ["file:///a.png", "file:///b.png"], "scenes": 3},
     "spec.scenes must equal the number of spec.images"),
    ({"images": ["ftp://host/a.png"]}, "spec.images[0] in body should match"),
    ({"prompt": "x", "audio": "song.mp3"}, "spec.audio in body should match"),
    ({"prompt": "x", "output": {"uri": "s3://bucket/x.mp4"}}, "spec.output.uri in body"),
    ({"prompt": "x", "retry": {"limit": -1}}, "spec.retry.limit in body should be greater"),
    ({"prompt": "x", "timeouts": {"stageSeconds": 0}}, "spec.timeouts.stageSeconds"),
    ({"prompt": "x", "gpu": {"count": 17}}, "spec.gpu.count in body should be less than"),
    ({"prompt": "x", "gpu": {"tolerations": [{"operator": "Maybe"}]}},
     'spec.gpu.tolerations[0].operator: Unsupported value: "Maybe"'),
    ({"prompt": "x", "seed": -1}, "spec.seed in body should be greater than or equal to 0"),
    ({"prompt": "x", "backend": "Big_Model"}, "spec.backend in body should match"),
]


@pytest.mark.parametrize(("spec", "message"), INVALID,
                         ids=[m.split(" ")[0].split(":")[0] + f"-{i}"
                              for i, (_, m) in enumerate(INVALID)])
def test_invalid_manifests_are_rejected_naming_the_field(
        cluster: Cluster, namespace: str, crds: None, spec: dict[str, Any], message: str) -> None:
    from kubernetes.client import ApiException

    with pytest.raises(ApiException) as err:
        vjs.create(cluster, namespace, "invalid", **spec)
    assert err.value.status == 422
    assert message in json.loads(err.value.body)["message"]


def test_only_suspend_priority_and_ttl_may_change(cluster: Cluster, namespace: str,
                                                  crds: None) -> None:
    from kubernetes.client import ApiException

    vjs.create(cluster, namespace, "fixed", prompt="x", suspend=True)
    vjs.patch_spec(cluster, namespace, "fixed", priority=10, suspend=False,
                   ttlSecondsAfterFinished=60)
    for change, field in [({"fps": 30}, "spec.fps"), ({"prompt": "y"}, "spec.prompt"),
                          ({"timeouts": {"totalSeconds": 5}}, "spec")]:
        with pytest.raises(ApiException) as err:
            vjs.patch_spec(cluster, namespace, "fixed", **change)
        assert "immutable" in json.loads(err.value.body)["message"]
        assert field in json.loads(err.value.body)["message"]


def test_deletion_while_the_operator_is_down_finishes_on_restart(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    created = vjs.create(cluster, namespace, "abandoned", prompt="sleep:segments:60", scenes=2,
                         **FAST)
    wait_for(cluster.core.list_namespaced_pod, lambda p: p.status.phase == "Running",
             namespace=namespace, label_selector="videojob.dev/stage=segments", timeout=60,
             what="segments running")
    running_operator.stop()
    vjs.delete(cluster, namespace, "abandoned")
    # The finalizer holds the VideoJob (and so its Jobs and pods) until the operator is back.
    held = vjs.get(cluster, namespace, "abandoned")
    assert held["metadata"]["deletionTimestamp"]
    running_operator.start()
    assert_nothing_left(cluster, running_operator, namespace, "abandoned",
                        created["metadata"]["uid"])


def test_two_operator_replicas_do_not_double_any_work(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    second = Operator(cluster=cluster, workdir=running_operator.workdir / "second",
                      redis_url=running_operator.redis_url,
                      overrides={"worker_env": running_operator.config().get("worker_env", {})})
    second.start()
    try:
        uids = [vjs.create(cluster, namespace, f"twin-{i}", prompt="sleep:segments:0.5",
                           scenes=2, **FAST)["metadata"]["uid"] for i in range(3)]
        for i in range(3):
            done = vjs.wait(cluster, namespace, f"twin-{i}", vjs.phase_is("Succeeded", "Failed"))
            assert done["status"]["phase"] == "Succeeded", done["status"]
            assert len(jobs_of(cluster, namespace, f"twin-{i}")) == 5
    finally:
        second.stop()
    if cluster.local:
        for uid in uids:
            starts = Counter((s, i) for s, i, e in running_operator.runs(uid) if e == "start")
            assert len(starts) == 4 + 2 and set(starts.values()) == {1}, starts


def test_operator_logs_are_json_with_the_videojob_identity(running_operator: Operator) -> None:
    lines = [json.loads(line) for line in running_operator.log.read_text().splitlines()
             if line.startswith("{")]
    assert lines, "the operator logged nothing"
    created = [entry for entry in lines if entry["message"].startswith("created Job")]
    assert created and all({"namespace", "name", "stage"} <= set(e) for e in created)
    assert all({"time", "level", "logger", "message"} <= set(e) for e in lines)


def test_without_redis_videojobs_still_complete(
        cluster: Cluster, namespace: str, running_operator: Operator, redis_server: Any) -> None:
    redis_server.stop()
    try:
        vjs.create(cluster, namespace, "offline", prompt="sleep:segments:1", scenes=2, **FAST)
        done = vjs.wait(cluster, namespace, "offline", vjs.phase_is("Succeeded", "Failed"))
        assert done["status"]["phase"] == "Succeeded", done["status"]
        assert vjs.stage(done, "segments")["progress"] == 100
    finally:
        redis_server.start()


@pytest.mark.parametrize("namespace", [{"pod-security.kubernetes.io/enforce": "restricted"}],
                         indirect=True)
def test_stage_pods_pass_pod_security_restricted(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    vjs.create(cluster, namespace, "strict", prompt="hello", scenes=2, **FAST)
    done = vjs.wait(cluster, namespace, "strict", vjs.phase_is("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded", done["status"]


NARRATED = {"narration": {"lines": ["One.", "Two."]}}


def _ran(pod: Any) -> tuple[Any, Any]:
    """(startedAt, finishedAt) of a stage pod's worker container, which has ended."""
    term = pod.status.container_statuses[0].state.terminated
    return term.started_at, term.finished_at


def test_a_narrated_videojob_runs_narrate_beside_segments(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    """The DAG (#28): narrate starts with keyframes once plan is done and runs while segments
    do; stitch waits for both. The scripted worker's sleeps make the branches overlap."""
    created = vjs.create(cluster, namespace, "narrated", scenes=2, **FAST, **NARRATED,
                         prompt="sleep:narrate:8 sleep:segments:3")
    vjs.wait(cluster, namespace, "narrated",
             lambda vj: (vj.get("status") or {}).get("currentStage") == "segments+narrate",
             timeout=90, what="segments and narrate under way at once")
    done = vjs.wait(cluster, namespace, "narrated", vjs.phase_is("Succeeded", "Failed"),
                    timeout=120)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert [s["name"] for s in done["status"]["stages"]] == [
        "plan", "keyframes", "segments", "narrate", "stitch", "publish"]
    uid = created["metadata"]["uid"]
    pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"videojob.dev/uid={uid}")
    by_stage: dict[str, list[Any]] = {}
    for p in pods.items:
        by_stage.setdefault(p.metadata.labels["videojob.dev/stage"], []).append(_ran(p))
    [(n_start, n_end)] = by_stage["narrate"]
    assert any(start < n_end and n_start < end for start, end in by_stage["segments"]), by_stage
    [(stitch_start, _)] = by_stage["stitch"]
    assert stitch_start >= max(n_end, *(end for _, end in by_stage["segments"]))


def test_deleting_a_narrated_videojob_while_both_branches_run_leaves_nothing(
        cluster: Cluster, namespace: str, running_operator: Operator) -> None:
    created = vjs.create(cluster, namespace, "both", scenes=2, **FAST, **NARRATED,
                         prompt="sleep:narrate:60 sleep:segments:60")
    for stage in ("narrate", "segments"):
        wait_for(cluster.core.list_namespaced_pod, lambda p: p.status.phase == "Running",
                 namespace=namespace, label_selector=f"videojob.dev/stage={stage}",
                 timeout=90, what=f"a {stage} pod running")
    vjs.delete(cluster, namespace, "both")
    assert_nothing_left(cluster, running_operator, namespace, "both", created["metadata"]["uid"])
