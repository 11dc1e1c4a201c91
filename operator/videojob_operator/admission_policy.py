"""Queue admission, as a pure function: every stage Job of a pool -> which to admit, and how wide.

Admission by suspension (as Kueue does it): the planner creates each stage Job with
`suspend: true`; this decides which suspended Jobs to unsuspend, and with what `parallelism`, so
that a pool never has more pods than it has slots. The cluster is the source of truth: the queue
*is* the set of suspended stage Jobs whose VideoJob is neither suspended nor deleted, so nothing
here depends on Redis (redis_queue.py mirrors the result there).

Order: priority (higher first); within one priority namespaces take turns (the namespace with
fewer Jobs admitted in the pool goes first, and between namespaces holding as many, the one
served longest ago, so one tenant's burst cannot starve another even with a single slot); then
the VideoJob's age (older first, so VideoJobs finish rather than all advancing a little), then
names. The head of the queue is never skipped for a smaller Job behind it (no backfill), so a
wide Job is not starved by narrow ones.

A Job that needs more pods than are free is admitted with a lower `parallelism` that fits and
widened as slots free up (its remaining pods stay in the queue). Slots are counted in pods,
including Pending ones and the pods of suspended or finished Jobs that have not gone yet.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter

from . import scaling
from .scaling import PoolLoad, Strategy


@dataclass(frozen=True, slots=True)  # one per stage Job held: thousands
class Workload:
    """One stage Job, as admission sees it."""

    namespace: str
    job: str
    videojob: str
    stage: str
    pool: str
    priority: int
    created: str  # the VideoJob's creationTimestamp
    completions: int
    succeeded: int  # indexes done (the Job's count, or more if its pods already say so)
    parallelism: int
    suspended: bool
    held: bool  # its VideoJob is suspended: not in the queue, keeps its place for the resume
    finished: bool  # Complete or Failed
    running_pods: int = 0  # pods of this Job Running now
    pending_pods: int = 0  # pods of this Job Pending now
    slots_per_pod: int = 1
    queued_at: str | None = None
    admitted_at: str | None = None  # when admission last unsuspended it (RFC 3339, microseconds)
    # Its VideoJob is deleted or finished, or the Job is being deleted: never admitted again,
    # but its pods hold their slots until they are gone.
    leaving: bool = False
    # Its place by age in its priority band (`order`): built once with the workload, not at
    # every pass that orders thousands of them.
    age: tuple[str, str, str, str] = field(init=False, repr=False, compare=False)
    # Its VideoJob's key, (namespace, name): the queue places (`PoolDecision.positions`) are
    # keyed by it, once a second over every queued Job.
    key: tuple[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "age", (self.created, self.namespace, self.videojob, self.job))
        object.__setattr__(self, "key", (self.namespace, self.videojob))

    @property
    def remaining(self) -> int:
        return max(self.completions - self.succeeded, 0)

    @property
    def admitted(self) -> bool:
        return not self.suspended and not self.finished

    @property
    def queued(self) -> bool:
        """Waiting in the queue: suspended, and neither held nor leaving."""
        return self.suspended and not (self.held or self.finished or self.leaving)

    @property
    def claimed(self) -> int:
        """Pods the Job may have at once: its parallelism, bounded by the indexes left."""
        return min(self.parallelism, self.remaining) if self.admitted else 0

    @property
    def occupied(self) -> int:
        """Slots taken: what it may run, or more while pods of an earlier grant still exist."""
        return max(self.claimed, self.running_pods + self.pending_pods) * self.slots_per_pod

    @property
    def wanted(self) -> int:
        """Pods it still waits for (0 unless queued or admitted narrower than its work)."""
        if self.held or self.finished or self.leaving:
            return 0
        return self.remaining - self.claimed


@dataclass(frozen=True)
class PoolLimits:
    max_concurrency: int
    min_concurrency: int = 0
    target_queue_length: int = 1
    strategy: Strategy = "default"


@dataclass(frozen=True)
class Admit:
    namespace: str
    job: str
    videojob: str
    parallelism: int  # the Job's new parallelism
    pods: int  # pods added by this admission
    widen: bool  # an admitted Job made wider (else: unsuspended)
    priority: int
    queued_at: str | None


@dataclass
class PoolDecision:
    pool: str
    limits: PoolLimits
    load: PoolLoad
    queued_jobs: int  # suspended Jobs waiting (the queue depth)
    held_jobs: int  # suspended Jobs of suspended VideoJobs (kept, not queued)
    desired: int
    admits: list[Admit] = field(default_factory=list)
    queued_by_priority: dict[int, int] = field(default_factory=dict)  # priority -> queued Jobs
    waiting: int = 0  # Jobs that want pods: the queue's length
    # The queue, head first (`order`), worked out on first use: a pass that finds no room in
    # the pool admits nothing and needs none of it, and what reads all of it (queue places,
    # the Redis mirror, the pool's status) reads it at most a few times a second. With 10,000
    # queued, ordering them was most of a pass.
    ordering: Callable[[], list[Workload]] = field(default=list, repr=False, compare=False)
    _order: list[Workload] | None = field(default=None, repr=False, compare=False)

    @property
    def order(self) -> list[Workload]:
        if self._order is None:
            self._order = self.ordering()
        return self._order

    def all_granted(self) -> bool:
        """Every Job in the queue got all it wanted: nobody is left waiting in the pool."""
        if self.waiting > len(self.admits):
            return False  # one at least got nothing (the queue is not ordered for this)
        granted = {(a.namespace, a.job): a.pods for a in self.admits}
        return all(w.wanted <= granted.get((w.namespace, w.job), 0) for w in self.order)

    def positions(self) -> dict[tuple[str, str], int]:
        """(namespace, VideoJob) -> place in the queue (1 = next), after this pass's admits."""
        admitted = {(a.namespace, a.job) for a in self.admits if not a.widen}
        queue = self.order
        if admitted:
            queue = [w for w in queue if (w.namespace, w.job) not in admitted]
        out: dict[tuple[str, str], int] = {}
        for place, w in enumerate(queue, 1):
            if w.key not in out:  # a VideoJob's place is its first queued Job's
                out[w.key] = place
        return out


