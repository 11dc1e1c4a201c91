"""Runs admission: gathers every pool's Jobs from the store's caches, asks
`admission_policy.decide`, unsuspends what it says, and publishes the result.

Event-driven: every Job, pod, node or configuration event, and every VideoJob change admission
reads (store.queue_view), calls `trigger()`, and one pass runs at once (passes coalesce while one
is running, and start `MIN_PASS_GAP` apart, further apart when a pass is long: `pass_gap`). A
stage pod's success also frees a slot: a pass over the pools where slots freed alone follows
within `FREED_PASS_GAP`, so a long queue in another pool neither delays nor slows it. A
Job, pod or VideoJob event marks its VideoJob (`changed`), and a pass rebuilds the admission
view of those VideoJobs' Jobs only: with thousands of VideoJobs, rebuilding all of them on
every event took a fifth of the operator's CPU. The pools' `pollingIntervalSeconds` is only a
safety net for missed events; KEDA, by contrast, waits for its 30 s poll.

Each admission is a patch with the Job's resourceVersion as precondition, so a Job changed since
it was observed (suspended again by the planner, deleted) is not admitted on stale grounds. The
patches do not hold up the next pass: until a patch answers, passes count its Job as admitted,
and the answer goes straight into the cache, so the next pass counts the new pods before the
watch delivers them. After a pass: queue positions go to the VideoJobs that moved enough for their
status to show it (`moved_enough`), the pool state to metrics, to the `VideoJobPool` objects and
to the Redis mirror.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from kubernetes.client import ApiException

from videojob_common.archive.rows import COMPLETION_INDEX
from videojob_common.pipeline import TERMINAL, Obj

from . import admission_policy as policy
from . import metrics, pools, scaling
from .admission_policy import CreationOffer, PoolDecision, PoolLimits, Workload
from .api import API_VERSION, POOL_KIND, PoolStatus
from .config import LiveConfig, OperatorConfig
from .jobs import ANNOTATION_ADMITTED_AT, ANNOTATION_QUEUED_AT, LABEL_STAGE
from .logs import ctx
from .status import position_worth_writing, ts_micro
from .store import Change, Key, Store
from .views import JOB_NAME_LABEL

log = logging.getLogger("videojob.admission")
# Seconds between writes of one VideoJobPool object. Visibility only (admission reads the
# cluster, and the Redis mirror and the metrics are live): a write of a custom resource costs
# the API server about 12 ms of CPU, and during a burst the counts change at every pass, so a
# write a second per pool was a write a second for as long as anything ran. Kueue refreshes its
# queue visibility every 5 s by default too.
POOL_STATUS_INTERVAL = 5.0
# Seconds from one admission pass's start to the next's at least. Under load, events arrive
# faster than passes run and each pass orders every pool's Jobs; a pass every 100 ms at most
# takes the events of that time together and keeps a freed slot's reaction well inside its
# 250 ms goal (bench/admission.py). A stage that need not wait is admitted as it is created,
# without a pass (offers).
MIN_PASS_GAP = 0.1
# The same for a pass over the pools where a slot freed (a stage pod succeeded) alone: the
# queue's head waits for it, so it comes sooner, and no other pool's queue (thousands of plan
# Jobs, say) is ordered before it (bench/scale.py: admission with thousands queued).
FREED_PASS_GAP = 0.02
# Seconds between two computations of every queued VideoJob's place (for `status.queuePosition`):
# with 10,000 queued, that is a fifth of a pass, and a place shown a second late misleads no one.
POSITION_INTERVAL = 1.0


class AdmissionWriter(Protocol):
    """All admission writes to the API: unsuspending or widening Jobs, and the pool objects
    (kube.Api)."""

    async def patch_job(self, namespace: str, name: str, patch: Obj) -> Obj: ...

    async def cluster_role_uid(self, name: str) -> str: ...

    async def write_pool_status(self, name: str, patch: Obj, body: Obj) -> None: ...


async def _woken(event: asyncio.Event, timeout: float) -> None:
    """Until `event` is set or `timeout` seconds pass. Not `asyncio.wait_for`: on Python 3.11 it
    returns the event's result, and the task's cancellation is lost, when both come in the same
    turn of the loop (gh-86296), and the loop that was being stopped would go on."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()


