"""Who is admitted, in what order and how wide: admission_policy.decide over hand-built
Workloads."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from dataclasses import replace
from typing import Any

from videojob_operator.admission_loop import (
    FREED_PASS_GAP,
    MIN_PASS_GAP,
    merged_places,
    moved_enough,
    pass_gap,
)
from videojob_operator.admission_policy import (
    CreationOffer,
    PoolLimits,
    Workload,
    band,
    decide,
    pods_at_creation,
    served_at,
    settled,
    wait_seconds,
)


def work(name: str, ns: str = "a", *, priority: int = 0, created: str = "2026-01-01T00:00:00Z",
         **kw: Any) -> Workload:
    base: dict[str, Any] = {
        "namespace": ns, "job": f"{name}-keyframes", "videojob": name, "stage": "keyframes",
        "pool": "gpu", "priority": priority, "created": created, "completions": 1,
        "succeeded": 0, "parallelism": 1, "suspended": True, "held": False, "finished": False}
    base.update(kw)
    return Workload(**base)


def running(name: str, ns: str = "a", **kw: Any) -> Workload:
    return work(name, ns, suspended=False, running_pods=1, **kw)


def admitted(d: Any) -> list[str]:
    return [a.videojob for a in d.admits]


def test_priority_goes_first_then_age() -> None:
    d = decide("gpu", PoolLimits(2), [
        work("old", created="2026-01-01T00:00:00Z"), work("young", created="2026-01-01T00:05:00Z"),
        work("urgent", priority=10, created="2026-01-01T00:09:00Z")])
    assert admitted(d) == ["urgent", "old"]
    assert d.positions() == {("a", "young"): 1}


def test_equal_priority_namespaces_take_turns() -> None:
    burst = [work(f"a{i}", "a", created=f"2026-01-01T00:0{i}:00Z") for i in range(5)]
    other = [work(f"b{i}", "b", created=f"2026-01-01T00:1{i}:00Z") for i in range(5)]
    d = decide("gpu", PoolLimits(4), burst + other)
    assert admitted(d) == ["a0", "b0", "a1", "b1"]  # not a0..a3, though a's are all older
    # A namespace already holding a slot waits for the other.
    d = decide("gpu", PoolLimits(2), [running("a-busy", "a"), *burst, *other])
    assert admitted(d) == ["b0"]


def test_with_one_slot_the_namespace_served_longest_ago_goes_next() -> None:
    # Counting admitted Jobs alone, one slot would go to the oldest VideoJob every time: all of
    # a's burst before b's first. The last admission time breaks the tie in turn.
    burst = [work(f"a{i}", "a", created=f"2026-01-01T00:0{i}:00Z") for i in range(3)]
    other = [work(f"b{i}", "b", created=f"2026-01-01T00:1{i}:00Z") for i in range(3)]
    served: list[str] = []
    pool = burst + other
    for clock in range(6):
        d = decide("gpu", PoolLimits(1), pool)
        assert len(d.admits) == 1
        name = d.admits[0].videojob
        served.append(name)
        # It ran and finished; its Job keeps the time it was admitted.
        pool = [replace(w, suspended=False, finished=True,
                        admitted_at=f"2026-01-01T01:00:{clock:02d}.000000Z")
                if w.videojob == name else w for w in pool]
    assert served == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_a_wide_job_runs_narrower_and_is_widened_as_slots_free() -> None:
    seg = work("wide", stage="segments", completions=8, parallelism=8)
    d = decide("gpu", PoolLimits(3), [seg])
    (a,) = d.admits
    assert (a.parallelism, a.pods, a.widen) == (3, 3, False)
    partly = replace(seg, suspended=False, parallelism=3, succeeded=2, running_pods=3)
    assert decide("gpu", PoolLimits(3), [partly]).admits == []  # its 3 slots are its own
    (a,) = decide("gpu", PoolLimits(5), [partly]).admits  # two slots freed elsewhere
    assert (a.parallelism, a.pods, a.widen) == (5, 2, True)
    nearly = replace(partly, succeeded=7, running_pods=1)  # one index left: nothing to widen
    assert decide("gpu", PoolLimits(5), [nearly]).admits == []


def test_pending_pods_and_pods_of_stopped_jobs_hold_slots() -> None:
    waiting = work("next")
    pending = work("p", suspended=False, pending_pods=1)
    assert decide("gpu", PoolLimits(1), [pending, waiting]).admits == []
    stopping = work("s", suspended=True, held=True, running_pods=1)  # suspended, pod still there
    assert decide("gpu", PoolLimits(1), [stopping, waiting]).admits == []
    failed = work("f", suspended=False, finished=True, running_pods=1)
    assert decide("gpu", PoolLimits(1), [failed, waiting]).admits == []
    gone = work("g", suspended=False, finished=True)
    assert admitted(decide("gpu", PoolLimits(1), [gone, waiting])) == ["next"]


def test_a_succeeded_pod_frees_its_slot_before_the_job_counts_it() -> None:
    done_pod = work("d", suspended=False, succeeded=1)  # pod Succeeded, Job not yet Complete
    assert admitted(decide("gpu", PoolLimits(1), [done_pod, work("next")])) == ["next"]


def test_no_backfill_past_the_head() -> None:
    big = work("big", stage="segments", completions=2, slots_per_pod=2)
    small = work("small", created="2026-01-01T00:09:00Z")
    d = decide("gpu", PoolLimits(3), [running("r"), big, small])
    # big's first pod takes 2 of the 2 free slots; nothing jumps ahead of it
    assert admitted(d) == ["big"]
    d = decide("gpu", PoolLimits(2), [running("r"), big, small])
    assert d.admits == []  # 1 slot free, big needs 2 per pod: small waits behind it


def test_a_pod_wider_than_the_pool_is_admitted_alone() -> None:
    huge = work("huge", slots_per_pod=3)
    assert decide("gpu", PoolLimits(2), [running("r"), huge]).admits == []
    assert admitted(decide("gpu", PoolLimits(2), [huge])) == ["huge"]


def test_held_and_leaving_jobs_are_not_queued() -> None:
    held = work("held", held=True)
    leaving = work("leaving", leaving=True)
    d = decide("gpu", PoolLimits(5), [held, leaving, work("q")])
    assert admitted(d) == ["q"]
    assert (d.queued_jobs, d.held_jobs) == (1, 1)
    assert d.queued_by_priority == {0: 1}


def test_other_pools_are_not_counted() -> None:
    cpu = work("plan", pool="cpu", suspended=False, running_pods=1)
    assert admitted(decide("gpu", PoolLimits(1), [cpu, work("g")])) == ["g"]


def test_the_strategy_and_target_shape_the_admission() -> None:
    queue = [work(f"q{i}", created=f"2026-01-01T00:0{i}:00Z") for i in range(6)]
    d = decide("gpu", PoolLimits(10, target_queue_length=3), queue)
    assert len(d.admits) == 2  # ceil(6 / 3)
    d = decide("gpu", PoolLimits(10, min_concurrency=4, target_queue_length=3), queue)
    assert len(d.admits) == 4


def test_positions_count_from_one_after_this_pass() -> None:
    queue = [work(f"q{i}", created=f"2026-01-01T00:0{i}:00Z") for i in range(4)]
    d = decide("gpu", PoolLimits(1), queue)
    assert admitted(d) == ["q0"]
    assert d.positions() == {("a", "q1"): 1, ("a", "q2"): 2, ("a", "q3"): 3}


def test_a_videojob_in_two_queues_takes_its_better_place() -> None:
    cpu = {("a", "x"): 1, ("a", "y"): 2, ("b", "z"): 3}
    gpu = {("a", "y"): 1, ("b", "z"): 7}
    assert merged_places([gpu, cpu]) == {("a", "x"): 1, ("a", "y"): 1, ("b", "z"): 3}
    assert merged_places([{}, cpu, {}]) == cpu
    assert merged_places([{}, {}]) == {} and merged_places([]) == {}


def test_one_admission_requeues_only_the_places_whose_status_would_change() -> None:
    """The head admitted: every place behind it moves up one. Only the first ten places, and
    places further back that moved by a quarter of what their status shows, are reconciled."""
    n = 1000
    before = {("a", f"q{i}"): i for i in range(1, n + 1)}
    after = {("a", f"q{i}"): i - 1 for i in range(2, n + 1)}  # q1 admitted

    def written(key: tuple[str, str]) -> int | None:
        return before[key]

    requeued = moved_enough(before, after, written)
    assert sorted(after[k] for k in requeued) == list(range(1, 11))
    # Far back, the status showed an older, larger place: a quarter moved, so it is reconciled.
    assert moved_enough(before, after, lambda key: 800 if key == ("a", "q500") else before[key]
                        ) == [*requeued, ("a", "q500")]
    # A VideoJob whose status has no place yet is reconciled for its first one.
    assert moved_enough({}, {("a", "q9"): 900}, lambda key: None) == [("a", "q9")]
    # One that left the queue is not (the event of its admitted Job reconciles it).
    assert moved_enough(before, {}, written) == []


def test_bands_and_waits() -> None:
    assert [band(p) for p in (50, 0, -1)] == ["high", "normal", "low"]
    now = dt.datetime(2026, 1, 1, 0, 0, 3, 500000, tzinfo=dt.UTC)
    assert wait_seconds("2026-01-01T00:00:01.000000Z", now) == 2.5
    assert wait_seconds(None, now) is None and wait_seconds("garbage", now) is None


def test_admission_at_creation_grants_what_the_next_pass_would() -> None:
    # Over pools of every shape, a new Job in an empty queue gets at creation exactly what
    # decide() would give it once it sits suspended in the cache.
    for max_c in (1, 2, 3, 8):
        for strategy in ("default", "accurate", "eager"):
            for target in (1, 3):
                for busy in range(max_c + 2):
                    for completions, slots in ((1, 1), (4, 1), (2, 2)):
                        limits = PoolLimits(max_c, target_queue_length=target,
                                            strategy=strategy)  # type: ignore[arg-type]
                        others = [running(f"r{i}") for i in range(busy)]
                        new = work("new", stage="segments", completions=completions,
                                   parallelism=completions, slots_per_pod=slots)
                        d = decide("gpu", limits, [*others, new])
                        expected = sum(a.pods for a in d.admits if a.videojob == "new")
                        got = pods_at_creation(
                            CreationOffer(limits, replace(d.load, queued=0)), completions, slots)
                        assert got == expected, (max_c, strategy, target, busy, completions)


def test_nothing_is_admitted_at_creation_into_a_full_pool() -> None:
    full = decide("gpu", PoolLimits(2), [running("a"), running("b")]).load
    assert pods_at_creation(CreationOffer(PoolLimits(2), full), 1, 1) == 0
    # narrower, widened later
    assert pods_at_creation(CreationOffer(PoolLimits(3), full), 4, 1) == 1


def test_settled_jobs_left_out_with_their_service_times_decide_the_same() -> None:
    # Admission passes leave finished Jobs with no pod left out, passing on only when each
    # namespace was last served (admitter.live_workloads): the decision must not change.
    rng = random.Random(7)
    for trial in range(300):
        pool = []
        for i in range(rng.randint(1, 12)):
            finished = rng.random() < 0.4
            suspended = not finished and rng.random() < 0.6
            pool.append(work(
                f"v{i}", rng.choice("abc"), priority=rng.choice([0, 0, 10]),
                created=f"2026-01-01T00:00:{rng.randint(0, 59):02d}Z",
                suspended=suspended, finished=finished,
                held=suspended and rng.random() < 0.2,
                running_pods=0 if suspended or rng.random() < 0.5 else 1,
                pending_pods=int(not suspended and rng.random() < 0.2),
                admitted_at=None if suspended and rng.random() < 0.5
                else f"2026-01-01T00:01:{rng.randint(0, 59):02d}.000000Z"))
        limits = PoolLimits(rng.randint(1, 4))
        settled_ones = [w for w in pool if settled(w)]
        live = [w for w in pool if not settled(w)]
        whole, split = decide("gpu", limits, pool), decide("gpu", limits, live,
                                                           served_at(settled_ones))
        assert split.admits == whole.admits, trial
        assert [w.job for w in split.order] == [w.job for w in whole.order], trial
        assert (split.load, split.queued_jobs, split.held_jobs, split.desired,
                split.queued_by_priority) == (whole.load, whole.queued_jobs, whole.held_jobs,
                                              whole.desired, whole.queued_by_priority), trial


def test_the_order_and_the_counts_match_their_definitions_on_random_queues() -> None:
    # decide's order and tally take shortcuts (one pass over the workloads, a second sort on
    # turns alone): they must give what the definitions give, spelled out here.
    rng = random.Random(11)
    for trial in range(300):
        pool = []
        for i in range(rng.randint(1, 30)):
            suspended = rng.random() < 0.7
            finished = not suspended and rng.random() < 0.3
            pool.append(work(
                f"v{i}", rng.choice("abcd"), priority=rng.choice([0, 0, 5, -5]),
                created=f"2026-01-01T00:00:{rng.randint(0, 9):02d}Z",
                completions=rng.randint(1, 3), succeeded=rng.randint(0, 1),
                parallelism=rng.randint(1, 2), suspended=suspended, finished=finished,
                held=rng.random() < 0.1, leaving=rng.random() < 0.1,
                running_pods=rng.randint(0, 1), pending_pods=rng.randint(0, 1),
                slots_per_pod=rng.choice([1, 1, 2]),
                admitted_at=rng.choice([None, f"2026-01-01T00:01:{rng.randint(0, 9):02d}Z"])))
        d = decide("gpu", PoolLimits(rng.randint(0, 6)), pool)

        waiting = [w for w in pool if w.wanted > 0]
        per_ns = Counter(w.namespace for w in pool if w.admitted)
        served = served_at(pool)
        keys = []
        for w in waiting:
            rank = sum(1 for o in waiting if o.priority == w.priority and o.namespace
                       == w.namespace and (o.created, o.videojob, o.job)
                       < (w.created, w.videojob, w.job))
            keys.append(((-w.priority, per_ns[w.namespace] + rank, served.get(w.namespace, ""),
                          w.created, w.namespace, w.videojob, w.job), w.job))
        assert [w.job for w in d.order] == [job for _, job in sorted(keys)], trial

        occupied = sum(w.occupied for w in pool)
        running_slots = min(sum(w.running_pods * w.slots_per_pod for w in pool), occupied)
        assert (d.load.queued, d.load.running, d.load.pending) == (
            sum(w.wanted * w.slots_per_pod for w in pool), running_slots,
            occupied - running_slots), trial
        assert d.queued_by_priority == dict(Counter(w.priority for w in pool if w.queued)), trial
        assert d.held_jobs == sum(1 for w in pool if w.suspended and w.held and not w.finished
                                  and not w.leaving), trial


def test_passes_take_at_most_a_third_of_the_loop_or_half_after_a_freed_slot() -> None:
    assert pass_gap(False, 0.005) == MIN_PASS_GAP and pass_gap(True, 0.005) == FREED_PASS_GAP
    assert pass_gap(True, 0.005) < pass_gap(False, 0.005)  # a freed slot waits less
    for cost in (0.05, 0.2):  # long passes: 10,000 queued
        assert cost / pass_gap(False, cost) <= 1 / 3 + 1e-9
        assert cost / pass_gap(True, cost) <= 1 / 2 + 1e-9


def test_a_pool_with_no_room_is_decided_without_ordering_its_queue() -> None:
    """A pass that finds every slot taken admits nothing: the queue is ordered only when
    something reads it (queue places, the mirror, the pool status), and the same as ever."""
    queue = [work(f"q{i}", "ab"[i % 2], created=f"2026-01-01T00:00:{59 - i:02d}Z")
             for i in range(40)]
    full = decide("gpu", PoolLimits(1), [running("busy"), *queue])
    assert full.admits == [] and full._order is None
    assert not full.all_granted() and full._order is None  # someone waits: known by count
    room = decide("gpu", PoolLimits(2), [running("busy"), *queue])
    assert room._order is not None and len(room.admits) == 1
    assert full.order == room.order and len(full.order) == 40
    assert full.positions() == {("b", "q39"): 1, **{k: v + 1 for k, v in room.positions().items()}}
