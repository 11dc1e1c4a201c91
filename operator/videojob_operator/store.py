"""The operator's caches: VideoJobs, their stage Jobs and pods, and worker progress, kept from
the watches and listings, and shared by everything that reads the cluster.

kopf's VideoJob events (handlers.py), the Job and pod watches (child_watches.py), the Redis
progress feed (progress_feed.py) and the operator's own write answers all come in here. The
store keeps its copies, and tells its listeners what changed (`Change`): the controller queues a
reconcile, admission marks the VideoJob for its next pass. Nothing here decides anything.

- Jobs and pods are kept trimmed to what the planner and admission read (`slim`): a pod's spec
  and every object's managedFields are most of its size, and an operator holding thousands of
  VideoJobs would otherwise keep tens of kilobytes per pod it has no use for.
- An older copy than the one held (a listing overlapping a watch, our own write's answer having
  come first) is ignored; an event that changes nothing the planner or admission reads (a pod
  given its IP, a Job's ready count) updates the copy and tells no one (`essence`).
- Expectations without bookkeeping: the answers to our own writes go straight in (`remember`,
  `created`), so the next reconcile plans from them, not from a stale copy; Job names are
  deterministic, so a create racing a stale cache answers 409 and changes nothing.
- The listings, all through `relist` (each page fed in before the next is read): `prime`
  before the first reconcile (a restarted operator never takes "not in the cache yet" for
  "gone"), `resync` every `resync_seconds` as an informer's resync period does, and a watch's
  relist when its version expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from kubernetes.client import ApiException

from videojob_common.cache_entries import CACHE_ENV
from videojob_common.pipeline import NEEDS, STAGES, TERMINAL, Obj

from . import heap, metrics
from .handoff_metrics import HandoffClock
from .jobs import LABEL_NAME, LABEL_STAGE, LABEL_UID, owner_name
from .kube import Api
from .views import (
    JOB_NAME_LABEL,
    JobView,
    PodView,
    ProgressView,
    done_by_pods,
    job_view,
    pod_view,
)

Key = tuple[str, str]  # (namespace, VideoJob name)
log = logging.getLogger("videojob.store")

# Objects per page when the operator lists Jobs or pods: a page of Jobs is about 10 KB each as
# JSON, and each page's parse is transient memory the C heap keeps (heap.py).
LIST_PAGE = 100


@dataclass(frozen=True)
class Change:
    """What a listener is told: something of VideoJob `key` changed."""

    key: Key
    kind: str  # videojob | job | pod | progress
    deleted: bool = False  # the VideoJob itself is gone
    # False for an echo of our own write, or the answer to a create of the reconcile under
    # way: the reconcile goes on from it, and planning again would change nothing.
    reconcile: bool = True
    urgent: bool = False  # a stage Job finished or failed: the next stage waits on it
    # The stage of a pod that just succeeded: its slot is free (admission times what follows).
    freed: str = ""
    # False: nothing admission reads of the VideoJob changed (`queue_view`), as when only its
    # status's progress or place was written. Admission passes skip those.
    queue: bool = True


Listener = Callable[[Change], None]
# The stages whose Jobs each stage's end creates (those that need it); none after the last.
_HANDS_OFF_TO: dict[str, frozenset[str]] = {
    stage: frozenset(s for s, needs in NEEDS.items() if stage in needs) for stage in STAGES}
# Progress reports for uids no cached VideoJob has: kept this long, and for this many uids.
UNCLAIMED_SECONDS = 300.0
UNCLAIMED_MAX = 10_000


class Store:
    def __init__(self, api: Api, handoffs: HandoffClock | None = None) -> None:
        self.api = api
        self.handoffs = handoffs or HandoffClock()
        self.videojobs: dict[Key, Obj] = {}
        self.keys_by_uid: dict[str, Key] = {}  # progress reports name a VideoJob by its uid
        self.jobs: dict[Key, dict[str, Obj]] = defaultdict(dict)
        self.pods: dict[Key, dict[str, Obj]] = defaultdict(dict)
        # Pods deleted while their VideoJob lives (a cancellation, a failure's clean-up), as the
        # deletion's event last showed them: their GPU-seconds still count (accounting.py).
        self.spent: dict[Key, dict[str, Obj]] = defaultdict(dict)
        # uid -> (stage, index) -> latest progress report
        self.progress: dict[str, dict[tuple[str, int | None], ProgressView]] = defaultdict(dict)
        # uid -> (when its first report came, the namespace it named), for reports no cached
        # VideoJob claims (yet)
        self.unclaimed: dict[str, tuple[float, str]] = {}
        # namespace -> its uid (kopf's watch of namespaces): whose progress token is whose
        self.namespace_uids: dict[str, str] = {}
        self.swept = 0.0
        self.listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def _tell(self, change: Change) -> None:
        for listener in self.listeners:
            listener(change)

    # -- VideoJobs ------------------------------------------------------------------------

    def observe_videojob(self, event_type: str | None, obj: Obj) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        if event_type == "DELETED":
            self.videojobs.pop(key, None)
            self.progress.pop(meta.get("uid", ""), None)
            self.spent.pop(key, None)
            if self.keys_by_uid.get(meta.get("uid", "")) == key:
                del self.keys_by_uid[meta["uid"]]
            self.handoffs.forget(key)
            self._tell(Change(key, "videojob", deleted=True, reconcile=False))
            return
        old = self.videojobs.get(key)
        if old is not None and _rv(old) > _rv(obj):
            return  # an older copy than one we already hold (our own patch answered first)
        meta.pop("managedFields", None)
        # The echo of our own write is the version its answer put in the cache: planning from
        # it again writes nothing (the planner settles in one step; test_planner), and whatever
        # else changed since has queued the VideoJob itself.
        echo = old is not None and _rv(old) == _rv(obj) and (
            old["metadata"].get("uid") == meta.get("uid"))
        self.videojobs[key] = compact(obj)
        self.keys_by_uid[meta["uid"]] = key
        first = self.unclaimed.pop(meta["uid"], None)
        if first is not None and first[1] != key[0]:
            # Reports that named another namespace than the VideoJob's, signed with that one's
            # token: a pod of that namespace writing this VideoJob's progress.
            self.progress.pop(meta["uid"], None)
            metrics.PROGRESS_DROPPED.labels("unverified").inc()
        # Priority, suspension, deletion and phase change the queue (admission listens).
        queue = old is None or queue_view(old) != queue_view(obj)
        self._tell(Change(key, "videojob", reconcile=not echo, queue=queue))

    def remember(self, key: Key, updated: Obj) -> None:
        """Our own write's answer is the newest state; reconcile from it, not a stale copy."""
        if isinstance(updated, dict) and updated.get("metadata"):
            old = self.videojobs.get(key)
            if old is None or _rv(updated) >= _rv(old):
                updated["metadata"].pop("managedFields", None)
                self.videojobs[key] = compact(updated)
                if old is None or queue_view(old) != queue_view(updated):
                    # The watch's echo will find this copy: admission hears of it now.
                    self._tell(Change(key, "videojob", reconcile=False))

    # -- Jobs and pods --------------------------------------------------------------------

    def observe_child(self, kind: str, event_type: str | None, obj: Obj, *,
                      trimmed: bool = False, arrived: float | None = None) -> None:
        """A Job or pod event; `trimmed`: `obj` is already as the caches keep it (`slim`);
        `arrived`: when the watch read it (monotonic), for the hand-off figures."""
        self._child(kind, event_type, obj, trimmed=trimmed, arrived=arrived, reconcile=True)

    def answered(self, kind: str, obj: Obj, *, reconcile: bool) -> None:
        """The answer to one of our own writes of a Job (a create, an admission, a suspension).
        `reconcile`: False for a create of the reconcile under way, which goes on from it."""
        self._child(kind, "MODIFIED" if reconcile else "ADDED", obj, trimmed=False,
                    arrived=None, reconcile=reconcile)

    def _child(self, kind: str, event_type: str | None, obj: Obj, *, trimmed: bool,
               arrived: float | None, reconcile: bool) -> None:
        meta = obj["metadata"]
        owner = owner_name(meta)
        if not owner:
            return
        key = (meta["namespace"], owner)
        if event_type == "DELETED":
            self._forget(kind, key, meta["name"])
            if kind == "pod" and key in self.videojobs:
                self.spent[key][meta["name"]] = obj if trimmed else slim(kind, obj)
            self._tell(Change(key, kind, reconcile=reconcile))
            return
        kept = self._keep(kind, key, obj, trimmed, event_type, arrived)
        if kept is not None:
            urgent, freed = kept
            self._tell(Change(key, kind, reconcile=reconcile, urgent=urgent, freed=freed))

    def _forget(self, kind: str, key: Key, name: str) -> None:
        cache = self.jobs if kind == "job" else self.pods
        cache[key].pop(name, None)
        if not cache[key]:
            del cache[key]

    def _keep(self, kind: str, key: Key, obj: Obj, trimmed: bool, event_type: str | None,
              arrived: float | None) -> tuple[bool, str] | None:
        """Keeps a copy; None if that changed nothing anyone reads, else whether it is urgent
        (a stage Job that just finished or failed, or a pod that just succeeded), and the stage
        of a pod that just succeeded."""
        cache = self.jobs if kind == "job" else self.pods
        meta = obj["metadata"]
        old = cache[key].get(meta["name"])
        same = old is not None and old["metadata"].get("uid") == meta.get("uid")
        if old is not None and same and _rv(old) > _rv(obj):
            return None  # an older copy than the one held (listing and watch overlap)
        held = obj if trimmed else slim(kind, obj)
        cache[key][meta["name"]] = held
        if kind == "job" and event_type == "ADDED" and arrived is not None:
            self.handoffs.job_added((meta["namespace"], meta["name"]), arrived)
        seen = essence(kind, held)
        was = essence(kind, old) if old is not None and same else None
        if was == seen:
            return None  # nothing the planner or admission reads changed
        view = seen[0]
        if not isinstance(view, JobView):
            # A pod that succeeded may be its stage's last (views.done_by_pods): the next stage
            # waits on it, as on a Job's completion.
            ended = view.phase == "Succeeded" and (was is None or was[0].phase != "Succeeded")
            if ended:
                self._stage_ended(key, view.stage, arrived)
            return ended, view.stage if ended else ""
        if view.complete and not (was is not None and was[0].complete):
            self._stage_ended(key, view.stage, arrived)
        return view.complete or view.failure is not None, ""

    def _stage_ended(self, key: Key, stage: str, arrived: float | None) -> None:
        """Starts the hand-off clock (handoff_metrics.py) at a stage's end, unless nothing follows
        it or what follows has a Job already: the Job controller's Complete comes seconds after
        the last pod's success, often after the next stage's Job is created, and would otherwise
        leave a mark that the next create (a retry's) takes for its hand-off."""
        after = _HANDS_OFF_TO.get(stage)
        if not after or any(_labels(j).get(LABEL_STAGE) in after
                            for j in self.jobs.get(key, {}).values()):
            return
        self.handoffs.stage_finished(key, arrived if arrived is not None else time.monotonic())

    # -- progress -------------------------------------------------------------------------

    async def list_namespaces(self) -> None:
        """The namespaces' uids before the first progress report is checked (kopf's watch of
        namespaces, handlers.py, keeps them)."""
        try:
            listed = await self.api.call(self.api.core.list_namespace)
        except ApiException as e:  # an older ClusterRole: reports wait for the watch's
            log.warning("namespaces not listed (%s %s): progress signed with a namespace's "
                        "token is dropped until its namespace is seen", e.status, e.reason)
            return
        for ns in listed.items:
            self.namespace_uids[ns.metadata.name] = ns.metadata.uid

    def observe_namespace(self, event_type: str | None, obj: Obj) -> None:
        """A namespace's event: its uid names its progress token (progress_auth)."""
        meta = obj["metadata"]
        if event_type == "DELETED":
            if self.namespace_uids.get(meta["name"]) == meta.get("uid"):
                del self.namespace_uids[meta["name"]]
        else:
            self.namespace_uids[meta["name"]] = meta["uid"]

    def observe_progress(self, uid: str, namespace: str, view: ProgressView,
                         now: float | None = None) -> None:
        """A worker's report (signed with the token of `namespace`: progress_feed.py). One for
        a VideoJob of another namespace is dropped, and one older than the last taken for the
        same pod slot. One for a uid no cached VideoJob has is kept a while (after a restart,
        the reports still in Redis may arrive before kopf's first listing), then dropped: at
        most UNCLAIMED_MAX such uids, each for UNCLAIMED_SECONDS, so reports for VideoJobs that
        never come cannot fill the operator's memory."""
        key = self.keys_by_uid.get(uid)
        if key is not None and key[0] != namespace:
            metrics.PROGRESS_DROPPED.labels("unverified").inc()
            return  # signed with the token of the namespace it names, not the VideoJob's
        if key is None:
            now = time.monotonic() if now is None else now
            self._sweep_unclaimed(now)
            first = self.unclaimed.get(uid)
            if first is not None and first[1] != namespace:
                metrics.PROGRESS_DROPPED.labels("unverified").inc()
                return  # the first report's namespace stands until the VideoJob comes
            if first is None:
                if len(self.unclaimed) >= UNCLAIMED_MAX:
                    return
                self.unclaimed[uid] = (now, namespace)
        slot = self.progress[uid]
        last = slot.get((view.stage, view.index))
        if last is not None and view.older_than(last):
            metrics.PROGRESS_DROPPED.labels("stale").inc()
            return  # a replay, or one overtaken on the way: the newer one stands
        slot[(view.stage, view.index)] = view
        if key is not None and key in self.videojobs:
            self._tell(Change(key, "progress"))

    def _sweep_unclaimed(self, now: float) -> None:
        if now - self.swept < UNCLAIMED_SECONDS / 10:
            return
        self.swept = now
        for uid in [u for u, (since, _) in self.unclaimed.items()
                    if now - since > UNCLAIMED_SECONDS]:
            del self.unclaimed[uid]
            self.progress.pop(uid, None)

    # -- listings -------------------------------------------------------------------------

    async def pages(self, kind: str, namespace: str | None
                    ) -> AsyncIterator[tuple[list[Obj], int]]:
        """One kind listed a page at a time (`LIST_PAGE` objects), each page trimmed on an API
        thread, with the listing's resourceVersion. Its reader feeds a page in before the next
        is read: thousands of Jobs held twice, in the cache and in a listing, would set the
        operator's peak memory (and Python keeps that peak) for what the cache already has."""
        fn, args = self.api.list_fn(kind, namespace)
        listing_rv, token = 0, None
        while True:
            kwargs: Obj = {"label_selector": LABEL_NAME, "limit": LIST_PAGE}
            if token:
                kwargs["_continue"] = token  # later pages are read at the first one's version
            items, meta = await self.api.call_listing(fn, *args, trim=partial(slim, kind),
                                                      **kwargs)
            listing_rv = listing_rv or int(meta.get("resourceVersion") or 0)
            token = meta.get("continue")
            yield items, listing_rv
            if not token:
                return

    async def relist(self, kind: str, namespace: str | None) -> tuple[int, int]:
        """Lists one kind (in `namespace`, or in all) and feeds each page into the cache as it
        comes: objects newer or missing there as events; then, cached ones the listing did not
        have (and older than it) as deletions. Returns the listing's resourceVersion, where a
        watch goes on from, and how many changes the cache took."""
        present: set[tuple[str, str]] = set()
        changes, version = 0, 0
        async for items, listing_rv in self.pages(kind, namespace):
            changes += self.refresh_page(kind, items, present)
            version = listing_rv
        return version, changes + self.refresh_gone(kind, namespace, present, version)

    def _scopes(self, namespaces: list[str]) -> list[tuple[str, str | None]]:
        """(kind, namespace or None for all) of every listing of the Jobs and pods."""
        scopes: list[str | None] = [*namespaces] or [None]
        return [(kind, ns) for ns in scopes for kind in ("job", "pod")]

    async def prime(self, namespaces: list[str]) -> list[tuple[str, str | None, int]]:
        """Lists the Jobs and pods of all VideoJobs before the first reconcile. Returns (kind,
        namespace or None, resourceVersion) of each listing: where its watch starts."""
        return [(kind, ns, (await self.relist(kind, ns))[0])
                for kind, ns in self._scopes(namespaces)]

    async def resync(self, namespaces: list[str], stop: asyncio.Event, interval: float) -> None:
        """The safety net an informer's resync period is: every `interval` seconds the Jobs and
        pods are listed again, and whatever the caches hold differently is fed in as an event.
        A watch event lost while the API server restarts would otherwise leave a VideoJob
        waiting for a stage that has long finished."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if stop.is_set():
                return
            for kind, ns in self._scopes(namespaces):
                try:
                    changes = (await self.relist(kind, ns))[1]
                except Exception as e:  # the next round tries again (an expired page token too)
                    log.warning("resync listing failed: %s", e)
                    continue
                if changes:
                    log.info("resync: %d %s change(s) the watch had not delivered", changes,
                             kind)
            self.handoffs.prune(time.monotonic())
            heap.trim()  # what the listings' pages took, back to the system (heap.py)

    def refresh_page(self, kind: str, listed: list[Obj], present: set[tuple[str, str]]) -> int:
        """Feeds one page of a listing into a cache: objects newer or missing there as events.
        Adds each listed (namespace, name) to `present`; returns the changes."""
        cache = self.jobs if kind == "job" else self.pods
        changes = 0
        for obj in listed:
            meta = obj["metadata"]
            owner = owner_name(meta)
            if not owner:
                continue
            present.add((meta["namespace"], meta["name"]))
            held = cache.get((meta["namespace"], owner), {}).get(meta["name"])
            if held is None or (held["metadata"].get("uid") != meta.get("uid")
                                or _rv(held) < _rv(obj)):
                self.observe_child(kind, "MODIFIED" if held else "ADDED", obj, trimmed=True)
                changes += 1
        return changes

    def refresh_gone(self, kind: str, namespace: str | None, present: set[tuple[str, str]],
                     listing_rv: int) -> int:
        """After a whole listing: cached objects (in `namespace`, or in all) it did not have,
        and older than it, fed in as deletions. Returns how many."""
        cache = self.jobs if kind == "job" else self.pods
        gone = [obj for key, objs in cache.items() if namespace is None or key[0] == namespace
                for name, obj in objs.items()
                if (key[0], name) not in present and _rv(obj) < listing_rv]
        for obj in gone:
            self.observe_child(kind, "DELETED", obj, trimmed=True)
        return len(gone)

    async def confirm_children_gone(self, key: Key, uid: str) -> bool:
        """Reads the VideoJob's Jobs and pods from the API (not the cache) into the cache; True
        if none is left."""
        selector = f"{LABEL_UID}={uid}"
        jobs = await self.api.call_json(self.api.batch.list_namespaced_job, key[0],
                                        label_selector=selector)
        pods = await self.api.call_json(self.api.core.list_namespaced_pod, key[0],
                                        label_selector=selector)
        for kind, listing in (("job", jobs), ("pod", pods)):
            for item in _items(listing):
                self.observe_child(kind, "ADDED", item)
        return not (jobs.get("items") or pods.get("items"))

    # -- reading --------------------------------------------------------------------------

    def children(self, key: Key, uid: str) -> tuple[list[JobView], list[PodView]]:
        """The views of the Jobs the VideoJob `uid` owns, and of their pods (a pod of a Job
        it owns, or labelled with its uid)."""

        def owned(o: Obj) -> bool:
            return any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])

        jobs = [job_view(j) for j in self.jobs.get(key, {}).values() if owned(j)]
        names = {j.name for j in jobs}
        pods = [pod_view(p) for p in self.pods.get(key, {}).values()
                if _labels(p).get(JOB_NAME_LABEL) in names
                or _labels(p).get(LABEL_UID) == uid]
        return [done_by_pods(j, pods) for j in jobs], pods

    def pod_objects(self, key: Key, uid: str) -> list[Obj]:
        """The VideoJob's pods as the caches keep them, those deleted since included (the
        GPU-seconds' source: accounting.py)."""
        return [p for cache in (self.pods.get(key, {}), self.spent.get(key, {}))
                for p in cache.values() if _labels(p).get(LABEL_UID) == uid]