class Admitter:
    def __init__(self, store: Store, config: LiveConfig, writer: AdmissionWriter, *,
                 requeue: Callable[[Key], None],
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        """`requeue`: a VideoJob whose place in the queue changed, to be reconciled."""
        self.store = store
        self.config = config
        self.writer = writer
        self.requeue = requeue
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        store.subscribe(self.changed)
        config.subscribe(lambda _: self.trigger())
        self.nodes: dict[str, Obj] = {}
        self.wake = asyncio.Event()
        self.last_pass = 0.0  # monotonic start of the last pass over every pool
        self.last_cost = 0.0  # its duration, its patches' answers and pool writes left out
        # The same for the passes over the pools where slots freed alone (`freed`).
        self.freed_wake = asyncio.Event()
        self.last_freed_pass = 0.0
        self.freed_cost = 0.0
        self.positions_at = -POSITION_INTERVAL  # monotonic: when `positions` was last computed
        self.positions: dict[Key, int] = {}
        self.decisions: dict[str, PoolDecision] = {}
        self.admitted_total: Counter[str] = Counter()
        self.last_decision: dict[str, tuple[str, str]] = {}
        self.last_busy: dict[str, float] = {}
        self.last_desired: dict[str, int] = {}
        self.pool_written: dict[str, tuple[Obj, float]] = {}
        self.pool_due: set[str] = set()  # pools with a pass to come for their status
        self.publish: list[Any] = []  # callbacks(decisions, held) after each pass
        self.pool_owner: list[Obj] | None = None
        self.pool_owner_lock = asyncio.Lock()
        # Admission at creation (offers, creating). Each pass takes a snapshot of the caches;
        # `decided` holds every pool's newest decision with the snapshot it came from, as soon
        # as it is made (its patches may still be under way). Admissions at creation made since
        # that snapshot (`at_creation`: snapshot, pool, slots) are not in it, nor is a Job
        # created suspended because there was no room (`refused_at`: pool -> snapshot).
        self.snapshot = 0
        self.decided: dict[str, tuple[int, PoolDecision]] = {}
        self.at_creation: list[tuple[int, str, int]] = []
        self.refused_at: dict[str, int] = {}
        # Jobs admitted at creation whose create is under way: counted as admitted by passes.
        self.being_created: dict[tuple[str, str], Workload] = {}
        # Jobs whose admission patch is under way, as they will be once it lands: passes count
        # them so, in place of the cache's copy (`_send`).
        self.admitting: dict[tuple[str, str], Workload] = {}
        self.sending: set[asyncio.Task[None]] = set()
        # pool -> when slots were seen freed (monotonic) since the last pass began: the pass
        # gives them to its admissions in that order, to time the reaction
        # (metrics.ADMISSION_REACTION).
        self.freed: dict[str, list[float]] = defaultdict(list)
        self.offered: dict[str, CreationOffer] | None = None  # offers(), until something changes
        # The admission view of each VideoJob's Jobs, rebuilt for the VideoJobs marked `stale`
        # (all of them when the configuration changes: pools and slots depend on it).
        self.view: dict[Key, list[Workload]] = {}
        # The view less its settled workloads, by pool: a pass over the pools where slots
        # freed gathers theirs alone, not every other pool's queue (thousands of plan Jobs).
        self.live: dict[str, dict[Key, list[Workload]]] = defaultdict(dict)
        self.served: dict[Key, dict[str, dict[str, str]]] = {}  # pool -> ns -> last admission
        self.served_total: dict[str, dict[str, str]] | None = None  # over all keys; None: stale
        # In the order their changes came (a dict, not a set), so the live view is filed in
        # about the queue's order (creation), and ordering it for a pass is a sort of a
        # nearly sorted list (bench/admission_pass.py: a set's hash order cost a full sort).
        self.stale: dict[Key, None] = {}
        self.view_config: object = None

    # -- inputs ---------------------------------------------------------------------------

    def trigger(self) -> None:
        self.wake.set()

    def _pool_due(self, name: str) -> None:
        self.pool_due.discard(name)
        self.trigger()

    def changed(self, change: Change) -> None:
        """A Job, pod or the VideoJob itself of `change.key` changed (store.Store)."""
        if change.kind == "progress" or not change.queue:
            return
        self.stale[change.key] = None
        self.wake.set()
        if change.freed:
            with contextlib.suppress(StopIteration):  # a stage in no pool: nothing freed
                pool = pools.pool_of(self.config.current.pools, change.freed)
                self.freed[pool].append(time.monotonic())
                self.freed_wake.set()

    def observe_node(self, event_type: str | None, node: Obj) -> None:
        name = node["metadata"]["name"]
        if event_type == "DELETED":
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = node
        self.trigger()

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Passes over every pool, `pass_gap` apart; and between them, as soon as a slot frees,
        passes over the pools where slots freed alone, `pass_gap(True, ...)` apart (the change
        that freed a slot also asks for a pass over every pool, which follows at its pace)."""
        while not stop.is_set():
            interval = min(p.polling_interval_seconds
                           for p in self.config.current.pools.values())
            if self.positions_due():
                interval = min(interval, max(self.positions_at + POSITION_INTERVAL
                                             - time.monotonic(), 0.0))
            await _woken(self.wake, interval)
            now = time.monotonic()
            full_at = self.last_pass + pass_gap(False, self.last_cost)
            if self.freed and now < full_at:  # once the full pass is due, it takes them
                wait = self.last_freed_pass + pass_gap(True, self.freed_cost) - now
                if wait > 0:
                    await asyncio.sleep(wait)
                self.last_freed_pass = time.monotonic()
                await self._pass(set(self.freed))
                continue
            wait = full_at - now
            if wait > 0:
                await _woken(self.freed_wake, wait)  # a slot freed meanwhile goes first
                if self.freed:
                    continue
            self.wake.clear()
            self.last_pass = time.monotonic()
            await self._pass(None)

    async def _pass(self, only: set[str] | None) -> None:
        try:
            await self.admit(only)
        except Exception:
            log.exception("admission pass failed")
            await asyncio.sleep(1.0)
            self.trigger()

    def positions_due(self) -> bool:
        """A pass over every pool left the queue's places uncomputed (`POSITION_INTERVAL`)."""
        return self.positions_at < self.last_pass

    async def admit(self, only: set[str] | None = None) -> None:
        """One pass: every pool, or the pools `only` (those where slots freed)."""
        started = time.perf_counter()
        config = self.config.current
        names = [name for name in config.pools if only is None or name in only]
        began = time.monotonic()
        freed = {name: self.freed.pop(name) for name in names if name in self.freed}
        for name in [name for name in self.freed if name not in config.pools]:
            del self.freed[name]  # a pool removed since its slot freed
        if not self.freed:
            self.freed_wake.clear()
        self.snapshot += 1
        snapshot = self.snapshot
        by_pool: dict[str, list[Workload]] = defaultdict(list)
        live, served = self.live_workloads(only)
        for w in live:
            if only is None or w.pool in only:  # Jobs being created are in every pool's
                by_pool[w.pool].append(w)
        decisions: dict[str, PoolDecision] = {}
        # Pools where a slot freed first: their admissions go out before the other pools (a
        # long queue of plan Jobs, say) are even ordered.
        for name in sorted(names, key=lambda pool: pool not in freed):
            d = policy.decide(name, self._limits(config, name), by_pool[name], served.get(name))
            # A Job whose admission is under way is not patched twice.
            d.admits = [a for a in d.admits if (a.namespace, a.job) not in self.admitting]
            decisions[name] = d
            self.decided[name] = (snapshot, d)
            # Metrics first: they show the decided state while the patches are under way.
            self._report({name: d})
            self._send(d, began, freed.get(name, []))
        # What this pass's decisions took in (admissions at creation), in its pools.
        self.at_creation = [e for e in self.at_creation
                            if e[0] >= snapshot or e[1] not in decisions]
        self.offered = None
        if only is not None:
            self.decisions = {**self.decisions, **decisions}
            self.freed_cost = time.perf_counter() - started
            return
        self.decided = {name: self.decided[name] for name in decisions}  # pools removed
        self.decisions = decisions
        if time.monotonic() - self.positions_at >= POSITION_INTERVAL:
            self.positions_at = time.monotonic()
            self._positions(decisions)
        if self.publish:
            held = {name: [f"{w.namespace}/{w.job}" for w in by_pool[name]
                           if w.held and w.suspended and not w.finished and not w.leaving]
                    for name in decisions}
            for callback in self.publish:
                callback(decisions, held)
        self.last_cost = time.perf_counter() - started
        metrics.ADMISSION_PASS.observe(self.last_cost)
        await self._write_pools(decisions)

    def _send(self, d: PoolDecision, began: float, freed: list[float]) -> None:
        """The patches of a decision's admissions, under way without holding up the next pass:
        until each answers, passes count its Job as admitted (`admitting`), so a slot freed
        meanwhile is given to the next in the queue, not to the same Job twice. A patch refused
        (the Job changed since it was decided on) triggers a pass that decides again.
        `freed`: when the pool's slots freed since the last pass, given to the admissions in
        order, for the reaction's figures."""
        if not d.admits:
            return
        now = self.clock()
        # The admits are the queue's head, in order (no backfill).
        by_job = {(w.namespace, w.job): w for w in d.order[:len(d.admits)]}
        for i, a in enumerate(d.admits):
            freed_at = freed[i] if i < len(freed) else None
            w = by_job[(a.namespace, a.job)]
            self.admitting[(a.namespace, a.job)] = replace(
                w, suspended=False, parallelism=a.parallelism,
                admitted_at=w.admitted_at if a.widen else ts_micro(now))
            if freed_at is not None:
                metrics.ADMISSION_DELAY.labels(d.pool).observe(began - freed_at)
            task = asyncio.get_running_loop().create_task(self._admit(d, a, now, freed_at))
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)

    def _limits(self, config: OperatorConfig, name: str) -> PoolLimits:
        pool = config.pools[name]
        return PoolLimits(
            max_concurrency=pools.capacity(
                pool, list(self.nodes.values()),
                gpu_resource=config.defaults.gpu_resource_name,
                gpu_selector=config.defaults.gpu_node_selector,
                gpus_per_pod=config.defaults.gpu_count),
            min_concurrency=pool.min_concurrency,
            target_queue_length=pool.target_queue_length,
            strategy=pool.strategy)

    # -- gathering ------------------------------------------------------------------------

    def workloads(self) -> list[Workload]:
        """Every stage Job as admission sees it (and the Jobs being created admitted)."""
        self._refresh()
        return self._in_flight([w for ws in self.view.values() for w in ws])

    def live_workloads(self, only: set[str] | None = None
                       ) -> tuple[list[Workload], dict[str, dict[str, str]]]:
        """What a pass decides from: the workloads less the settled ones (admission_policy.settled)
        of every pool, or of the pools `only` (and every Job being created), and, per pool, the
        last admission per namespace among those left out."""
        self._refresh()
        if self.served_total is None:
            self.served_total = _latest_by_namespace(self.served.values())
        live = self._in_flight([w for pool, by_key in self.live.items()
                                if only is None or pool in only
                                for ws in by_key.values() for w in ws])
        return live, self.served_total

    def _in_flight(self, cached: list[Workload]) -> list[Workload]:
        """The cache's workloads with those whose create or admission is under way as they
        will be once it lands."""
        if self.admitting:
            names = {job for _, job in self.admitting}  # a name first: no key built per Job
            cached = [self.admitting.get((w.namespace, w.job), w) if w.job in names else w
                      for w in cached]
        return cached + list(self.being_created.values())

    def _refresh(self) -> None:
        """The view brought up to date for the VideoJobs whose Jobs, pods or selves changed."""
        config = self.config.current
        if config is not self.view_config:
            self.view_config = config
            self.stale.update(dict.fromkeys([*self.view, *self.store.jobs]))
        for key in self.stale:
            if self.store.jobs.get(key):
                self._rebuild(key, config)
            else:
                self.view.pop(key, None)
                self._set_live(key, [])
                if self.served.pop(key, None):
                    self.served_total = None
        self.stale.clear()

    def _rebuild(self, key: Key, config: OperatorConfig) -> None:
        """The view of one VideoJob's Jobs: the live ones, and when the settled ones were
        last admitted, by pool and namespace."""
        ws = self._workloads(key, config)
        self.view[key] = ws
        self._set_live(key, [w for w in ws if not policy.settled(w)])
        by_pool: dict[str, list[Workload]] = defaultdict(list)  # the settled ones
        for w in ws:
            if policy.settled(w):
                by_pool[w.pool].append(w)
        served = {pool: policy.served_at(d) for pool, d in by_pool.items()}
        before = self.served.get(key, {})
        if before != served:
            if self.served_total is not None and _only_later(before, served):
                # The usual change, a Job settled: folded into a new total (a pass may still
                # hold the old one), copying only the pools it touches.
                total = {**self.served_total}
                for pool in served:
                    total[pool] = dict(total.get(pool, {}))
                _merge_latest(total, served)
                self.served_total = total
            else:
                self.served_total = None  # something went back or away: sum up again
        if served:
            self.served[key] = served
        else:
            self.served.pop(key, None)

    def _set_live(self, key: Key, live: list[Workload]) -> None:
        """A VideoJob's live workloads, filed under their pools (and out of the others)."""
        by_pool: dict[str, list[Workload]] = defaultdict(list)
        for w in live:
            by_pool[w.pool].append(w)
        emptied = []
        for pool, by_key in self.live.items():
            if key in by_key and pool not in by_pool:
                del by_key[key]
                if not by_key:
                    emptied.append(pool)  # no Job left there (a pool removed, or idle)
        for pool in emptied:
            del self.live[pool]
        for pool, ws in by_pool.items():
            self.live[pool][key] = ws

    def _workloads(self, key: Key, config: OperatorConfig) -> list[Workload]:
        vj = self.store.videojobs.get(key) or {}
        pods_by_job: dict[str, list[Obj]] = defaultdict(list)
        for pod in self.store.pods.get(key, {}).values():
            job_name = (pod["metadata"].get("labels") or {}).get(JOB_NAME_LABEL)
            if job_name:
                pods_by_job[job_name].append(pod)
        out: list[Workload] = []
        for job in self.store.jobs.get(key, {}).values():
            stage = (job["metadata"].get("labels") or {}).get(LABEL_STAGE, "")
            try:
                pool_name = pools.pool_of(config.pools, stage)
            except StopIteration:
                continue
            out.append(workload(key, vj, job, pods_by_job.get(job["metadata"]["name"], []),
                                pool_name, _slots_per_pod(config, pool_name, job.get("spec")
                                                          or {})))
        return out

    # -- admission at creation --------------------------------------------------------------

    def offers(self) -> dict[str, CreationOffer]:
        """What each pool offers a stage Job created now (views.Observation.offers): only
        pools where nothing waits, so no one is passed over, and only what the next pass would
        grant, from the pool's newest decision plus every admission since. A stage that need
        not wait is then created running: one write instead of two, and no pass and round trip
        between the previous stage's end and this one's start."""
        if self.offered is not None:
            return self.offered
        out: dict[str, CreationOffer] = {}
        for pool_name, (snapshot, d) in self.decided.items():
            if self.refused_at.get(pool_name, -1) >= snapshot or not d.all_granted():
                continue  # a Job joined the queue since the decision, or someone waits
            slots = {(w.namespace, w.job): w.slots_per_pod for w in d.order}
            since = (sum(a.pods * slots.get((a.namespace, a.job), 1) for a in d.admits)
                     + sum(n for s, p, n in self.at_creation if p == pool_name and s >= snapshot))
            out[pool_name] = CreationOffer(d.limits, scaling.PoolLoad(
                queued=0, running=d.load.running, pending=d.load.pending + since))
        self.offered = out
        return out

    def creating(self, manifest: Obj, videojob: Obj) -> None:
        """A stage Job is about to be created as the planner built it: admitted (counted from
        now on, as passes will count it once it is in the cache), or queued (the pool's offers
        end until the next pass has seen it). Call `created` once the create has returned or
        failed."""
        config = self.config.current
        meta, spec = manifest["metadata"], manifest["spec"]
        pool_name = pools.pool_of(config.pools, meta["labels"][LABEL_STAGE])
        self.offered = None
        if spec["suspend"]:
            if not (videojob.get("spec") or {}).get("suspend"):
                self.refused_at[pool_name] = self.snapshot
            return
        pods, per_pod = int(spec["parallelism"]), _slots_per_pod(config, pool_name, spec)
        self.at_creation.append((self.snapshot, pool_name, pods * per_pod))
        vj_meta = videojob["metadata"]
        priority = int((videojob.get("spec") or {}).get("priority") or 0)
        self.being_created[(meta["namespace"], meta["name"])] = Workload(
            namespace=meta["namespace"], job=meta["name"], videojob=vj_meta["name"],
            stage=meta["labels"][LABEL_STAGE], pool=pool_name, priority=priority,
            created=vj_meta.get("creationTimestamp") or "",
            completions=int(spec.get("completions") or 1), succeeded=0, parallelism=pods,
            suspended=False, held=False, finished=False, slots_per_pod=per_pod)
        band = policy.band(priority)
        self.admitted_total[pool_name] += 1
        metrics.ADMITTED.labels(pool_name, band).inc()
        metrics.ADMITTED_PODS.labels(pool_name).inc(pods)
        metrics.ADMISSION_WAIT.labels(pool_name, band).observe(0.0)
        log.info("admitted Job %s in pool %s at creation: parallelism %d", meta["name"],
                 pool_name, pods, extra=ctx(meta["namespace"], vj_meta["name"]))

    def created(self, namespace: str, job: str) -> None:
        """The create of a Job admitted at creation returned (its Job is in the cache) or
        failed (a 409: the Job existed, and passes see that one)."""
        self.being_created.pop((namespace, job), None)

    # -- acting ---------------------------------------------------------------------------

    async def _admit(self, d: PoolDecision, a: policy.Admit, now: dt.datetime,
                     freed_at: float | None) -> None:
        try:
            landed = await self._patch(d, a, now, freed_at)
        except Exception:
            log.exception("admitting Job %s failed", a.job, extra=ctx(a.namespace, a.videojob))
            landed = False
        finally:
            self.admitting.pop((a.namespace, a.job), None)
        if not landed:
            self.trigger()  # decide again from the newer state

    async def _patch(self, d: PoolDecision, a: policy.Admit, now: dt.datetime,
                     freed_at: float | None) -> bool:
        job = self.store.jobs.get((a.namespace, a.videojob), {}).get(a.job)
        if job is None:
            return False
        body: Obj = {"metadata": {"resourceVersion": job["metadata"]["resourceVersion"]},
                     "spec": {"parallelism": a.parallelism}}
        if not a.widen:
            body["metadata"]["annotations"] = {ANNOTATION_ADMITTED_AT: ts_micro(now)}
            body["spec"]["suspend"] = False
        sent = time.monotonic()
        try:
            updated = await self.writer.patch_job(a.namespace, a.job, body)
        except ApiException as e:
            if e.status not in (404, 409):
                log.warning("admitting Job %s failed: %s %s", a.job, e.status, e.reason,
                            extra=ctx(a.namespace, a.videojob))
            metrics.ADMISSION_ERRORS.labels(d.pool).inc()
            return False
        answered = time.monotonic()
        metrics.ADMISSION_PATCH.labels(d.pool).observe(answered - sent)
        if freed_at is not None:
            metrics.ADMISSION_REACTION.labels(d.pool).observe(answered - freed_at)
        self.store.answered("job", updated, reconcile=True)
        band = policy.band(a.priority)
        metrics.ADMITTED_PODS.labels(d.pool).inc(a.pods)
        if not a.widen:
            self.admitted_total[d.pool] += 1
            metrics.ADMITTED.labels(d.pool, band).inc()
            wait = policy.wait_seconds(a.queued_at, now)
            if wait is not None:
                metrics.ADMISSION_WAIT.labels(d.pool, band).observe(wait)
        log.info("%s Job %s in pool %s: parallelism %d", "widened" if a.widen else "admitted",
                 a.job, d.pool, a.parallelism, extra=ctx(a.namespace, a.videojob))
        return True

    def _positions(self, decisions: dict[str, PoolDecision]) -> None:
        positions = merged_places([d.positions() for d in decisions.values()])
        old, self.positions = self.positions, positions
        for key in moved_enough(old, positions, self._written_position):
            self.requeue(key)

    def _written_position(self, key: Key) -> int | None:
        status = (self.store.videojobs.get(key) or {}).get("status") or {}
        position = status.get("queuePosition")
        return position if isinstance(position, int) else None

    # -- publishing -----------------------------------------------------------------------

    def _report(self, decisions: dict[str, PoolDecision]) -> None:
        now = time.monotonic()
        for name, d in decisions.items():
            _queue_metrics(name, d)
            pool = self.config.current.pools[name]
            busy = d.load.queued + d.load.running + d.load.pending > 0
            if busy:
                self.last_busy[name] = now
            desired = scaling.cooled_desired(
                d.desired, self.last_desired.get(name, 0), self.last_busy.get(name), now,
                pool.cooldown_seconds, min(pool.min_concurrency, d.limits.max_concurrency))
            self.last_desired[name] = desired
            d.desired = desired
            metrics.POOL_DESIRED.labels(name).set(desired)
            if d.admits:
                pods = sum(a.pods for a in d.admits)
                self.last_decision[name] = (
                    f"admitted {pods} pod(s) of {len(d.admits)} Job(s) ({d.limits.strategy}: "
                    f"queue {d.load.queued}, running {d.load.running}, pending "
                    f"{d.load.pending}, max {d.limits.max_concurrency})",
                    ts_micro(self.clock()))

    async def owner_references(self) -> list[Obj]:
        """The ownerReferences of the operator's objects outside a VideoJob (the pools, the
        namespaces' progress-token Secrets): the chart's ClusterRole (read once; [] when not
        configured or unreadable)."""
        async with self.pool_owner_lock:  # callers at once wait for the one read
            if self.pool_owner is None:
                self.pool_owner = []
                name = self.config.current.pool_owner_clusterrole
                if name:
                    try:
                        uid = await self.writer.cluster_role_uid(name)
                        self.pool_owner = [{"apiVersion": "rbac.authorization.k8s.io/v1",
                                            "kind": "ClusterRole", "name": name, "uid": uid}]
                    except ApiException as e:
                        log.warning("owner ClusterRole %s not read: %s %s", name, e.status,
                                    e.reason)
            return self.pool_owner

    async def _write_pools(self, decisions: dict[str, PoolDecision]) -> None:
        owners = await self.owner_references()
        now = time.monotonic()
        for name, d in decisions.items():
            written, at = self.pool_written.get(name, ({}, 0.0))
            if now - at < POOL_STATUS_INTERVAL:
                # Written lately: look again when the next write may happen (one pass then),
                # without building a status that could not be written now anyway.
                if name not in self.pool_due:
                    self.pool_due.add(name)
                    asyncio.get_running_loop().call_later(
                        POOL_STATUS_INTERVAL - (now - at), self._pool_due, name)
                continue
            status = self._pool_status(name, d)
            if status == written:
                continue
            try:
                await self._write_pool(name, status, owners)
            except ApiException as e:
                # Visibility only (e.g. the CRD is not installed): admission goes on.
                log.warning("pool %s status not written: %s %s", name, e.status, e.reason)
                self.pool_written[name] = (written, now)
                continue
            self.pool_written[name] = (status, now)

    def _pool_status(self, name: str, d: PoolDecision) -> Obj:
        pool = self.config.current.pools[name]
        decision, when = self.last_decision.get(name, ("nothing admitted yet", None))
        status: Obj = PoolStatus(
            stages=pool.stages, strategy=pool.strategy,
            max_concurrency_setting=str(pool.max_concurrency),
            max_concurrency=d.limits.max_concurrency,
            min_concurrency=pool.min_concurrency,
            target_queue_length=pool.target_queue_length,
            queued=d.queued_jobs, queued_pods=d.load.queued, running=d.load.running,
            pending=d.load.pending, held=d.held_jobs, desired=d.desired,
            admitted_total=self.admitted_total[name], last_scale_decision=decision,
            last_scale_time=when,
            head=[f"{w.namespace}/{w.videojob}:{w.stage}" for w in d.order[:10]],
        ).model_dump(by_alias=True, exclude_none=True, mode="json")
        return status

    async def _write_pool(self, name: str, status: Obj, owners: list[Obj]) -> None:
        meta: Obj = {"name": name, "labels": {
            "app.kubernetes.io/managed-by": "videojob-operator"}}
        if owners:
            meta["ownerReferences"] = owners
        patch: Obj = {"status": status}
        if owners:  # adopts a pool object left by an earlier installation
            patch["metadata"] = {"ownerReferences": owners}
        await self.writer.write_pool_status(name, patch, {
            "apiVersion": API_VERSION, "kind": POOL_KIND, "metadata": meta, "status": status})


