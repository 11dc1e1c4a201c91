"""The operator's hand-off with the archive on against off, in one run.

The archive's writes are off the reconcile path (operator/videojob_operator/archiver.py): rows
go to PostgreSQL on a thread of their own and the annotation after; the planner only asks. This
checks that a reconcile does not pay for it. The same testbed (bench/testbed.py) runs the
operator over VideoJobs whose stages do no work, arriving one every 1/rate seconds over
`--window` seconds (as bench/handoff.py at its headline rate), alternately with the archive off
and on (a real PostgreSQL on 127.0.0.1, videojob_testkit.postgres), `--repeats` times each.

- `archive_on_handoff_p50_ms`, `archive_off_handoff_p50_ms`: hand-off p50 (a Job seen Complete
  -> the next stage's Job seen created, through one watch), all hand-offs of the runs of each
  kind; `archive_handoff_p50_ratio`: on / off. p99 beside them.
- `archive_rows_per_run`: rows the runs with the archive on left in the database (each
  VideoJob once: the check that it was on).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

import psycopg

from bench.orchestration import Run, run_operator
from bench.report import describe, percentile, save
from bench.testbed import testbed
from videojob_testkit.postgres import PostgresServer


def figures(runs: list[Run]) -> dict[str, Any]:
    hand = [ms for r in runs for ms in r.handoffs_ms]
    return {"handoffs": len(hand), "p50_ms": round(statistics.median(hand), 1),
            "p99_ms": round(percentile(hand, 99), 1),
            "run_p50s_ms": [round(statistics.median(r.handoffs_ms), 1) for r in runs],
            "operator_cpu_s": [round(r.cpu.get("operator", 0.0), 2) for r in runs]}


def paired_arguments(description: str | None) -> tuple[argparse.Namespace, int]:
    """The command line of a benchmark that pairs runs with a feature off and on at a steady
    rate (this one, bench/cache_handoff.py), and the VideoJobs per run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rate", type=float, default=1.0, help="VideoJobs per second")
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    return args, max(10, round(args.rate * args.window))


def main() -> int:
    args, n = paired_arguments(__doc__)
    runs: dict[str, list[Run]] = {"off": [], "on": []}
    rows: list[int] = []
    server = PostgresServer()
    server.start()
    try:
        dsn = server.create_database("archive")
        with testbed("archive_handoff", pods=4 * n + 100, gpus=4 * n) as bed:
            run_operator(bed, 10, 1 / args.rate)  # unmeasured: warms the caches
            for i in range(args.repeats):
                for kind in (("off", "on") if i % 2 == 0 else ("on", "off")):
                    env = {"VIDEOJOB_ARCHIVE_DSN": dsn} if kind == "on" else None
                    before = _rows(dsn)
                    run = run_operator(bed, n, 1 / args.rate, env=env)
                    if kind == "on":
                        rows.append(_rows(dsn) - before)
                    print(f"archive {kind}: {len(run.handoffs_ms)} hand-offs, p50 "
                          f"{statistics.median(run.handoffs_ms):.0f} ms", flush=True)
                    runs[kind].append(run)
    finally:
        server.stop()
    on, off = figures(runs["on"]), figures(runs["off"])
    results = {
        "machine": describe(), "rate_per_s": args.rate, "videojobs_per_run": n,
        "repeats": args.repeats,
        "archive_on_handoff_p50_ms": on["p50_ms"], "archive_off_handoff_p50_ms": off["p50_ms"],
        "archive_handoff_p50_ratio": round(on["p50_ms"] / off["p50_ms"], 2),
        "archive_on_handoff_p99_ms": on["p99_ms"], "archive_off_handoff_p99_ms": off["p99_ms"],
        "archive_rows_per_run": rows, "on": on, "off": off,
    }
    save("archive_handoff", results)
    return 0


def _rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        exists = conn.execute("SELECT to_regclass('videojob_archive')").fetchone()
        if exists is None or exists[0] is None:
            return 0
        record = conn.execute("SELECT count(*) FROM videojob_archive").fetchone()
    return int(record[0]) if record else 0


if __name__ == "__main__":
    sys.exit(main())