def _labels(obj: Obj) -> dict[str, str]:
    labels: dict[str, str] = obj["metadata"].get("labels") or {}
    return labels


def _items(listing: Obj) -> list[Obj]:
    """A listing's items ([] for none)."""
    items: list[Obj] = listing.get("items") or []
    return items


_METADATA = ("name", "namespace", "uid", "resourceVersion", "generation", "labels",
             "annotations", "ownerReferences", "creationTimestamp", "deletionTimestamp")
# Of the labels, only ours and the Job controller's on its pods (which Job a pod is of) are read;
# a pod carries as many again that nothing here reads (app.kubernetes.io/*, the controller's uid).
_OUR_LABELS = "videojob.dev/"
# Of a pod's status, what its view, its GPU-seconds and its archive row read; its addresses and
# QoS class are not. Of a container's status, its name and state (when it started and ended,
# its exit code and message).
_POD_STATUS = ("phase", "reason", "message", "startTime", "conditions", "containerStatuses",
               "initContainerStatuses")
_CONTAINER_STATUS = ("name", "state")
# Of a Job's status, the counts that change with every pod start and nothing reads.
_JOB_STATUS_UNREAD = ("ready", "terminating", "uncountedTerminatedPods")
_CONDITION_UNREAD = "lastProbeTime"
INTERN_MAX = 128  # strings up to this long are interned (compact)