def order(queue: list[Workload], admitted_per_namespace: Counter[str],
          last_served: dict[str, str] | None = None) -> list[Workload]:
    """Priority, then namespaces in turn, then VideoJob age, then names.

    A namespace's n-th queued Job has turn (Jobs it has admitted now) + n; equal turns go to the
    namespace whose last admission (`last_served`, RFC 3339) is oldest, never-served first.

    One sort by age and names gives each Job its rank in its namespace; the second sorts by
    (turn, last served) alone, and Python's sort is stable, so equal ones keep the first
    order. A band of one namespace needs no second sort: its turns rise with its ages. Every
    pass with room orders every queued Job, so this is most of a pass with 10,000 queued
    (bench/admission_pass.py): each Job's age key is built once (`Workload.age`), and the turns
    are numbered per namespace in one list each, with no Counter lookup per Job.
    """
    served = last_served or {}
    by_band: dict[int, list[Workload]] = defaultdict(list)
    for w in queue:
        by_band[w.priority].append(w)
    out: list[Workload] = []
    for priority in sorted(by_band, reverse=True):
        band = sorted(by_band[priority], key=_by_age)
        places: dict[str, list[int]] = defaultdict(list)  # namespace -> its places, by age
        for place, w in enumerate(band):
            places[w.namespace].append(place)
        if len(places) == 1:
            out += band
            continue
        # (turn, last served, place) packed in one int, which sorts as the tuple would, and
        # several times faster: the last services by rank among the band's namespaces.
        lasts = sorted({served.get(ns, "") for ns in places})
        rank = {last: i for i, last in enumerate(lasts)}
        size, width = len(band), len(lasts)
        keyed: list[int] = []
        for ns, its in places.items():
            first, last = admitted_per_namespace.get(ns, 0), rank[served.get(ns, "")]
            keyed += [((first + turn) * width + last) * size + place
                      for turn, place in enumerate(its)]
        keyed.sort()
        out += [band[k % size] for k in keyed]
    return out


_by_age = attrgetter("age")


def settled(w: Workload) -> bool:
    """Finished, with no pod left: it takes no slot, waits for nothing and is in no count, and
    only its admission time still matters (a namespace's last service, `order`). Such Jobs are
    most of a busy cluster's (every finished stage of every VideoJob still there); admission
    passes leave them out (`decide`'s `served`)."""
    return w.finished and w.running_pods == 0 and w.pending_pods == 0


def served_at(workloads: list[Workload]) -> dict[str, str]:
    """Namespace -> the latest admission among `workloads` (RFC 3339)."""
    out: dict[str, str] = {}
    for w in workloads:
        if w.admitted_at and w.admitted_at > out.get(w.namespace, ""):
            out[w.namespace] = w.admitted_at
    return out