def pass_gap(freed: bool, last_cost: float) -> float:
    """Seconds from one pass's start to the next of its kind at least: MIN_PASS_GAP between
    passes over every pool, FREED_PASS_GAP between passes over the pools where slots freed; and
    never so little that passes take more than a third of the event loop's time (half, for the
    freed pools'). A pass orders every queued Job of its pools, so with 10,000 queued it costs
    tens of milliseconds: at a fixed rate, its CPU would grow faster than the queue
    (bench/scale.py, CPU per VideoJob by N). `last_cost`: the last pass of the kind."""
    if freed:
        return max(FREED_PASS_GAP, 2 * last_cost)
    return max(MIN_PASS_GAP, 3 * last_cost)


def moved_enough(old: dict[Key, int], new: dict[Key, int],
                 written: Callable[[Key], int | None]) -> list[Key]:
    """The VideoJobs to reconcile after a pass: those whose place in the queue moved enough that
    their status would be written (status.position_worth_writing against the place their status
    shows, `written`). A reconcile of the others would write nothing, and one admission moves
    every place behind it: with 10,000 VideoJobs queued, that is 10,000 reconciles that change
    nothing. A VideoJob that left the queue is not
    requeued for it either: it left because its Job was admitted or went, and that event
    reconciles it."""
    return [key for key, place in new.items()
            if old.get(key) != place and position_worth_writing(written(key), place)]


