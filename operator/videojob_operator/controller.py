"""The controller: takes VideoJobs off the work queue, plans each from the store, applies the
plan as it is.

Everything that reads the cluster goes through the store (store.py): kopf's VideoJob events
(handlers.py), the Job and pod watches (child_watches.py) and the Redis progress feed
(progress_feed.py). The store tells the controller which VideoJob changed, and the work queue
(workqueue.py) runs one reconcile per VideoJob at a time:

1. `observe`: the VideoJob, its Jobs and pods (views.py), its progress, the clock, its place in
   the queue, what admission offers a Job created now (admission_loop.Admitter.offers) and the
   webhook deliveries made since its status last recorded them (delivery.py);
2. `planner.plan`: what to do (pure);
3. `apply`: does it, in the plan's order; a Job the plan admitted at creation is counted by
   admission from the moment the plan is made (`Admitter.creating`), before any await, so two
   reconciles never take the same room.

Status is written only when it changed, in one merge patch of the status subresource, with the
resourceVersion it was computed from; changes that are only progress figures are written at most
once a second per VideoJob. `requeue_after` from the planner becomes a timer.

A write the API server refuses is recorded per VideoJob (refusals.py) and the next observation
carries it: one that can never pass fails the VideoJob at once; the others are retried with
exponential backoff and shown in the Degraded condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable, Iterator

from kubernetes import client
from kubernetes.client import ApiException

from videojob_common.pipeline import STAGES, TERMINAL, Obj
from videojob_common.progress_auth import namespace_token, secret_name, tokens_for_report

from . import child_watches, metrics, planner
from .actions import Plan
from .admission_loop import Admitter
from .api import FINALIZER, GROUP, PLURAL, VERSION
from .archiver import Archiver
from .archiving import archive_key
from .cache_lookup import CacheLookups
from .cache_sweeper import CacheSweeper
from .config import LiveConfig
from .delivery import Deliveries
from .events import EventRecorder
from .jobs import ANNOTATION_QUEUED_AT, LABEL_STAGE, token_secret
from .kube import Api
from .logs import ctx
from .pools import pool_of
from .refusals import Refusal, backoff, refusal
from .signing_secrets import SigningSecrets
from .status import ts_micro
from .store import Change, Key, Store
from .views import Observation
from .workqueue import WorkQueue

log = logging.getLogger("videojob.controller")

PROGRESS_WRITE_INTERVAL = 1.0  # seconds between progress-only status writes of one VideoJob
# The longest a change of only the figures that move as pods end (status.SETTLING_KEYS) waits
# for the stage's end to write it.
SETTLE_SECONDS = 5.0
# A namespace's progress-token Secret is created again (answered 409 where it is) when a stage
# Job is created there this long after the last time: one a tenant deleted comes back.
TOKEN_SECRET_SECONDS = 300.0


class Controller:
    def __init__(self, config: LiveConfig, api: client.ApiClient, *,
                 workers: int = 16, clock: Callable[[], dt.datetime] | None = None,
                 progress_key: bytes | None = None) -> None:
        self.config = config
        # Progress tokens are derived from it (videojob_common.progress_auth); the namespaces
        # whose token Secret this process has written (or found there): namespace -> (its uid
        # then, when).
        self.progress_key = progress_key or secrets.token_bytes(32)
        self.progress_secret = secret_name(self.progress_key)
        self.token_secrets: dict[str, tuple[str, float]] = {}
        self.token_locks: dict[str, asyncio.Lock] = {}
        self.api = Api(api)
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.store = Store(self.api)
        self.queue = WorkQueue(self._reconcile_safely, workers)
        self.events = EventRecorder(self.api)
        self.last_status_write: dict[Key, float] = {}
        self.settling_since: dict[Key, float] = {}  # a settling-only change first planned
        self.refusals: dict[Key, Refusal] = {}  # the last refusal, until a reconcile passes
        self.errors: dict[Key, int] = {}  # internal errors in a row
        self.watches: list[child_watches.ChildWatch] = []
        self.store.subscribe(self.changed)
        self.admitter = Admitter(self.store, self.config, self.api, requeue=self.queue.add,
                                 clock=self.clock)
        # Webhook notifications, sent off the reconcile path (delivery.py); their signing
        # secrets read from the Secrets tenants let the operator `get` (signing_secrets.py).
        secrets_ = SigningSecrets(lambda ns, name: self.api.call(self.api.kube.read_secret, ns,
                                                                  name))
        self.deliveries = Deliveries(self.store, self.config, secrets_, requeue=self.queue.add,
                                     clock=self.clock)
        self.store.subscribe(self.deliveries.changed)
        # The archive of finished VideoJobs, when it is on (archiver.py).
        self.archive_key = archive_key(self.progress_key)
        self.archiver = (Archiver(self.store, self.config, self.api, self.archive_key,
                                  requeue=self.queue.add, clock=self.clock)
                         if config.current.archive.enabled else None)
        # The stage cache's lookups (cache_lookup.py), made when a stage asks for one.
        self.cache = CacheLookups(config.current.cache.lookup_threads, requeue=self.queue.add)
        # The cache's housekeeping, when the cache is on (cache_sweeper.py; run by handlers.py).
        self.cache_sweeper = (CacheSweeper(self.store, self.config, self.cache, clock=self.clock)
                              if config.current.cache.enabled else None)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.queue.start()

    async def stop(self) -> None:
        for w in self.watches:
            w.stop()
        await self.queue.stop()
        await self.deliveries.stop()
        await self.cache.close()
        if self.archiver is not None:
            await self.archiver.close()
        await self.events.drain(timeout=5)
        self.api.shutdown()

    async def start_watches(self, namespaces: list[str]) -> None:
        """Primes the caches, then watches Jobs and pods from the listings' versions."""
        versions = await self.store.prime(namespaces)
        self.watches = child_watches.start(self.store, versions, asyncio.get_running_loop())

    # -- what changed -----------------------------------------------------------------------

    def changed(self, change: Change) -> None:
        """The store's news: queue the VideoJob's reconcile (or forget a deleted one)."""
        key = change.key
        if change.deleted:
            self.last_status_write.pop(key, None)
            self.settling_since.pop(key, None)
            self.refusals.pop(key, None)
            self.errors.pop(key, None)
            self.cache.forget(key)
            self.queue.forget(key)
        elif change.kind == "progress":
            self._progress_reported(key)
        elif change.reconcile:
            self.queue.add(key, urgent=change.urgent)

    def _progress_reported(self, key: Key) -> None:
        # A report only ever changes progress figures, written at most once a second: look
        # when that write may happen, not at every report (workers report ten times a second,
        # and each look is a full plan).
        since = time.monotonic() - self.last_status_write.get(key, 0.0)
        if since < PROGRESS_WRITE_INTERVAL:
            self.queue.add_after(key, PROGRESS_WRITE_INTERVAL - since)
        else:
            self.queue.add(key)

    # -- one reconcile ----------------------------------------------------------------------

    def observe(self, key: Key) -> Observation | None:
        vj = self.store.videojobs.get(key)
        if vj is None:
            return None
        uid = vj["metadata"]["uid"]
        jobs, pods = self.store.children(key, uid)
        return Observation(videojob=vj, jobs=jobs, pods=pods,
                           progress=list(self.store.progress.get(uid, {}).values()),
                           now=self.clock(), queue_position=self.admitter.positions.get(key),
                           offers=self.admitter.offers(), refused=self.refusals.get(key),
                           deliveries=self.deliveries.unrecorded(key),
                           pod_objects=tuple(self.store.pod_objects(key, uid)),
                           archive_key=self.archive_key, cache=self.cache.answer(key, uid),
                           progress_secret=self.progress_secret)

    async def reconcile(self, key: Key) -> None:
        obs = self.observe(key)
        if obs is None:
            return
        plan = planner.plan(obs, self.config.current)
        for manifest in plan.create_jobs:  # before any await: see the module's docstring
            self.admitter.creating(manifest, obs.videojob)
        if obs.cache is not None and (plan.status or {}).get("phase") in TERMINAL:
            self.cache.forget(key)  # ended: its keys are in its entries, not needed in memory
        await self.apply(key, obs.videojob, plan)

    async def _reconcile_safely(self, key: Key) -> None:
        try:
            await self.reconcile(key)
        except (ApiException, RefusedWrite) as e:
            await self._refused(key, e)
        except Exception:
            metrics.RECONCILE_ERRORS.labels("internal").inc()
            errors = self.errors[key] = self.errors.get(key, 0) + 1
            log.exception("reconcile failed", extra=ctx(*key))
            self.queue.add_after(key, backoff(errors))
        else:
            self.errors.pop(key, None)
            if self.refusals.pop(key, None) is not None:
                self.queue.add(key)  # once more, to clear the Degraded condition

    async def _refused(self, key: Key, e: ApiException | RefusedWrite) -> None:
        """The API said no: recorded for the next observation (the planner fails the VideoJob
        or shows it as Degraded), which comes at once the first time a refusal can never pass,
        else after the backoff; one that may pass shows in the Degraded condition at once."""
        what, error = (e.what, e.error) if isinstance(e, RefusedWrite) else ("a request", e)
        r = refusal(what, error.status, error.reason, error.body, self.refusals.get(key))
        self.refusals[key] = r
        metrics.RECONCILE_ERRORS.labels("api").inc()
        first_permanent = r.permanent and r.attempts == 1
        log.warning("%s; %s", r.describe(), "failing the VideoJob" if first_permanent
                    else f"again in {r.retry_after:.0f} s", extra=ctx(*key))
        if first_permanent:
            self.queue.add(key)
            return
        self.queue.add_after(key, r.retry_after)
        vj = self.store.videojobs.get(key)
        patch = planner.degraded_now(vj, r, self.clock()) if vj is not None else None
        if vj is None or patch is None:
            return
        with contextlib.suppress(ApiException):  # refused too: the log and the retry remain
            updated = await self.api.call(self.api.kube.patch_videojob_status, *key, {
                "metadata": {"resourceVersion": vj["metadata"]["resourceVersion"]},
                "status": patch})
            self.store.remember(key, updated)

    async def apply(self, key: Key, vj: Obj, plan: Plan) -> None:
        """Does what the plan says, in its order; stops where a write finds the VideoJob
        changed (the next reconcile starts from the newer copy)."""
        if plan.cache_lookup is not None:
            self.cache.ask(key, plan.cache_lookup)
        version = await self._children(key, vj, plan)
        if version is None or plan.cache_lookup is not None:
            # A stage that waits for the cache: the lookup's answer comes with a reconcile of
            # its own (always, a failed lookup too), which writes this status and tells these
            # Events with the Job it creates. One status write per hand-off, not two.
            return
        if plan.status is not None:
            version = await self._write_status(key, vj, plan, version)
            if version is None:
                return  # not recorded (stale or rate-limited): no Events for it either, yet
            self.deliveries.look(key)  # notifications it queued go now, not at the watch's echo
        for event in plan.events:
            self.events.post(key, vj, event, self.clock())
        if plan.archive and self.archiver is not None:
            self.archiver.add(key)
        await self._let_go(key, vj, plan, version)
        if plan.requeue_after is not None:
            self.queue.add_after(key, plan.requeue_after)

    async def _children(self, key: Key, vj: Obj, plan: Plan) -> str | None:
        """The finalizer, then the stage Jobs to create, suspend or delete; the
        resourceVersion the rest applies to (None: the VideoJob changed meanwhile)."""
        try:
            version = await self._finalizer(key, vj, plan)
            if version is None:
                return None
            if plan.create_jobs:
                await self._write_token(key[0])
            await self._create_jobs(key, plan)
        finally:
            for manifest in plan.create_jobs:
                self.admitter.created(key[0], manifest["metadata"]["name"])
        await self._suspend_jobs(key, plan)
        await self._delete_jobs(key, plan)
        return version

    async def _finalizer(self, key: Key, vj: Obj, plan: Plan) -> str | None:
        """Adds the finalizer if the plan says so. The resourceVersion the rest of the plan
        applies to; None if the VideoJob changed meanwhile."""
        meta = vj["metadata"]
        version: str = meta["resourceVersion"]
        if not plan.add_finalizer:
            return version
        updated = await self._patch_videojob(key, {"metadata": {
            "finalizers": [*(meta.get("finalizers") or []), FINALIZER],
            "resourceVersion": version}})
        if updated is None:
            return None  # conflict: start again from the newer object
        if updated["metadata"].get("generation") == meta.get("generation"):
            # Only our finalizer changed: the plan still holds for the new version.
            version = updated["metadata"]["resourceVersion"]
        return version

    def progress_tokens(self, report: Obj) -> Iterator[str]:
        """The tokens a worker's report may be signed with (progress_feed.py)."""
        return tokens_for_report(self.progress_key, self.store.namespace_uids, report)

    async def _write_token(self, namespace: str) -> None:
        """The namespace's progress-token Secret, before stage Jobs there: once per namespace
        (by uid) in this process's life, and again after TOKEN_SECRET_SECONDS; 409 where it is
        (written before a restart). A namespace not yet on the watch gets none for now: its
        stage pods run, their reports are dropped, and the next stage's create tries again."""
        if not self.config.current.redis_url or not self._token_due(namespace):
            return
        # The first VideoJobs of a namespace come together: one writes, the others wait for it.
        async with self.token_locks.setdefault(namespace, asyncio.Lock()):
            if not self._token_due(namespace):
                return
            uid = self.store.namespace_uids[namespace]
            manifest = token_secret(namespace, self.progress_secret,
                                    namespace_token(self.progress_key, namespace, uid),
                                    await self.admitter.owner_references())
            try:
                await self.api.call(self.api.kube.create_secret, namespace, manifest)
            except ApiException as e:
                if e.status != 409:  # 409: written before (by this operator before a restart)
                    raise RefusedWrite("creating the namespace's progress-token Secret",
                                       e) from e
            self.token_secrets[namespace] = (uid, time.monotonic())

    def _token_due(self, namespace: str) -> bool:
        uid = self.store.namespace_uids.get(namespace)
        return uid is not None and token_secret_due(self.token_secrets.get(namespace), uid,
                                                     time.monotonic())

    async def _create_jobs(self, key: Key, plan: Plan) -> None:
        ns, name = key
        for manifest in plan.create_jobs:
            stage = manifest["metadata"]["labels"][LABEL_STAGE]
            job_name = manifest["metadata"]["name"]
            sent = time.monotonic()
            try:
                created = await self.api.call(self.api.kube.create_job, ns, manifest,
                                              executor=self.api.handoff_executor)
            except ApiException as e:
                if e.status != 409:  # 409: it exists (a stale cache); the watch brings it
                    raise RefusedWrite(f"creating Job {job_name}", e) from e
                continue
            answered = time.monotonic()
            self.store.handoffs.job_created((ns, job_name), answered)
            if stage != STAGES[0]:
                self.store.handoffs.next_stage_created(key, answered, answered - sent)
            log.info("created Job %s", job_name, extra=ctx(ns, name, stage))
            self.store.answered("job", created, reconcile=False)
            metrics.JOBS_CREATED.labels(stage).inc()

    async def _suspend_jobs(self, key: Key, plan: Plan) -> None:
        for job_name, suspend in plan.suspend_jobs.items():
            # Back in the queue from now on: admission unsuspends it again after a resume.
            try:
                updated = await self.api.call(self.api.kube.patch_job, key[0], job_name, {
                    "metadata": {"annotations": {ANNOTATION_QUEUED_AT: ts_micro(self.clock())}},
                    "spec": {"suspend": suspend}})
            except ApiException as e:
                raise RefusedWrite(f"{'suspending' if suspend else 'resuming'} Job {job_name}",
                                   e) from e
            self.store.answered("job", updated, reconcile=True)
            log.info("%s Job %s", "suspended" if suspend else "resumed", job_name,
                     extra=ctx(*key))

    async def _delete_jobs(self, key: Key, plan: Plan) -> None:
        for job_name in plan.delete_jobs:
            try:
                # Foreground: the Job stays until its pods are gone, so "no Job left" also
                # means "no pod left"; an explicit policy, as a bare delete can orphan pods.
                await self.api.call(self.api.kube.delete_job, key[0], job_name, "Foreground")
                log.info("deleted Job %s", job_name, extra=ctx(*key))
            except ApiException as e:
                if e.status != 404:
                    raise RefusedWrite(f"deleting Job {job_name}", e) from e

    async def _let_go(self, key: Key, vj: Obj, plan: Plan, version: str) -> None:
        """The end of a VideoJob: its finalizer removed (cancellation.py), or the VideoJob
        deleted (ttlSecondsAfterFinished)."""
        meta = vj["metadata"]
        if plan.remove_finalizer and plan.confirm_gone and not (
                await self.store.confirm_children_gone(key, meta["uid"])):
            self.queue.add_after(key, 0.5)
        elif plan.remove_finalizer:
            finalizers = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
            await self._patch_videojob(key, {"metadata": {
                "finalizers": finalizers, "resourceVersion": version}})
            log.info("cancelled; finalizer removed", extra=ctx(*key))
        if plan.delete_videojob:
            try:
                await self.api.call(self.api.custom.delete_namespaced_custom_object, GROUP,
                                    VERSION, key[0], PLURAL, key[1],
                                    propagation_policy="Background")
            except ApiException as e:
                if e.status != 404:
                    raise RefusedWrite("deleting the VideoJob", e) from e

    async def _write_status(self, key: Key, vj: Obj, plan: Plan,
                            resource_version: str) -> str | None:
        """Writes the plan's status and returns the new resourceVersion; None if it was not
        written (computed from a stale copy, or a progress update that has to wait)."""
        now = time.monotonic()
        if plan.settling_only:
            waited = now - self.settling_since.setdefault(key, now)
            if waited < SETTLE_SECONDS:
                self.queue.add_after(key, SETTLE_SECONDS - waited)
                return None
        if plan.progress_only:
            since = now - self.last_status_write.get(key, 0.0)
            if since < PROGRESS_WRITE_INTERVAL:
                self.queue.add_after(key, PROGRESS_WRITE_INTERVAL - since)
                return None
        body = {
            # Optimistic concurrency: a status computed from a stale copy is refused (409) and
            # recomputed from the newer one, so no writer ever rolls a transition back.
            "metadata": {"resourceVersion": resource_version},
            "status": _nulls_for_removed(vj.get("status") or {}, plan.status or {}),
        }
        kind = "progress" if plan.progress_only else "transition"
        try:
            updated = await self.api.call(self.api.kube.patch_videojob_status, *key, body)
        except ApiException as e:
            if e.status not in (404, 409):
                raise RefusedWrite("writing the status", e) from e
            if e.status == 409:
                metrics.STATUS_PATCHES.labels(kind, "conflict").inc()
                self.queue.add_after(key, 0.05)
            return None
        metrics.STATUS_PATCHES.labels(kind, "ok").inc()
        metrics.record_transition(vj.get("status") or {}, plan.status or {})
        pools = self.config.current.pools
        metrics.record_usage(key[0], vj.get("status") or {}, plan.status or {},
                             lambda stage: pool_of(pools, stage),
                             (vj.get("spec") or {}).get("durationSeconds"))
        self.last_status_write[key] = now
        self.settling_since.pop(key, None)
        self.store.remember(key, updated)
        return str(updated["metadata"]["resourceVersion"])

    async def _patch_videojob(self, key: Key, body: Obj) -> Obj | None:
        try:
            updated: Obj = await self.api.call(self.api.kube.patch_videojob, *key, body)
        except ApiException as e:
            if e.status == 409:  # stale resourceVersion: the next event brings the new one
                self.queue.add_after(key, 0.1)
                return None
            if e.status == 404:
                return None
            raise RefusedWrite("patching the VideoJob", e) from e
        self.store.remember(key, updated)
        return updated


def token_secret_due(written: tuple[str, float] | None, uid: str, now: float) -> bool:
    """Whether a namespace's progress-token Secret is to be created (again): never written by
    this process, written for another namespace of that name (deleted and made again), or
    TOKEN_SECRET_SECONDS ago."""
    return written is None or written[0] != uid or now - written[1] >= TOKEN_SECRET_SECONDS


class RefusedWrite(Exception):
    """An ApiException, with the write that was refused."""

    def __init__(self, what: str, error: ApiException) -> None:
        super().__init__(what)
        self.what, self.error = what, error


def _nulls_for_removed(old: Obj, new: Obj) -> Obj:
    """A merge patch that also clears top-level fields the new status no longer has."""
    patch: Obj = dict(new)
    for k in old:
        if k not in new:
            patch[k] = None
    return patch