@dataclass
class _Tally:
    """A pool's workloads counted in one go: slots taken and running, the waiting ones and the
    slots they want, Jobs admitted per namespace, queued per priority, and held."""

    occupied: int = 0
    running: int = 0
    queued_slots: int = 0
    held_jobs: int = 0
    waiting: list[Workload] = field(default_factory=list)
    admitted_per_namespace: Counter[str] = field(default_factory=Counter)
    queued_by_priority: Counter[int] = field(default_factory=Counter)

    @classmethod
    def of(cls, workloads: list[Workload]) -> _Tally:
        t = cls()
        for w in workloads:
            pods = w.running_pods + w.pending_pods
            t.running += w.running_pods * w.slots_per_pod
            if w.suspended and not (w.held or w.finished or w.leaving):
                # Queued, as most are with thousands there: claims nothing, wants what is left.
                t.occupied += pods * w.slots_per_pod
                t.queued_by_priority[w.priority] += 1
                left = w.completions - w.succeeded
                if left > 0:
                    t.waiting.append(w)
                    t.queued_slots += left * w.slots_per_pod
                continue
            t.occupied += w.occupied
            wanted = w.wanted
            if wanted > 0:
                t.waiting.append(w)
                t.queued_slots += wanted * w.slots_per_pod
            if w.admitted:
                t.admitted_per_namespace[w.namespace] += 1
            elif w.suspended and w.held and not w.finished and not w.leaving:
                t.held_jobs += 1
        return t


def decide(pool: str, limits: PoolLimits, workloads: list[Workload],
           served: dict[str, str] | None = None) -> PoolDecision:
    """What to admit in one pool now. `served`: the last admission per namespace of the pool's
    Jobs left out of `workloads` (`settled` ones); the decision is the same as with them in."""
    mine = [w for w in workloads if w.pool == pool]
    tally = _Tally.of(mine)  # one look at each workload: with 10,000 queued, passes add up
    running = min(tally.running, tally.occupied)
    load = PoolLoad(queued=tally.queued_slots, running=running, pending=tally.occupied - running)
    budget = scaling.admit_count(limits.strategy, load, max_concurrency=limits.max_concurrency,
                                 min_concurrency=limits.min_concurrency,
                                 target_queue_length=limits.target_queue_length)
    last_served = dict(served or {})
    for ns, at in served_at(mine).items():
        if at > last_served.get(ns, ""):
            last_served[ns] = at
    decision = PoolDecision(
        pool=pool, limits=limits, load=load, queued_jobs=sum(tally.queued_by_priority.values()),
        held_jobs=tally.held_jobs,
        desired=scaling.desired(load, max_concurrency=limits.max_concurrency,
                                min_concurrency=limits.min_concurrency,
                                target_queue_length=limits.target_queue_length),
        queued_by_priority=dict(tally.queued_by_priority), waiting=len(tally.waiting),
        ordering=partial(order, tally.waiting, tally.admitted_per_namespace, last_served),
    )
    free = limits.max_concurrency - tally.occupied
    if budget <= 0 or free <= 0:
        return decision  # no room: every Job's pods would be 0 (each costs a slot at least)
    for w in decision.order:
        # A pod wider than the whole pool is admitted alone (when the pool is empty), so the
        # scheduler's verdict and timeouts.pendingSeconds tell the user, not an endless queue.
        cost = min(w.slots_per_pod, max(limits.max_concurrency, 1))
        pods = min(w.wanted, budget // cost, free // cost)
        if pods <= 0:
            break  # no backfill past the head
        budget -= pods * cost
        free -= pods * cost
        decision.admits.append(Admit(
            namespace=w.namespace, job=w.job, videojob=w.videojob,
            parallelism=w.claimed + pods, pods=pods, widen=w.admitted, priority=w.priority,
            queued_at=w.queued_at))
    return decision


@dataclass(frozen=True)
class CreationOffer:
    """What a pool where nothing waits offers a stage Job created now: its limits, and its load
    after every admission so far (the last pass's and those at creation since)."""

    limits: PoolLimits
    load: PoolLoad


def pods_at_creation(offer: CreationOffer, completions: int, slots_per_pod: int) -> int:
    """Pods of a new stage Job to admit as it is created: what `decide` would grant it on the
    pass after its creation, so the Job can be created unsuspended instead of created, then
    unsuspended (one write, and one pass, fewer). 0 means: create it suspended and let the
    queue have it."""
    limits, load = offer.limits, offer.load
    cost = min(slots_per_pod, max(limits.max_concurrency, 1))
    queued = PoolLoad(queued=completions * slots_per_pod, running=load.running,
                      pending=load.pending)
    budget = scaling.admit_count(limits.strategy, queued, max_concurrency=limits.max_concurrency,
                                 min_concurrency=limits.min_concurrency,
                                 target_queue_length=limits.target_queue_length)
    free = limits.max_concurrency - load.running - load.pending
    return max(0, min(completions, budget // cost, free // cost))


def wait_seconds(queued_at: str | None, now: dt.datetime) -> float | None:
    """Admission wait of a Job queued at `queued_at` (RFC 3339), admitted `now`."""
    if not queued_at:
        return None
    try:
        since = dt.datetime.fromisoformat(queued_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max((now - since).total_seconds(), 0.0)


def band(priority: int) -> str:
    """Priority band for metrics labels (bounded): high > 0, normal = 0, low < 0."""
    return "high" if priority > 0 else "low" if priority < 0 else "normal"
