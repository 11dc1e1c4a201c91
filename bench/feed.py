"""The API server's feed from etcd, sampled beside a benchmark: how far its watch cache is behind.

Every watcher of a resource (the operator, the Job controller, a benchmark's own watch) is fed
from the API server's watch cache of it, which one etcd watch per resource fills. When the cache
falls behind etcd, every watcher waits, whoever wrote. This runs as a process of its own beside
a benchmark (it needs nothing from it but the cluster's kubeconfig and etcd's address):

    python -m bench.feed --kubeconfig .cluster/bench/orchestration/cluster/kubeconfig \\
        --etcd http://127.0.0.1:23379 --out /tmp/feed.json

Every `--period` seconds it reads, for each resource in RESOURCES:

- `read_wait_ms`: how long a consistent read of one object takes (`?limit=1`, no
  resourceVersion). The API server serves it from its watch cache once the cache has caught up
  with etcd's revision at the time of the request (ConsistentListFromCache; an idle resource's
  cache is moved on by etcd's progress notifications). So this is how far behind the cache is
  as a reader who wrote a moment ago meets it, the wait every watcher of the resource has too;
- `lag_revisions`: etcd's current revision minus the cache's
  (`apiserver_watch_cache_resource_version`). Only a hint: an unwritten resource's cache stays at
  its last write while etcd's revision moves on with every other resource's writes;
- `terminated_watchers`: `apiserver_terminated_watchers_total`, watchers the cache closed for
  not keeping up;
- `slow_watchers`, `pending_events`: etcd's watchers that fell behind its commits (the API
  server's own watches are etcd's only watchers here) and the events owed to them.

It waits for the cluster to come up and keeps sampling across its restarts (a benchmark that
brings up a fresh cluster resets etcd's revision; samples are grouped in `segments`, one per
cluster), until --seconds pass or it is interrupted. The output: per segment, every sample and
the read waits and lags of each resource.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config

# (group, version, resource): the caches every hand-off waits on.
RESOURCES = (("batch", "v1", "jobs"), ("", "v1", "pods"), ("videojob.dev", "v1alpha1", "videojobs"))
CACHE_RV = "apiserver_watch_cache_resource_version"
TERMINATED = "apiserver_terminated_watchers_total"
ETCD_REVISION = "etcd_debugging_mvcc_current_revision"
SLOW_WATCHERS = "etcd_debugging_mvcc_slow_watcher_total"
PENDING_EVENTS = "etcd_debugging_mvcc_pending_events_total"


def labels(line: str) -> dict[str, str]:
    """The labels of one Prometheus text line: `name{a="x",b="y"} 1` -> {"a": "x", "b": "y"}."""
    inside = line[line.index("{") + 1:line.rindex("}")]
    out: dict[str, str] = {}
    for part in inside.split('",'):
        if "=" in part:
            key, value = part.split("=", 1)
            out[key.strip()] = value.strip().strip('"')
    return out


def read_apiserver(text: str) -> dict[str, float]:
    """The cache's revision by `group/resource`, and the count of terminated watchers."""
    wanted = {f"{g}/{r}" for g, _, r in RESOURCES}
    out: dict[str, float] = {"terminated_watchers": 0.0}
    for line in text.splitlines():
        if line.startswith(CACHE_RV + "{"):
            found = labels(line)
            key = f"{found.get('group', '')}/{found.get('resource', '')}"
            if key in wanted:
                out[key] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(TERMINATED):
            out["terminated_watchers"] += float(line.rsplit(" ", 1)[1])
    return out


