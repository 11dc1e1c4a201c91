"""Prometheus metrics of the gateway (`GET /metrics`), in a registry of the app's own.

Labels are bounded (argo #13683): a route is its template (`/api/v1/namespaces/{ns}/videojobs`),
never a path with a namespace or name in it; API-server requests are counted by verb and
resource. The request counter of the API server is also how the e2e tests show that served
reads cost it nothing.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Gauge("videojob_gateway_build_info", "The gateway's version (value 1).",
              ["version", "python"], registry=r).labels(
                  __version__, platform.python_version()).set(1)
        self.requests = Counter("videojob_gateway_requests", "Requests served, by route, "
                                "method and status code.", ["route", "method", "code"],
                                registry=r)
        self.latency = Histogram("videojob_gateway_request_seconds", "Time to the response's "
                                 "headers, by route and method (streams: to their start).",
                                 ["route", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.auth_cache = Counter("videojob_gateway_auth_cache", "Lookups of the TokenReview "
                                  "(cache=token) and SubjectAccessReview (cache=access) caches.",
                                  ["cache", "result"], registry=r)
        self.api_requests = Counter("videojob_gateway_apiserver_requests", "Requests to the "
                                    "Kubernetes API server, by verb, resource and status code "
                                    "(0: no answer).", ["verb", "resource", "code"], registry=r)
        self.rate_limited = Counter("videojob_gateway_rate_limited", "Requests refused with 429: "
                                    "their credential was over its rate (ratelimit.py).",
                                    registry=r)
        self.watch_restarts = Counter("videojob_gateway_watch_restarts", "Watches started "
                                      "again, by resource and why (gone: relisted).",
                                      ["resource", "reason"], registry=r)

    def counted(self, cache: str, hit: bool) -> None:
        self.auth_cache.labels(cache, "hit" if hit else "miss").inc()

    def api_request(self, verb: str, resource: str, code: int) -> None:
        self.api_requests.labels(verb, resource, str(code)).inc()

    def restarted(self, resource: str, reason: str) -> None:
        self.watch_restarts.labels(resource, reason).inc()

    def watch_sizes(self, sizes: Callable[[], Iterable[tuple[str, int]]],
                    streams: Callable[[], int]) -> None:
        """Report the caches' sizes and open event streams when scraped."""
        self.registry.register(_Sizes(sizes, streams))


class _Sizes(Collector):
    def __init__(self, sizes: Callable[[], Iterable[tuple[str, int]]],
                 streams: Callable[[], int]) -> None:
        self._sizes = sizes
        self._streams = streams

    def collect(self) -> Iterable[GaugeMetricFamily]:
        cached = GaugeMetricFamily("videojob_gateway_cache_objects",
                                   "Objects in the cache, by kind.", labels=["kind"])
        for kind, n in self._sizes():
            cached.add_metric([kind], n)
        yield cached
        yield GaugeMetricFamily("videojob_gateway_event_streams",
                                "Open event streams (GET .../events).", value=self._streams())

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


class RequestMetrics:
    """ASGI middleware: counts each HTTP request by its route's template and its status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        code = 500
        method = scope["method"] if scope["method"] in METHODS else "other"

        async def sending(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
                route = _route(scope)
                self.metrics.latency.labels(route, method).observe(
                    time.perf_counter() - began)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.requests.labels(_route(scope), method, str(code)).inc()


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
