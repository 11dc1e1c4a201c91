"""Scale: thousands of VideoJobs existing at once.

N VideoJobs (default 2,000) are created in one burst on a testbed cluster (testbed.py) and run
through pools of a realistic width (most of them wait as Queued: that is the point), with
stages that do no work (the scripted worker with no directives), until a first batch of them
(default 200) has succeeded; all N exist throughout. Running every one of them to the end would
take the node half an hour of pod starts and tell nothing more about the operator. The operator
process's resident memory and CPU time are sampled from /proc twice a second.

- `operator_rss_mb_<N>`: the peak RSS; `operator_rss_mb_<N>_idle` the RSS before the burst;
- `operator_cpu_share_median`: the operator's CPU (1.0 = one core) while the N existed;
- `requests_per_videojob_<N>` by verb (and resource, testbed.py): the API server's own count of
  the operator's requests over the window, / N. Writes per VideoJob over whole lives are
  measured by bench/orchestration.py; this shows what thousands of waiting VideoJobs cost.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.report import describe, save
from bench.testbed import (
    GROUP,
    NO_WORK,
    PLURAL,
    VERSION,
    Stream,
    testbed,
    wait_until,
    write_figures,
)
from videojob_common.pipeline import Phase

TICKS = os.sysconf("SC_CLK_TCK")


def sample(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds so far) of a process, from /proc."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / TICKS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videojobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32, help="each pool's maxConcurrency")
    parser.add_argument("--until", type=int, default=200,
                        help="stop once this many VideoJobs have succeeded")
    args = parser.parse_args()
    n = args.videojobs
    with testbed("scale", pods=4 * args.concurrency + 100, gpus=4 * args.concurrency) as bed:
        op = bed.operator({"gpu": {"maxConcurrency": args.concurrency},
                           "cpu": {"maxConcurrency": args.concurrency}})
        op.start()
        assert op.proc is not None
        pid = op.proc.pid
        ns = bed.namespace("scale")
        succeeded: set[str] = set()
        failed: set[str] = set()
        existing = 0

        def on_videojob(kind: str, obj: dict[str, Any], _: float) -> None:
            nonlocal existing
            existing += 1 if kind == "ADDED" else 0
            phase = (obj.get("status") or {}).get("phase")
            if phase == Phase.SUCCEEDED:
                succeeded.add(obj["metadata"]["name"])
            elif phase == Phase.FAILED:
                failed.add(obj["metadata"]["name"])

        stream = Stream(lambda namespace, **kw: bed.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, **kw), ns, on_videojob)
        idle_rss, cpu_before = sample(pid)
        samples: list[tuple[float, float, float, int]] = []  # (t, rss, cpu, VideoJobs left)
        stop = threading.Event()

        def sampler() -> None:
            while not stop.is_set():
                rss, cpu = sample(pid)
                samples.append((time.monotonic(), rss, cpu, existing - len(succeeded)))
                stop.wait(0.5)

        threading.Thread(target=sampler, daemon=True).start()
        before = bed.requests()
        began = time.monotonic()
        bed.create_videojobs(ns, [f"vj{i:05d}" for i in range(n)], NO_WORK)
        created_s = time.monotonic() - began
        until = min(args.until, n)
        wait_until(lambda: len(succeeded) + len(failed) >= until, 600 + 2 * n,
                   f"{until} VideoJobs finished")
        elapsed = time.monotonic() - began
        after = bed.requests()
        stop.set()
        _, cpu_after = sample(pid)
        stream.stop()
    if failed:
        print(f"{len(failed)} VideoJobs failed", file=sys.stderr)
        return 1
    shares = [(c2 - c1) / (t2 - t1) for (t1, _, c1, _), (t2, _, c2, left) in
              itertools.pairwise(samples) if left > 0 and t2 > t1]
    per_vj = {verb: round((after[verb] - before.get(verb, 0)) / n, 2) for verb in after}
    print(f"first {len(succeeded)} of {n} VideoJobs succeeded in {elapsed:.0f} s")
    results = {
        "machine": describe(),
        "videojobs": n,
        "pool_concurrency": args.concurrency,
        "create_burst_s": round(created_s, 1),
        "window_s": round(elapsed, 1),
        "succeeded_in_window": len(succeeded),
        f"operator_rss_mb_{n}": round(max(s[1] for s in samples), 1),
        f"operator_rss_mb_{n}_idle": round(idle_rss, 1),
        "operator_cpu_s_per_videojob": round((cpu_after - cpu_before) / n, 4),
        "operator_cpu_share_median": round(statistics.median(shares), 3) if shares else None,
        f"requests_per_videojob_{n}": per_vj,
        **{f"{k}_{n}_window": v for k, v in write_figures(per_vj).items()},
    }
    save("scale", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