def read_etcd(text: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(ETCD_REVISION + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def read_etcd_watchers(text: str) -> dict[str, float]:
    """etcd's watchers that fell behind (`slow_watchers`: those it must catch up from its
    store, a batch at a time, instead of sending events as they commit) and the events waiting
    for them."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        for name, key in ((SLOW_WATCHERS, "slow_watchers"), (PENDING_EVENTS, "pending_events")):
            if line.startswith(name + " "):
                out[key] = float(line.rsplit(" ", 1)[1])
    return out


@dataclass
class Segment:
    """The samples of one cluster's life (etcd's revision only grows within one)."""

    started: float
    samples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, t: float, etcd_rev: float, cache: dict[str, float]) -> None:
        sample: dict[str, Any] = {"t": round(t, 2), "etcd": etcd_rev, **{
            k: cache[k] for k in ("terminated_watchers", "slow_watchers", "pending_events")
            if k in cache}}
        for g, _, r in RESOURCES:
            key = f"{g}/{r}"
            if key in cache:
                wait = cache.get(f"read_wait/{key}")
                sample[key] = {"lag_revisions": etcd_rev - cache[key],
                               "read_wait_ms": None if wait is None else round(1000 * wait, 1)}
        self.samples.append(sample)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"started": round(self.started, 2), "samples": len(self.samples)}
        for g, _, r in RESOURCES:
            key = f"{g}/{r}"
            waits = [s[key]["read_wait_ms"] for s in self.samples
                     if key in s and s[key]["read_wait_ms"] is not None]
            if waits:
                out[f"{key} read_wait_ms p50"] = statistics.median(waits)
                out[f"{key} read_wait_ms max"] = max(waits)
                out[f"{key} reads over 1 s"] = sum(1 for w in waits if w > 1000)
        if self.samples:
            out["terminated_watchers"] = max(s.get("terminated_watchers", 0.0)
                                             for s in self.samples)  # a counter
            out["etcd max slow_watchers"] = max(s.get("slow_watchers", 0.0)
                                                for s in self.samples)
        return out


def apiserver(kubeconfig: Path) -> tuple[urllib3.PoolManager, str]:
    """A connection pool to the API server as the kubeconfig's user, and its address."""
    settings = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=settings)
    pool = urllib3.PoolManager(cert_file=settings.cert_file, key_file=settings.key_file,
                               ca_certs=settings.ssl_ca_cert, retries=False,
                               timeout=urllib3.Timeout(total=10))
    return pool, settings.host


def read_waits(api: tuple[urllib3.PoolManager, str]) -> dict[str, float]:
    """Seconds a consistent read of one object of each resource takes (`read_wait/<resource>`).
    The API server serves it from its watch cache once the cache has caught up with etcd's
    revision at the time of the request (ConsistentListFromCache; an idle resource's cache is
    moved on by etcd's progress notifications), so this is how far behind the cache is, as a
    reader who wrote a moment ago meets it."""
    pool, host = api
    out: dict[str, float] = {}
    for group, version, resource in RESOURCES:
        path = f"/apis/{group}/{version}/{resource}" if group else f"/api/{version}/{resource}"
        started = time.perf_counter()
        response = pool.request("GET", f"{host}{path}?limit=1")
        if response.status == 200:
            out[f"read_wait/{group}/{resource}"] = time.perf_counter() - started
    return out


def sample_forever(kubeconfig: Path, etcd: str, period: float, seconds: float,
                   out: Path) -> None:
    segments: list[Segment] = []
    http = urllib3.PoolManager(timeout=urllib3.Timeout(total=5), retries=False)
    api: tuple[urllib3.PoolManager, str] | None = None
    last_rev = -1.0
    deadline = time.monotonic() + seconds
    stop = False

    def interrupted(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    while not stop and time.monotonic() < deadline:
        started = time.time()
        try:
            # The API server first: read after it, etcd is at least where the cache was.
            if api is None:
                api = apiserver(kubeconfig)
            cache = read_apiserver(api[0].request("GET", f"{api[1]}/metrics").data.decode())
            cache.update(read_waits(api))
            etcd_text = http.request("GET", f"{etcd}/metrics").data.decode()
            etcd_rev = read_etcd(etcd_text)
            cache.update(read_etcd_watchers(etcd_text))
        except Exception:  # the cluster is not up (yet, or any more): wait for it
            api = None
            time.sleep(period)
            continue
        if etcd_rev is None:
            time.sleep(period)
            continue
        if etcd_rev < last_rev or not segments:
            segments.append(Segment(started=started))
        last_rev = etcd_rev
        segments[-1].add(started, etcd_rev, cache)
        out.write_text(json.dumps({"period_s": period, "segments": [
            {**s.summary(), "timeline": s.samples} for s in segments]}) + "\n")
        time.sleep(max(0.0, period - (time.time() - started)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--etcd", required=True, help="etcd's client URL (serves /metrics)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--period", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=4 * 3600)
    args = parser.parse_args()
    sample_forever(args.kubeconfig, args.etcd, args.period, args.seconds, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