def merged_places(by_pool: list[dict[Key, int]]) -> dict[Key, int]:
    """Each VideoJob's best place over the pools' queues (`PoolDecision.positions`). A
    VideoJob waits in one pool's queue, or in two while its stages run side by side: the
    largest queue's places are taken as they are, and the others merged into them."""
    by_pool = sorted((places for places in by_pool if places), key=len)
    if not by_pool:
        return {}
    out = by_pool.pop()  # each pool's places are a dict of their own
    for places in by_pool:
        for key, place in places.items():
            have = out.get(key)
            if have is None or place < have:
                out[key] = place
    return out


def _queue_metrics(name: str, d: PoolDecision) -> None:
    """The pool's queue and load as decided, before the admission patches land."""
    by_band: Counter[str] = Counter()
    for priority, count in d.queued_by_priority.items():
        by_band[policy.band(priority)] += count
    for a in d.admits:
        if not a.widen:  # leaves the queue with this pass
            by_band[policy.band(a.priority)] -= 1
    for band in metrics.BANDS:
        metrics.QUEUE_DEPTH.labels(name, band).set(by_band[band])
    metrics.QUEUE_PODS.labels(name).set(d.load.queued)
    metrics.ADMISSION_ERRORS.labels(name)  # present at 0 before the first refusal
    metrics.POOL_RUNNING.labels(name).set(d.load.running)
    metrics.POOL_PENDING.labels(name).set(d.load.pending)
    metrics.POOL_HELD.labels(name).set(d.held_jobs)
    metrics.POOL_MAX.labels(name).set(d.limits.max_concurrency)


