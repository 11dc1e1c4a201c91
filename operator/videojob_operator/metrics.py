"""Prometheus metrics of the operator (prometheus-client), served on `--metrics-port`.

Cardinality is bounded by design (argo #13683): labels are pools, stages, priority bands
(high/normal/low), phases and reasons, never a VideoJob's name or uid.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)
BANDS = ("high", "normal", "low")

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
    "videojob_admission_pass_seconds", "Duration of one admission pass over all pools.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=REGISTRY)
ADMISSION_ERRORS = Counter(
    "videojob_admission_errors", "Admission patches the API refused (retried next pass).",
    ["pool"], registry=REGISTRY)
REDIS_QUEUE_UP = Gauge(
    "videojob_redis_queue_up", "1 while the Redis mirror of the queues is in sync, else 0.",
    registry=REGISTRY)


def serve(port: int, address: str = "0.0.0.0") -> None:
    start_http_server(port, addr=address, registry=REGISTRY)