def slim(kind: str, obj: Obj) -> Obj:
    """A Job or pod as the caches keep it: the metadata and status, and of a Job's spec what
    admission and the planner read (suspension, widths, the worker container's resources).
    Everything else, a pod's spec and the managedFields above all, is dropped on arrival, and
    what is kept is `compact`."""
    meta = obj.get("metadata") or {}
    kept = {k: meta[k] for k in _METADATA if k in meta}
    if "labels" in kept:
        kept["labels"] = {k: v for k, v in kept["labels"].items()
                          if k.startswith(_OUR_LABELS) or k == JOB_NAME_LABEL}
    status: Obj = obj.get("status") or {}
    spec: Obj = obj.get("spec") or {}
    out: Obj = {"metadata": kept}
    if kind == "pod":
        out["status"] = _pod_status(status)
        # What GPUs it holds (accounting.py), and where it ran (its archive row).
        out["spec"] = {k: [{"name": c.get("name"), "resources": c.get("resources") or {}}
                           for c in spec[k]]
                       for k in ("containers", "initContainers") if spec.get(k)}
        if spec.get("nodeName"):
            out["spec"]["nodeName"] = spec["nodeName"]
    else:
        out["status"] = {k: (_conditions(v) if k == "conditions" else v)
                         for k, v in status.items() if k not in _JOB_STATUS_UNREAD}
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        out["spec"] = {k: spec[k] for k in ("suspend", "completions", "parallelism")
                       if k in spec}
        # And the cache keys it writes (VIDEOJOB_CACHE): the cache's sweep keeps those entries.
        out["spec"]["template"] = {"spec": {"containers": [
            {"name": c.get("name"), "resources": c.get("resources") or {},
             **({"env": env} if (env := [e for e in c.get("env") or []
                                         if e.get("name") == CACHE_ENV]) else {})}
            for c in containers]}}
    trimmed: Obj = compact(out)
    return trimmed


