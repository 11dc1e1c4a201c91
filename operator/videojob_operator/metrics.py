"""Prometheus metrics of the operator (prometheus-client), served on `--metrics-port`.

Cardinality is bounded by design (argo #13683): labels are pools, stages, priority bands
(high/normal/low), phases, reasons and notification events and outcomes, never a VideoJob's
name or uid, nor a webhook's URL.
"""

from __future__ import annotations

import datetime as dt
import platform
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from videojob_common.pipeline import TERMINAL, Phase

from . import __version__
from .accounting import stage_figures
from .api import NotifyEvent

REGISTRY = CollectorRegistry(auto_describe=True)
BANDS = ("high", "normal", "low")
PHASES = tuple(Phase)

BUILD_INFO = Gauge("videojob_build_info", "The operator's version (value 1).",
                   ["version", "python"], registry=REGISTRY)
BUILD_INFO.labels(__version__, platform.python_version()).set(1)
STAGE_DURATION = Histogram(
    "videojob_stage_duration_seconds", "Stage run time, admission to end, by outcome.",
    ["stage", "outcome"],
    buckets=(1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
    registry=REGISTRY)
VIDEOJOB_DURATION = Histogram(
    "videojob_duration_seconds", "VideoJob run time, first admission to end, by outcome.",
    ["outcome"], buckets=(5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400),
    registry=REGISTRY)
FINISHED = Counter("videojob_finished", "VideoJobs that reached Succeeded or Failed.",
                   ["phase"], registry=REGISTRY)
FAILURES = Counter("videojob_failures", "VideoJobs failed, by reason.", ["reason"],
                   registry=REGISTRY)
STATUS_PATCHES = Counter(
    "videojob_status_patches", "Status writes: kind transition|progress, result ok|conflict.",
    ["kind", "result"], registry=REGISTRY)
RECONCILES = Counter("videojob_reconciles", "Reconcile passes.", registry=REGISTRY)
RECONCILE_ERRORS = Counter("videojob_reconcile_errors",
                           "Reconcile passes that failed (retried), by kind api|internal.",
                           ["kind"], registry=REGISTRY)
RECONCILE_SECONDS = Histogram(
    "videojob_reconcile_seconds", "Duration of one reconcile pass.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=REGISTRY)
JOBS_CREATED = Counter("videojob_stage_jobs_created", "Stage Jobs created.", ["stage"],
                       registry=REGISTRY)
EVENTS = Counter("videojob_events", "Events posted, by type.", ["type"], registry=REGISTRY)
# Fine enough below a second for the benchmarks' p50 (bench/orchestration.py reads them).
HANDOFF_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3,
                   5, 7.5, 10, 15, 30, 60)
HANDOFF_SECONDS = Histogram(
    "videojob_handoff_seconds", "A stage Job seen Complete on the watch -> the next stage's Job "
    "created (the create answered): the operator's part of a hand-off (handoff.py).",
    buckets=HANDOFF_BUCKETS, registry=REGISTRY)
HANDOFF_CREATE_SECONDS = Histogram(
    "videojob_handoff_create_seconds", "The next stage's Job create of a hand-off alone: the "
    "request sent -> answered. The rest of videojob_handoff_seconds is the operator's own: its "
    "work queue and the plan.",
    buckets=HANDOFF_BUCKETS, registry=REGISTRY)
WATCH_DELAY_SECONDS = Histogram(
    "videojob_watch_delay_seconds", "The operator's own stage Job creates: the create answered "
    "-> the Job's ADDED event on the operator's watch. The API server's delivery delay, which "
    "every event the operator reacts to waits on too.",
    buckets=HANDOFF_BUCKETS, registry=REGISTRY)
WATCH_RESTARTS = Counter(
    "videojob_watch_restarts", "Stage Job and pod watches reopened other than on their timeout: "
    "`expired` (listed again), `error`, or `closed` (ended by the API server before its "
    "timeout).", ["kind", "cause"], registry=REGISTRY)

PROGRESS_DROPPED = Counter(
    "videojob_progress_reports_dropped", "Worker progress reports not taken: `unverified` (not "
    "signed with the token of the VideoJob it names: forged, or a worker without its token), "
    "`invalid` (no such stage or scene), `stale` (older than one already taken: a replay).",
    ["reason"], registry=REGISTRY)

NOTIFY_OUTCOMES = ("delivered", "retried", "gave_up")
NOTIFICATIONS = Counter(
    "videojob_notifications", "Webhook notification attempts (delivery.py) by event and "
    "outcome: `delivered` (a 2xx answer), `retried` (failed, tried again later), `gave_up` "
    "(failed for the last time, or its address is not allowed).", ["event", "outcome"],
    registry=REGISTRY)
NOTIFICATION_DELAY = Histogram(
    "videojob_notification_delay_seconds", "A transition recorded in the status -> the first "
    "attempt to notify it (the delivery loop's lag; the receiver's time is not in it).",
    buckets=HANDOFF_BUCKETS, registry=REGISTRY)

# Series that exist from the start, at 0, so rates and alerts see them before the first event.
for _reason in ("unverified", "invalid", "stale"):
    PROGRESS_DROPPED.labels(_reason)
for _kind in ("api", "internal"):
    RECONCILE_ERRORS.labels(_kind)
for _kind in ("transition", "progress"):
    for _result in ("ok", "conflict"):
        STATUS_PATCHES.labels(_kind, _result)
for _phase in sorted(TERMINAL):
    FINISHED.labels(_phase)
for _event in NotifyEvent:
    for _outcome in NOTIFY_OUTCOMES:
        NOTIFICATIONS.labels(_event, _outcome)


class PhaseCollector(Collector):
    """`videojob_videojobs{phase}`: VideoJobs by phase, counted from the cache at scrape time."""

    def __init__(self, source: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self.source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = Tally(((vj.get("status") or {}).get("phase") or "Pending")
                       for vj in self.source())
        family = GaugeMetricFamily("videojob_videojobs", "VideoJobs by phase.",
                                   labels=["phase"])
        for phase in PHASES:
            family.add_metric([phase], counts.get(phase, 0))
        yield family


def watch_phases(source: Callable[[], Iterable[dict[str, Any]]]) -> None:
    REGISTRY.register(PhaseCollector(source))


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        a = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max((b - a).total_seconds(), 0.0)


def record_transition(old: dict[str, Any], new: dict[str, Any]) -> None:
    """Stage and VideoJob outcomes, once, when a written status shows them first."""
    before = {s.get("name"): s.get("phase") for s in old.get("stages") or []}
    for stage in new.get("stages") or []:
        phase = stage.get("phase")
        if phase in TERMINAL and before.get(stage.get("name")) != phase:
            seconds = _seconds(stage.get("startTime"), stage.get("completionTime"))
            if seconds is not None:
                STAGE_DURATION.labels(stage.get("name"), phase.lower()).observe(seconds)
    phase = new.get("phase")
    if phase in TERMINAL and old.get("phase") != phase:
        FINISHED.labels(phase).inc()
        if phase == Phase.FAILED:
            FAILURES.labels(new.get("reason") or "Unknown").inc()
        seconds = _seconds(new.get("startTime"), new.get("completionTime"))
        if seconds is not None:
            VIDEOJOB_DURATION.labels(phase.lower()).observe(seconds)

GPU_SECONDS = Counter(
    "videojob_gpu_seconds", "GPU-seconds of stage pods that have ended (run time times GPUs "
    "held, every attempt), by the VideoJob's namespace and the stage's pool.",
    ["namespace", "pool"], registry=REGISTRY)
OUTPUT_SECONDS = Counter(
    "videojob_output_seconds", "Seconds of video of the VideoJobs that succeeded, by namespace "
    "(GPU-seconds per output second: the ratio of the two).", ["namespace"], registry=REGISTRY)


def record_usage(namespace: str, old: dict[str, Any], new: dict[str, Any],
                 pool_of: Callable[[str], str], output_seconds: float | None) -> None:
    """What a written status adds: the GPU-seconds its stages gained, and the video's seconds
    when it shows the VideoJob succeeded first. Counted from writes only, so a restart, which
    plans from the status as written, never counts a figure twice."""
    before = stage_figures(old)
    for stage, figure in stage_figures(new).items():
        added = figure - before.get(stage, 0.0)
        if added > 0:
            GPU_SECONDS.labels(namespace, pool_of(stage)).inc(added)
    if (new.get("phase") == Phase.SUCCEEDED and old.get("phase") != Phase.SUCCEEDED
            and output_seconds):
        OUTPUT_SECONDS.labels(namespace).inc(output_seconds)


ARCHIVED = Counter("videojob_archive_rows_written", "Rows the archive committed (a row written "
                   "again, for a figure that changed after the end, counts again).",
                   registry=REGISTRY)
ARCHIVE_ERRORS = Counter("videojob_archive_errors", "Archive writes or marks that failed "
                         "(retried).", registry=REGISTRY)
ARCHIVE_PENDING = Gauge("videojob_archive_pending", "VideoJobs due for the archive, not "
                        "written yet.", registry=REGISTRY)
ARCHIVE_WRITE_SECONDS = Histogram(
    "videojob_archive_write_seconds", "Time to commit one batch of archive rows.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=REGISTRY)
ARCHIVE_EXPIRED = Counter("videojob_archive_rows_expired", "Archive rows removed by retention.",
                          registry=REGISTRY)
QUEUE_DEPTH = Gauge(
    "videojob_queue_depth", "Stage Jobs waiting in a pool's admission queue (suspended, "
    "VideoJob not suspended).", ["pool", "priority_band"], registry=REGISTRY)
QUEUE_PODS = Gauge(
    "videojob_queue_pods", "Pods the queued work of a pool still needs (the scaling input).",
    ["pool"], registry=REGISTRY)
POOL_RUNNING = Gauge(
    "videojob_pool_running", "Admitted stage pods Running in a pool.", ["pool"],
    registry=REGISTRY)
POOL_PENDING = Gauge(
    "videojob_pool_pending", "Admitted stage pods not Running yet (Pending or being created).",
    ["pool"], registry=REGISTRY)
POOL_HELD = Gauge(
    "videojob_pool_held", "Stage Jobs held because their VideoJob is suspended.", ["pool"],
    registry=REGISTRY)
POOL_MAX = Gauge(
    "videojob_pool_max_concurrency", "A pool's maxConcurrency in pods (auto resolved).",
    ["pool"], registry=REGISTRY)
POOL_DESIRED = Gauge(
    "videojob_pool_desired", "A pool's scale target after cooldown (KEDA-style).", ["pool"],
    registry=REGISTRY)
ADMITTED = Counter(
    "videojob_admitted", "Stage Jobs admitted from the queue.", ["pool", "priority_band"],
    registry=REGISTRY)
ADMITTED_PODS = Counter(
    "videojob_admitted_pods", "Pods admitted (including Jobs widened).", ["pool"],
    registry=REGISTRY)
ADMISSION_WAIT = Histogram(
    "videojob_admission_wait_seconds", "Time a stage Job waited in the queue before admission.",
    ["pool", "priority_band"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY)
ADMISSION_PASS = Histogram(
    "videojob_admission_pass_seconds",
    "Duration of one admission pass over all pools: deciding and sending its patches, not "
    "waiting for their answers.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=REGISTRY)
# A freed slot's reaction, in parts: bench/scale.py reads them beside its own reaction, which
# also holds the two watches' delivery (the pod's success to the operator, the Job's admission
# to the reader).
REACTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5)
ADMISSION_REACTION = Histogram(
    "videojob_admission_reaction_seconds",
    "A slot freed (a stage pod's success read from the operator's watch) -> the admission it "
    "allowed, answered by the API server. The slots a pass frees are given to its admissions in "
    "the order they freed.", ["pool"], buckets=REACTION_BUCKETS, registry=REGISTRY)
ADMISSION_DELAY = Histogram(
    "videojob_admission_pass_delay_seconds",
    "The first part of videojob_admission_reaction_seconds: a slot freed -> the start of the "
    "pass that gives it away.", ["pool"], buckets=REACTION_BUCKETS, registry=REGISTRY)
ADMISSION_PATCH = Histogram(
    "videojob_admission_patch_seconds",
    "An admission's patch: sent -> answered.", ["pool"], buckets=REACTION_BUCKETS,
    registry=REGISTRY)
# Every API request of the operator but the watches and listings (kube.Api.call), in parts:
# `thread` (submitted -> a thread of its pool takes it), `request` (the thread's HTTP request:
# the API server's answer, and this process's GIL), `resume` (the answer back -> the event loop
# resumes the coroutine that waits for it: the loop's lag). `threads`: api, events, handoff
# (stage Job creates) or admission (admissions' patches): kube.Api's thread pools.
API_CALL = Histogram(
    "videojob_api_call_seconds", "An API request of the operator, by its thread pool and part: "
    "waiting for a thread, the request, and the event loop taking its answer.",
    ["threads", "part"], buckets=REACTION_BUCKETS, registry=REGISTRY)
ADMISSION_ERRORS = Counter(
    "videojob_admission_errors", "Admission patches the API refused (retried next pass).",
    ["pool"], registry=REGISTRY)
REDIS_QUEUE_UP = Gauge(
    "videojob_redis_queue_up", "1 while the Redis mirror of the queues is in sync, else 0.",
    registry=REGISTRY)


def serve(port: int, address: str = "0.0.0.0") -> None:
    start_http_server(port, addr=address, registry=REGISTRY)

# The stage cache (cache_lookup.py): per stage, never per VideoJob or key.
CACHE_LOOKUPS = Counter("videojob_cache_lookups", "Cache entries looked up, by stage and result "
                        "(hit: copied and verified; miss: no entry; corrupt: an entry whose "
                        "manifest or bytes do not match, treated as a miss and replaced).",
                        ["stage", "result"], registry=REGISTRY)
CACHE_BYTES_REUSED = Counter("videojob_cache_reused_bytes", "Bytes copied from cache entries "
                             "instead of rendered, by stage.", ["stage"], registry=REGISTRY)
CACHE_LOOKUP_SECONDS = Histogram(
    "videojob_cache_lookup_seconds", "Time of one VideoJob's cache lookup (reads and copies).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=REGISTRY)
CACHE_LOOKUP_ERRORS = Counter("videojob_cache_lookup_errors", "Cache lookups that failed (the "
                              "storage unreachable): the VideoJob renders as if nothing were "
                              "cached.", registry=REGISTRY)

# The cache's housekeeping (cache_sweeper.py). `cache`: the namespace of its own cache, or
# `shared:<name>`; a handful of values, as many as namespaces.
CACHE_EVICTIONS = Counter("videojob_cache_evictions", "Cache entries (or writer folders) the "
                          "sweep removed, by stage and reason (age, size, orphan, corrupt).",
                          ["stage", "reason"], registry=REGISTRY)
CACHE_BYTES = Gauge("videojob_cache_bytes", "Bytes the cache holds, by cache and stage, as of "
                    "the last sweep.", ["cache", "stage"], registry=REGISTRY)
CACHE_SWEEP_ERRORS = Counter("videojob_cache_sweep_errors", "Cache scopes a sweep could not "
                             "list or clean (storage unreachable); tried again next sweep.",
                             registry=REGISTRY)
