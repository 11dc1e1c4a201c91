from __future__ import annotations

import sys
import threading
from typing import Any

from localcluster.podstatus import ContainerRecord, DeviceAllocator, phase, pod_status

POD: dict[str, Any] = {"metadata": {"name": "p"}, "status": {"conditions": [
    {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"}]}}


def rec(name: str, state: str = "waiting", code: int = 0) -> ContainerRecord:
    r = ContainerRecord(name, "img")
    if state in ("running", "terminated"):
        r.running("local://1")
    if state == "terminated":
        r.terminated(code)
    return r


def test_phase_pending_until_a_container_runs() -> None:
    assert phase([], [rec("a")], final=False) == "Pending"
    assert phase([], [rec("a", "running")], final=False) == "Running"


def test_phase_final_depends_on_every_exit_code() -> None:
    assert phase([], [rec("a", "terminated"), rec("b", "terminated")], final=True) == "Succeeded"
    assert phase([], [rec("a", "terminated"), rec("b", "terminated", 2)], final=True) == "Failed"


def test_failed_init_container_fails_the_pod_when_final() -> None:
    init = [rec("i", "terminated", 1)]
    assert phase(init, [rec("a")], final=False) == "Pending"
    assert phase(init, [rec("a")], final=True) == "Failed"


def test_terminated_stanza_carries_code_reason_message_and_times() -> None:
    r = rec("a", "running")
    r.terminated(143, message="stopped", signal=15)
    s = r.stanza()
    t = s["state"]["terminated"]
    assert (t["exitCode"], t["reason"], t["message"], t["signal"]) == (143, "Error", "stopped", 15)
    assert t["startedAt"] and t["finishedAt"] and not s["ready"]


def test_restart_keeps_last_state_and_counts() -> None:
    r = rec("a", "terminated", 1)
    r.restarting()
    s = r.stanza()
    assert s["restartCount"] == 1
    assert s["lastState"]["terminated"]["exitCode"] == 1
    assert s["state"] == {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": "back-off restarting failed container a"}}


def test_conditions_keep_transition_time_when_unchanged() -> None:
    running = pod_status(POD, [], [rec("a", "running")], sandbox_ready=True, final=False,
                         start_time="s")
    ready = {c["type"]: c for c in running["conditions"]}["Ready"]
    assert ready["status"] == "True"
    again = pod_status({"status": running}, [], [rec("a", "running")], sandbox_ready=True,
                       final=False, start_time="s")
    assert {c["type"]: c for c in again["conditions"]}["Ready"]["lastTransitionTime"] == \
        ready["lastTransitionTime"]


def test_completed_pod_is_not_ready_with_reason_pod_completed() -> None:
    done = pod_status(POD, [], [rec("a", "terminated")], sandbox_ready=True, final=True,
                      start_time="s")
    conds = {c["type"]: c for c in done["conditions"]}
    assert done["phase"] == "Succeeded"
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "PodCompleted"
    assert conds["Initialized"]["status"] == "True"


def test_device_allocator_hands_out_distinct_indices_and_reuses_freed_ones() -> None:
    gpus = DeviceAllocator(2)
    assert gpus.allocate("a", 1) == [0]
    assert gpus.allocate("b", 1) == [1]
    assert gpus.allocate("c", 1) is None
    assert gpus.allocate("a", 1) == [0]  # idempotent per owner
    gpus.release("a")
    assert gpus.allocate("c", 1) == [0]
    assert gpus.allocate("d", 2) is None


def test_device_allocation_holds_up_when_pods_start_and_end_at_once() -> None:
    # Every pod runner allocates and releases from its own thread. Unguarded, a release during
    # another pod's allocation broke it ("dictionary changed size during iteration") and left
    # that pod without a status for good.
    gpus = DeviceAllocator(64)
    errors: list[BaseException] = []
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)

    def pod_lives(worker: int) -> None:
        try:
            for i in range(300):
                owner = f"pod-{worker}-{i}"
                got = gpus.allocate(owner, 2)
                assert got is not None and len(got) == 2
                assert all(gpus.owners[d] == owner for d in got)
                gpus.release(owner)
        except BaseException as e:  # reported below, from the main thread
            errors.append(e)

    try:
        threads = [threading.Thread(target=pod_lives, args=(w,)) for w in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(previous)
    assert errors == []
    assert gpus.owners == {}