def _pod_status(status: Obj) -> Obj:
    out = {k: status[k] for k in _POD_STATUS if k in status}
    if "conditions" in out:
        out["conditions"] = _conditions(out["conditions"])
    for k in ("containerStatuses", "initContainerStatuses"):
        if k in out:
            out[k] = [{f: c[f] for f in _CONTAINER_STATUS if f in c} for c in out[k] or []]
    return out


def _conditions(conditions: list[Obj] | None) -> list[Obj]:
    return [{k: v for k, v in c.items() if k != _CONDITION_UNREAD} for c in conditions or []]


def compact(value: Any) -> Any:
    """`value` (a parsed JSON document) rebuilt with its short strings interned. Thousands of
    VideoJobs, Jobs and pods held at once repeat the same strings ("True", "Complete", a pool's
    name, a VideoJob's uid in its Jobs', its pods' and its own status): each is then held once,
    which cuts the copies' size by about 40 % (tests/operator/test_store_copies.py)."""
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= INTERN_MAX else value
    if isinstance(value, dict):
        return {sys.intern(k) if isinstance(k, str) else k: compact(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


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
        return (pod_view(obj), *common)
    return (job_view(obj), (obj.get("spec") or {}).get("parallelism"), *common)


def queue_view(vj: Obj) -> tuple[Any, ...]:
    """What admission reads of a VideoJob (admission_loop.workload). A copy that differs only
    elsewhere (progress, queue place, conditions: most of a running VideoJob's writes) changes
    no admission."""
    meta, spec = vj.get("metadata") or {}, vj.get("spec") or {}
    return (meta.get("uid"), meta.get("name"), meta.get("creationTimestamp"),
            meta.get("deletionTimestamp"), spec.get("priority"), bool(spec.get("suspend")),
            (vj.get("status") or {}).get("phase") in TERMINAL)


def _rv(obj: Obj) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0