def _latest_by_namespace(served: Any) -> dict[str, dict[str, str]]:
    """pool -> namespace -> the latest admission, over every VideoJob's."""
    total: dict[str, dict[str, str]] = {}
    for by_pool in served:
        _merge_latest(total, by_pool)
    return total


def _merge_latest(total: dict[str, dict[str, str]], by_pool: dict[str, dict[str, str]]) -> None:
    """One VideoJob's last admissions (pool -> namespace -> when) folded into `total`."""
    for pool, by_ns in by_pool.items():
        mine = total.setdefault(pool, {})
        for ns, at in by_ns.items():
            if at > mine.get(ns, ""):
                mine[ns] = at


def _only_later(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> bool:
    """Whether `after` keeps every (pool, namespace) of `before`, none of them earlier: then
    folding `after` into a total that held `before` gives what summing up again would."""
    return all(after.get(pool, {}).get(ns, "") >= at
               for pool, by_ns in before.items() for ns, at in by_ns.items())


def workload(key: Key, vj: Obj, job: Obj, pods: list[Obj], pool: str,
             slots_per_pod: int) -> Workload:
    """A stage Job as admission sees it, with its pods and its VideoJob. What it reads of the
    VideoJob must be in `store.queue_view`: a VideoJob change outside that starts no pass."""
    vj_meta, spec = vj.get("metadata") or {}, vj.get("spec") or {}
    meta, jspec, st = job["metadata"], job.get("spec") or {}, job.get("status") or {}
    owned = any(r.get("uid") == vj_meta.get("uid") for r in meta.get("ownerReferences") or [])
    conditions = {c.get("type") for c in st.get("conditions") or [] if c.get("status") == "True"}
    done_indexes = {(p["metadata"].get("annotations") or {}).get(COMPLETION_INDEX) for p in pods
        if (p.get("status") or {}).get("phase") == "Succeeded"}
    phases = Counter((p.get("status") or {}).get("phase", "Pending") for p in pods)
    annotations = meta.get("annotations") or {}
    return Workload(
        namespace=meta["namespace"], job=meta["name"], videojob=vj_meta.get("name", key[1]),
        stage=(meta.get("labels") or {}).get(LABEL_STAGE, ""), pool=pool,
        priority=int(spec.get("priority") or 0), created=vj_meta.get("creationTimestamp") or "",
        completions=int(jspec.get("completions") or 1),
        succeeded=max(int(st.get("succeeded") or 0), len(done_indexes - {None})),
        parallelism=int(jspec.get("parallelism") or 0), suspended=bool(jspec.get("suspend")),
        held=bool(spec.get("suspend")),
        leaving=(not owned or bool(vj_meta.get("deletionTimestamp"))
                 or bool(meta.get("deletionTimestamp"))
                 or (vj.get("status") or {}).get("phase") in TERMINAL),
        finished=bool(conditions & {"Complete", "Failed"}),
        running_pods=phases["Running"], pending_pods=phases["Pending"],
        slots_per_pod=slots_per_pod, queued_at=annotations.get(ANNOTATION_QUEUED_AT),
        admitted_at=annotations.get(ANNOTATION_ADMITTED_AT))


def _slots_per_pod(config: OperatorConfig, pool: str, job_spec: Obj) -> int:
    """Slots one pod of a Job takes in its pool (GPUs per pod, for a pool counting GPUs)."""
    return pools.slots_per_pod(config.pools[pool],
                               pools.job_gpus(job_spec, config.defaults.gpu_resource_name),
                               config.defaults.gpu_count)
