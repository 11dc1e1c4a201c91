"""The controller: caches fed by watches, a work queue, and the appliers of plans.

kopf watches VideoJobs (handlers.py), and threads of the controller's own watch their Jobs and
pods (children.py). Every event goes to `Controller.observe_*`, which updates an in-memory cache
and queues the owning VideoJob. Workers take keys off the queue, build an `Observation`, ask
`planner.plan` what to do, and do it:

- a key is never reconciled by two workers at once, and events arriving meanwhile coalesce into
  one more pass (the client-go work-queue discipline);
- Jobs are created under deterministic names, so a create racing a stale cache answers 409 and
  changes nothing ("expectations" without bookkeeping);
- status is written only when it changed, in one merge patch of the status subresource; changes
  that are only progress figures are written at most once a second per VideoJob;
- `requeue_after` from the planner becomes a timer, so deadlines fire without polling.

The caches hold Jobs and pods trimmed to what the planner and admission read (`slim`): a pod's
spec and every object's managedFields are most of its size, and an operator holding thousands
of VideoJobs would otherwise keep tens of kilobytes per pod it has no use for.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from kubernetes import client
from kubernetes.client import ApiException

from . import children, metrics, planner
from .admitter import ANNOTATION_ADMITTED_AT, Admitter
from .api import FINALIZER, GROUP, PLURAL, STAGES, VERSION
from .config import OperatorConfig
from .handoff import HandoffClock
from .jobs import ANNOTATION_QUEUED_AT, LABEL_NAME, LABEL_UID
from .kube import Kube
from .logs import ctx

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, VideoJob name)
log = logging.getLogger("videojob.controller")

PROGRESS_WRITE_INTERVAL = 1.0  # seconds between progress-only status writes of one VideoJob
RESYNC_INTERVAL = float(os.environ.get("VIDEOJOB_RESYNC_SECONDS") or 60)
LIST_PAGE = 500  # objects per page when the operator lists Jobs or pods


class Controller:
    def __init__(self, config: OperatorConfig, api: client.ApiClient, *, workers: int = 16,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.config = config
        self.api = api
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.kube = Kube(api)
        self.rbac = client.RbacAuthorizationV1Api(api)
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.videojobs: dict[Key, Obj] = {}
        self.keys_by_uid: dict[str, Key] = {}  # progress reports name a VideoJob by its uid
        self.jobs: dict[Key, dict[str, Obj]] = defaultdict(dict)
        self.pods: dict[Key, dict[str, Obj]] = defaultdict(dict)
        # uid -> (stage, index) -> latest progress report
        self.progress: dict[str, dict[tuple[str, int | None], planner.ProgressView]] = (
            defaultdict(dict))
        self.last_status_write: dict[Key, float] = {}
        self.handoffs = HandoffClock()
        # (0 for a hand-off, 1 for the rest; arrival; key): a stage Job that just finished is
        # reconciled ahead of everything queued before it (see enqueue).
        self.queue: asyncio.PriorityQueue[tuple[int, int, Key]] = asyncio.PriorityQueue()
        self.arrivals = itertools.count()
        self.queued: set[Key] = set()
        self.queued_urgent: set[Key] = set()
        self.dirty_urgent: set[Key] = set()
        self.active: set[Key] = set()
        self.dirty: set[Key] = set()
        self.timers: dict[Key, asyncio.TimerHandle] = {}
        # The last Event posting of each VideoJob still under way (the next one waits for it).
        self.event_tails: dict[Key, asyncio.Task[None]] = {}
        self.executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="k8s")
        # Events have threads of their own: a burst of them (12 per VideoJob, 200 VideoJobs
        # starting at once) queued on the shared pool would hold every Job create and status
        # write behind it, and those are what moves VideoJobs on.
        self.event_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="events")
        self.worker_count = workers
        self.tasks: list[asyncio.Task[None]] = []
        self.watches: list[children.ChildWatch] = []
        self.admitter = Admitter(self)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.worker_count):
            self.tasks.append(asyncio.create_task(self._worker(), name=f"reconcile-{i}"))

    async def stop(self) -> None:
        for w in self.watches:
            w.stop()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.event_tails:  # the Events already decided, given a moment to be posted
            await asyncio.wait(list(self.event_tails.values()), timeout=5)
        for timer in self.timers.values():
            timer.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.event_executor.shutdown(wait=False, cancel_futures=True)

    # -- feeding the caches -----------------------------------------------------------------

    def observe_videojob(self, event_type: str | None, obj: Obj) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        if event_type == "DELETED":
            self.videojobs.pop(key, None)
            self.progress.pop(meta.get("uid", ""), None)
            if self.keys_by_uid.get(meta.get("uid", "")) == key:
                del self.keys_by_uid[meta["uid"]]
            self.last_status_write.pop(key, None)
            self.handoffs.forget(key)
            timer = self.timers.pop(key, None)
            if timer:
                timer.cancel()
            self.admitter.changed(key)
            return
        old = self.videojobs.get(key)
        if old is not None and _rv(old) > _rv(obj):
            return  # an older copy than one we already hold (our own patch answered first)
        meta.pop("managedFields", None)
        echo = old is not None and _rv(old) == _rv(obj) and (
            old["metadata"].get("uid") == meta.get("uid"))
        self.videojobs[key] = obj
        self.keys_by_uid[meta["uid"]] = key
        self.admitter.changed(key)  # priority, suspension, deletion and phase change the queue
        if not echo:
            # The echo of our own write is the version its answer put in the cache: planning
            # from it again writes nothing (the planner settles in one step; test_planner), and
            # whatever else changed since has queued the VideoJob itself.
            self.enqueue(key)

    def observe_child(self, kind: str, event_type: str | None, obj: Obj, *,
                      trimmed: bool = False, queue: bool = True,
                      arrived: float | None = None) -> None:
        """A Job or pod event; `trimmed`: `obj` is already as the caches keep it (`slim`);
        `queue`: False for the answer to a create of the reconcile under way, which goes on from
        it (the planner then has nothing more to do: test_planner.assert_settled_after_create);
        `arrived`: when the watch read it (monotonic), for the hand-off figures (handoff.py)."""
        meta = obj["metadata"]
        owner = (meta.get("labels") or {}).get(LABEL_NAME)
        if not owner:
            return
        key = (meta["namespace"], owner)
        cache = self.jobs if kind == "job" else self.pods
        urgent = False
        if event_type == "DELETED":
            cache[key].pop(meta["name"], None)
            if not cache[key]:
                del cache[key]
        else:
            old = cache[key].get(meta["name"])
            same = old is not None and old["metadata"].get("uid") == meta.get("uid")
            if old is not None and same and _rv(old) > _rv(obj):
                return  # an older copy than the one held (listing and watch overlap)
            held = obj if trimmed else slim(kind, obj)
            cache[key][meta["name"]] = held
            if kind == "job" and event_type == "ADDED" and arrived is not None:
                self.handoffs.job_added((meta["namespace"], meta["name"]), arrived)
            seen = essence(kind, held)
            was = essence(kind, old) if old is not None and same else None
            if was == seen:
                return  # nothing the planner or admission reads changed
            view = seen[0]
            urgent = isinstance(view, planner.JobView) and (view.complete
                                                            or view.failure is not None)
            if (isinstance(view, planner.JobView) and view.complete
                    and not (was is not None and was[0].complete)
                    and view.stage != STAGES[-1]):
                self.handoffs.stage_finished(
                    key, arrived if arrived is not None else time.monotonic())
        if queue:
            self.enqueue(key, urgent=urgent)
        self.admitter.changed(key)  # a slot may have freed, or a Job joined the queue

    def observe_progress(self, uid: str, view: planner.ProgressView) -> None:
        # Kept even before the VideoJob is in the cache: after a restart, the reports still in
        # Redis may arrive before kopf's first listing.
        self.progress[uid][(view.stage, view.index)] = view
        key = self.keys_by_uid.get(uid)
        if key is None or key not in self.videojobs:
            return
        # A report only ever changes progress figures, written at most once a second: look
        # when that write may happen, not at every report (workers report ten times a second,
        # and each look is a full plan).
        since = time.monotonic() - self.last_status_write.get(key, 0.0)
        if since < PROGRESS_WRITE_INTERVAL:
            self.enqueue_after(key, PROGRESS_WRITE_INTERVAL - since)
        else:
            self.enqueue(key)

    # -- the queue --------------------------------------------------------------------------

    def enqueue(self, key: Key, *, urgent: bool = False) -> None:
        """Queues a reconcile of `key`. `urgent`: a stage Job of it finished, so the next stage
        waits on this reconcile. It goes ahead of the rest, most of all of the burst of new
        VideoJobs' first reconciles when hundreds are created at once (the hand-offs of the
        first third of bench/orchestration.py's run had a p99 eight times the later ones')."""
        if key in self.active:
            self.dirty.add(key)
            if urgent:
                self.dirty_urgent.add(key)
            return
        if key not in self.queued:
            self.queued.add(key)
            self.queue.put_nowait((0 if urgent else 1, next(self.arrivals), key))
        elif urgent and key not in self.queued_urgent:
            # Queued behind others already: a second, urgent entry; whichever comes out first
            # runs it, and the other is skipped.
            self.queue.put_nowait((0, next(self.arrivals), key))
        if urgent:
            self.queued_urgent.add(key)

    def enqueue_after(self, key: Key, delay: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        timer = self.timers.get(key)
        if timer is not None and not timer.cancelled() and timer.when() <= due:
            return
        if timer is not None:
            timer.cancel()
        self.timers[key] = loop.call_at(due, self._timer_fired, key)

    def _timer_fired(self, key: Key) -> None:
        self.timers.pop(key, None)
        self.enqueue(key)

    async def _worker(self) -> None:
        while True:
            _, _, key = await self.queue.get()
            if key not in self.queued:
                continue  # the other entry of a key queued twice (enqueue) ran it already
            self.queued.discard(key)
            self.queued_urgent.discard(key)
            self.active.add(key)
            started = time.perf_counter()
            metrics.RECONCILES.inc()
            try:
                await self.reconcile(key)
            except ApiException as e:
                metrics.RECONCILE_ERRORS.labels("api").inc()
                # The API said no (a namespace being deleted, a webhook, throttling): say what
                # and try again; the planner recomputes from the then-current state.
                log.warning("reconcile failed: %s %s: %s", e.status, e.reason,
                            _api_message(e), extra=ctx(*key))
                self.enqueue_after(key, 2.0)
            except Exception:
                metrics.RECONCILE_ERRORS.labels("internal").inc()
                log.exception("reconcile failed", extra=ctx(*key))
                self.enqueue_after(key, 2.0)
            finally:
                metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
                self.active.discard(key)
                if key in self.dirty:
                    self.dirty.discard(key)
                    urgent = key in self.dirty_urgent
                    self.dirty_urgent.discard(key)
                    self.enqueue(key, urgent=urgent)

    # -- one reconcile ----------------------------------------------------------------------

    def observation(self, key: Key) -> planner.Observation | None:
        vj = self.videojobs.get(key)
        if vj is None:
            return None
        uid = vj["metadata"]["uid"]

        def owned(o: Obj) -> bool:
            return any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])

        jobs = [planner.job_view(j) for j in self.jobs.get(key, {}).values() if owned(j)]
        job_names = {j.name for j in jobs}
        pods = [planner.pod_view(p) for p in self.pods.get(key, {}).values()
                if (p["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name")
                in job_names or (p["metadata"].get("labels") or {}).get(
                    "videojob.dev/uid") == uid]
        progress = list(self.progress.get(uid, {}).values())
        return planner.Observation(videojob=vj, jobs=jobs, pods=pods, progress=progress,
                                   now=self.clock(),
                                   queue_position=self.admitter.positions.get(key))

    async def reconcile(self, key: Key) -> None:
        obs = self.observation(key)
        if obs is None:
            return
        plan = planner.plan(obs, self.config)
        await self.apply(key, obs.videojob, plan)

    async def call(self, fn: Callable[..., Any], *args: Any,
                   executor: ThreadPoolExecutor | None = None, **kwargs: Any) -> Any:
        """fn(*args, **kwargs) on an API thread: a blocking request, off the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor or self.executor, lambda: fn(*args, **kwargs))

    async def call_json(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
        """`call` for a listing: its JSON as a dict. The client's models are skipped: decoding
        Jobs into them and back to dicts costs more CPU than the request itself, and the caches
        hold dicts anyway. (The writes skip the generated methods altogether: kube.py.)"""

        def run() -> Obj:
            response = fn(*args, _preload_content=False, **kwargs)
            try:
                doc: Obj = orjson.loads(response.data)
            finally:
                response.release_conn()
            return doc

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, run)

    async def apply(self, key: Key, vj: Obj, plan: planner.Plan) -> None:
        ns, name = key
        meta = vj["metadata"]
        extra = ctx(ns, name)
        resource_version = meta["resourceVersion"]
        if plan.add_finalizer:
            updated = await self._patch_videojob(key, {"metadata": {
                "finalizers": [*(meta.get("finalizers") or []), FINALIZER],
                "resourceVersion": resource_version}})
            if updated is None:
                return  # conflict: start again from the newer object
            if updated["metadata"].get("generation") == meta.get("generation"):
                # Only our finalizer changed: the plan still holds for the new version.
                resource_version = updated["metadata"]["resourceVersion"]
        admitted_on_create = False
        for manifest in plan.create_jobs:
            stage = manifest["metadata"]["labels"]["videojob.dev/stage"]
            job_name = manifest["metadata"]["name"]
            pods = self.admitter.admit_on_create(manifest, vj)
            if pods:
                manifest["metadata"]["annotations"][ANNOTATION_ADMITTED_AT] = planner.ts_micro(
                    self.clock())
                manifest["spec"].update(suspend=False, parallelism=pods)
            try:
                created = await self.call(self.kube.create_job, ns, manifest)
                answered = time.monotonic()
                self.handoffs.job_created((ns, job_name), answered)
                if stage != STAGES[0]:
                    self.handoffs.next_stage_created(key, answered)
                log.info("created Job %s", job_name, extra=ctx(ns, name, stage))
                self.observe_child("job", "ADDED", created, queue=False)
                metrics.JOBS_CREATED.labels(stage).inc()
                admitted_on_create = admitted_on_create or bool(pods)
            except ApiException as e:
                if e.status != 409:
                    raise
            finally:
                if pods:
                    self.admitter.created(ns, job_name)
        if admitted_on_create:
            # The stage started as it was created: plan again from the cache that holds its
            # Job now, so the status says Running in one write (not Queued, then Running) and
            # no StageQueued Event tells of a wait that never happened.
            fresh = self.observation(key)
            if fresh is not None:
                vj, plan = fresh.videojob, planner.plan(fresh, self.config)
                meta = vj["metadata"]
                resource_version = meta["resourceVersion"]
        for job_name, suspend in plan.suspend_jobs.items():
            # Back in the queue from now on: admission unsuspends it again after a resume.
            queued_at = planner.ts_micro(self.clock())
            updated = await self.call(self.kube.patch_job, ns, job_name, {
                "metadata": {"annotations": {ANNOTATION_QUEUED_AT: queued_at}},
                "spec": {"suspend": suspend}})
            self.observe_child("job", "MODIFIED", updated)
            log.info("%s Job %s", "suspended" if suspend else "resumed", job_name, extra=extra)
        for job_name in plan.delete_jobs:
            try:
                # Foreground: the Job stays until its pods are gone, so "no Job left" also
                # means "no pod left"; an explicit policy, as a bare delete can orphan pods.
                await self.call(self.kube.delete_job, ns, job_name, "Foreground")
                log.info("deleted Job %s", job_name, extra=extra)
            except ApiException as e:
                if e.status != 404:
                    raise
        if plan.status is not None:
            written = await self._write_status(key, vj, plan, resource_version)
            if written is None:
                return  # not recorded (stale or rate-limited): no Events for it either, yet
            resource_version = written
        for event in plan.events:
            self._post_event(key, vj, event)
        if plan.remove_finalizer and plan.confirm_gone and await self._children_left(key, vj):
            self.enqueue_after(key, 0.5)
        elif plan.remove_finalizer:
            finalizers = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
            await self._patch_videojob(key, {"metadata": {
                "finalizers": finalizers, "resourceVersion": resource_version}})
            log.info("cancelled; finalizer removed", extra=extra)
        if plan.delete_videojob:
            try:
                await self.call(self.custom.delete_namespaced_custom_object, GROUP, VERSION, ns,
                                 PLURAL, name, propagation_policy="Background")
            except ApiException as e:
                if e.status != 404:
                    raise
        if plan.requeue_after is not None:
            self.enqueue_after(key, plan.requeue_after)

    async def _children_left(self, key: Key, vj: Obj) -> bool:
        """Reads the VideoJob's Jobs and pods from the API (not the cache) into the cache;
        True if any is left."""
        selector = f"{LABEL_UID}={vj['metadata']['uid']}"
        jobs = await self.call_json(self.batch.list_namespaced_job, key[0],
                                    label_selector=selector)
        pods = await self.call_json(self.core.list_namespaced_pod, key[0],
                                    label_selector=selector)
        for kind, listing in (("job", jobs), ("pod", pods)):
            for item in _items(listing):
                self.observe_child(kind, "ADDED", item)
        return bool(jobs.get("items") or pods.get("items"))

    async def _list_children(self, namespaces: list[str]
                             ) -> list[tuple[str, str | None, list[Obj], int]]:
        """(kind, namespace or None for all, objects, the listing's resourceVersion) of the Jobs
        and pods of all VideoJobs, the objects trimmed as the caches keep them."""
        out: list[tuple[str, str | None, list[Obj], int]] = []
        scopes: list[str | None] = list(namespaces) or [None]
        for ns in scopes:
            for kind in ("job", "pod"):
                out.append((kind, ns, *await self.list_trimmed(kind, ns)))
        return out

    def list_fn(self, kind: str, namespace: str | None
                ) -> tuple[Callable[..., Any], tuple[str, ...]]:
        """The client's list (and watch) call for Jobs or pods, and its positional arguments."""
        if kind == "job":
            fn: Callable[..., Any] = (self.batch.list_namespaced_job if namespace
                                      else self.batch.list_job_for_all_namespaces)
        else:
            fn = (self.core.list_namespaced_pod if namespace
                  else self.core.list_pod_for_all_namespaces)
        return fn, (namespace,) if namespace else ()

    async def list_trimmed(self, kind: str, namespace: str | None) -> tuple[list[Obj], int]:
        """Lists one kind a page at a time (`LIST_PAGE` objects), trimming each page before the
        next is read: thousands of Jobs parsed in one answer would set the operator's peak
        memory (and Python keeps that peak) for what the caches then throw away."""
        fn, args = self.list_fn(kind, namespace)
        items: list[Obj] = []
        listing_rv, token = 0, None
        while True:
            kwargs: Obj = {"label_selector": LABEL_NAME, "limit": LIST_PAGE}
            if token:
                kwargs["_continue"] = token  # later pages are read at the first one's version
            page = await self.call_json(fn, *args, **kwargs)
            meta = page.get("metadata") or {}
            listing_rv = listing_rv or int(meta.get("resourceVersion") or 0)
            items += [slim(kind, o) for o in _items(page)]
            del page
            token = meta.get("continue")
            if not token:
                return items, listing_rv

    async def prime(self, namespaces: list[str]) -> list[tuple[str, str | None, int]]:
        """Lists the Jobs and pods of all VideoJobs before the first reconcile, so a restarted
        operator never takes "not in the cache yet" for "gone". Returns (kind, namespace or
        None, resourceVersion) of each listing: where its watch starts."""
        versions = []
        for kind, ns, items, version in await self._list_children(namespaces):
            for item in items:
                self.observe_child(kind, "ADDED", item, trimmed=True)
            versions.append((kind, ns, version))
        return versions

    def watch_children(self, versions: list[tuple[str, str | None, int]]) -> None:
        """Starts the Job and pod watches (children.py) from the versions `prime` returned."""
        self.watches = children.start(self, versions, asyncio.get_running_loop())

    async def resync(self, namespaces: list[str], stop: asyncio.Event,
                     interval: float = RESYNC_INTERVAL) -> None:
        """The safety net an informer's resync period is: every `interval` seconds the Jobs and
        pods are listed again, and whatever the caches hold differently is fed in as an event.
        A watch event lost while the API server restarts would otherwise leave a VideoJob
        waiting for a stage that has long finished."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if stop.is_set():
                return
            try:
                listings = await self._list_children(namespaces)
            except Exception as e:  # the next round tries again (an expired page token too)
                log.warning("resync listing failed: %s", e)
                continue
            for kind, ns, items, listing_rv in listings:
                self.refresh(kind, ns, items, listing_rv)
            self.handoffs.prune(time.monotonic())

    def refresh(self, kind: str, namespace: str | None, listed: list[Obj],
                listing_rv: int) -> int:
        """Feeds a fresh listing (trimmed, as `list_trimmed` returns it) into a cache: objects
        newer or missing there as events, cached ones the listing no longer has (and older than
        it) as deletions. Returns the changes."""
        cache = self.jobs if kind == "job" else self.pods
        changes = 0
        present: set[tuple[str, str]] = set()
        for obj in listed:
            meta = obj["metadata"]
            owner = (meta.get("labels") or {}).get(LABEL_NAME)
            if not owner:
                continue
            present.add((meta["namespace"], meta["name"]))
            held = cache.get((meta["namespace"], owner), {}).get(meta["name"])
            if held is None or (held["metadata"].get("uid") != meta.get("uid")
                                or _rv(held) < _rv(obj)):
                self.observe_child(kind, "MODIFIED" if held else "ADDED", obj, trimmed=True)
                changes += 1
        for key, objs in list(cache.items()):
            if namespace is not None and key[0] != namespace:
                continue
            for name, obj in list(objs.items()):
                if (key[0], name) not in present and _rv(obj) < listing_rv:
                    self.observe_child(kind, "DELETED", obj)
                    changes += 1
        if changes:
            log.info("resync: %d %s change(s) the watch had not delivered", changes, kind)
        return changes

    async def _write_status(self, key: Key, vj: Obj, plan: planner.Plan,
                            resource_version: str) -> str | None:
        """Writes the plan's status and returns the new resourceVersion; None if it was not
        written (computed from a stale copy, or a progress update that has to wait)."""
        now = time.monotonic()
        if plan.progress_only:
            since = now - self.last_status_write.get(key, 0.0)
            if since < PROGRESS_WRITE_INTERVAL:
                self.enqueue_after(key, PROGRESS_WRITE_INTERVAL - since)
                return None
        ns, name = key
        body = {
            # Optimistic concurrency: a status computed from a stale copy is refused (409) and
            # recomputed from the newer one, so no writer ever rolls a transition back.
            "metadata": {"resourceVersion": resource_version},
            "status": _nulls_for_removed(vj.get("status") or {}, plan.status or {}),
        }
        kind = "progress" if plan.progress_only else "transition"
        try:
            updated = await self.call(self.kube.patch_videojob_status, ns, name, body)
        except ApiException as e:
            if e.status == 404:
                return None
            if e.status == 409:
                metrics.STATUS_PATCHES.labels(kind, "conflict").inc()
                self.enqueue_after(key, 0.05)
                return None
            raise
        metrics.STATUS_PATCHES.labels(kind, "ok").inc()
        metrics.record_transition(vj.get("status") or {}, plan.status or {})
        self.last_status_write[key] = now
        self._remember(key, updated)
        return str(updated["metadata"]["resourceVersion"])

    async def _patch_videojob(self, key: Key, body: Obj) -> Obj | None:
        ns, name = key
        try:
            updated: Obj = await self.call(self.kube.patch_videojob, ns, name, body)
        except ApiException as e:
            if e.status == 409:  # stale resourceVersion: the next event brings the new one
                self.enqueue_after(key, 0.1)
                return None
            if e.status == 404:
                return None
            raise
        self._remember(key, updated)
        return updated

    def _remember(self, key: Key, updated: Obj) -> None:
        """Our own write's answer is the newest state; reconcile from it, not a stale copy."""
        if isinstance(updated, dict) and updated.get("metadata"):
            old = self.videojobs.get(key)
            if old is None or _rv(updated) >= _rv(old):
                updated["metadata"].pop("managedFields", None)
                self.videojobs[key] = updated

    def _post_event(self, key: Key, vj: Obj, event: planner.Event) -> None:
        """Posts an Event in the background, in order for each VideoJob. A reconcile does not
        wait for its Events: they are best-effort records (client-go's recorder is asynchronous
        too), and awaiting three of them made every stage hand-off three round trips longer."""
        previous = self.event_tails.get(key)
        at = self.clock()

        async def post() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await self._event(vj, event, at)

        task = asyncio.get_running_loop().create_task(post())
        self.event_tails[key] = task

        def done(t: asyncio.Task[None]) -> None:
            if self.event_tails.get(key) is t:
                del self.event_tails[key]

        task.add_done_callback(done)

    async def _event(self, vj: Obj, event: planner.Event, at: dt.datetime) -> None:
        meta = vj["metadata"]
        now = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob",
                               "name": meta["name"], "namespace": meta["namespace"],
                               "uid": meta["uid"], "resourceVersion": meta.get("resourceVersion")},
            "type": event.type, "reason": event.reason, "message": event.message[:1024],
            "source": {"component": "videojob-operator"},
            "reportingComponent": "videojob.dev/operator",
            "reportingInstance": "videojob-operator",
            "firstTimestamp": now[:19] + "Z", "lastTimestamp": now[:19] + "Z", "count": 1,
            "action": event.reason,
        }
        try:
            await self.call(self.kube.create_event, meta["namespace"], body,
                            executor=self.event_executor)
            metrics.EVENTS.labels(event.type).inc()
        except ApiException as e:
            log.warning("event %s not recorded: %s", event.reason, e.reason,
                        extra=ctx(meta["namespace"], meta["name"]))
        except Exception as e:  # in the background: nobody else would see it
            log.warning("event %s not recorded: %s", event.reason, e,
                        extra=ctx(meta["namespace"], meta["name"]))


def _api_message(e: ApiException) -> str:
    try:
        return str(json.loads(e.body or "{}").get("message", ""))
    except ValueError:
        return str(e.body or "")[:300]


def _items(listing: Obj) -> list[Obj]:
    """A listing's items ([] for none)."""
    items: list[Obj] = listing.get("items") or []
    return items


_METADATA = ("name", "namespace", "uid", "resourceVersion", "generation", "labels",
             "annotations", "ownerReferences", "creationTimestamp", "deletionTimestamp")


def slim(kind: str, obj: Obj) -> Obj:
    """A Job or pod as the caches keep it: the metadata and status, and of a Job's spec what
    admission and the planner read (suspension, widths, the worker container's resources).
    Everything else, a pod's spec and the managedFields above all, is dropped on arrival."""
    meta = obj.get("metadata") or {}
    out: Obj = {"metadata": {k: meta[k] for k in _METADATA if k in meta},
                "status": obj.get("status") or {}}
    if kind == "job":
        spec = obj.get("spec") or {}
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        out["spec"] = {k: spec[k] for k in ("suspend", "completions", "parallelism")
                       if k in spec}
        out["spec"]["template"] = {"spec": {"containers": [
            {"name": c.get("name"), "resources": c.get("resources") or {}}
            for c in containers]}}
    return out


def essence(kind: str, obj: Obj) -> tuple[Any, ...]:
    """What the planner and admission read of a trimmed Job or pod. An event that leaves it
    as it was (a pod bound to its node or given its IP, a Job's ready count, the Job controller's
    tracking finalizer) changes no plan and no admission: the cache takes the new copy and
    nothing is queued. Most of a stage's events are of that kind."""
    meta = obj["metadata"]
    common = (tuple(r.get("uid") for r in meta.get("ownerReferences") or []),
              tuple(sorted((meta.get("labels") or {}).items())),
              tuple(sorted((meta.get("annotations") or {}).items())))
    if kind == "pod":
        return (planner.pod_view(obj), *common)
    return (planner.job_view(obj), (obj.get("spec") or {}).get("parallelism"), *common)


def _rv(obj: Obj) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


def _nulls_for_removed(old: Obj, new: Obj) -> Obj:
    """A merge patch that also clears top-level fields the new status no longer has."""
    patch: Obj = dict(new)
    for k in old:
        if k not in new:
            patch[k] = None
    return patch
