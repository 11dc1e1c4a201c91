"""History at a million rows: the archive's list queries and its writes, on a real PostgreSQL.

A PostgreSQL server of its own (tests/videojob_testkit/postgres.py, on 127.0.0.1, removed after)
with durable settings (fsync and synchronous commit on) and the few a database server of this size
is given: `SERVER` below. The archive's migrations make the schema; N synthetic rows (default
1,000,000) are loaded with COPY into the summary and detail tables, with the indexes in place,
and their label entries made as `Archive.upsert` makes them; then VACUUM ANALYZE (what
autovacuum does to a settled table).

The rows are synthetic but shaped like a real archive: a year of VideoJobs, busier lately; 60
namespaces of Zipf-like sizes (the largest near a fifth of the rows) with failure rates of 1 to
25 %; labels `env` (prod, staging, dev), `team` (a few per namespace), `user` (300, Zipf),
`app.kubernetes.io/part-of` on half, `campaign` on 60 %, each campaign a week long, and `model`,
the generator model, which changed twice in the year (gen-1 before 200 days ago, gen-2 until 60
days ago, gen-3 since): labels clustered in time, common or rare, the hard case for "newest
first, filtered" (a plan that walks the newest rows and filters finds old ones last). The detail
documents are those rows.row() builds from VideoJobs and pods (testkit.finished) of 1 to 32
scenes, some retried, some failed: 3 to 20 KB of JSON each.

Each round runs every query kind `--queries` times (default 200) through `Archive.list` (the
adapter and its pool, as the CLI will), after a warm-up pass; p50 and p99 per round, and the
median of the rounds as the figure:

- `history_list_*`: one namespace (chosen in proportion to its rows, as users are), one phase
  (Succeeded or Failed), newest first, 50 rows;
- `history_list_label_*`: the same with one label requirement `key=value`, the key one of the
  six at random and the value that of a random row of the namespace with that key (so both
  common values such as env=prod and rare ones such as a user or an old campaign);
- `history_deep_page_*`: the first query continued from a cursor 1,000 to 100,000 rows deep;
- `history_get_*`: `history NAME`, a random archived name;
- `history_every_namespace_label_*`: `-A`, one phase, one label of a random row;
- `history_list_label_p99_ms_by_key`: the label query's p99 for each label key;
- `archive_write_rows_per_s`: 1,000 VideoJobs finishing at once: their rows built from objects
  and pods, then one `upsert` of all of them (transactions of `--batch` rows) into the loaded
  archive; median of the rounds. `archive_row_build_ms` is the building, per row.

The load average before and after the queries is recorded: the machine may be shared.
`--explain` adds EXPLAIN (ANALYZE, BUFFERS) of each query kind (the largest namespace; common,
rare and old labels, two labels, failures, every namespace) to the result, for docs/history.md.
Results: bench/results/<timestamp>-archive.json (`archive_quick` for fewer rows than a million).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import queue
import random
import signal
import statistics
import string
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench.report import describe, percentile, save
from videojob_common.archive import queries
from videojob_common.archive.label_selector import Requirement, parse
from videojob_common.archive.rows import ArchiveRow, row
from videojob_common.archive.store import Archive, choose_driver
from videojob_common.pipeline import STAGES, Phase, Stage, StagePhase
from videojob_operator.status import Reason
from videojob_testkit import finished
from videojob_testkit.postgres import PostgresServer

# A database server for an archive of this size: durable (the defaults), with memory for the
# summary table's hot part and its indexes, SSD costs, and WAL room for the bulk load.
SERVER = {"shared_buffers": "512MB", "effective_cache_size": "4GB", "work_mem": "16MB",
          "maintenance_work_mem": "512MB", "random_page_cost": "1.1", "max_wal_size": "8GB",
          "checkpoint_timeout": "30min"}
NOW = dt.datetime(2026, 12, 6, 12, 0, 0, tzinfo=dt.UTC)
SPAN = dt.timedelta(days=365)
NAMESPACE_WORDS = ["studio", "ads", "brand", "social", "promo", "news", "sports", "kids",
                   "music", "docs", "labs", "edu", "travel", "food", "games"]
REASONS = [(Reason.RETRIES_EXHAUSTED, 40), (Reason.PERMANENT_ERROR, 20),
           (Reason.STAGE_TIMEOUT, 15), (Reason.UNSCHEDULABLE, 10), (Reason.TOTAL_TIMEOUT, 5),
           (Reason.INVALID_SPEC, 5), (Reason.STAGE_FAILED, 5)]
LABEL_KEYS = ("env", "team", "user", "campaign", "model", "app.kubernetes.io/part-of")
# The generator model a VideoJob used changes over the year: a label common in its day and
# absent from the newest rows, the case "newest first, filtered" finds hardest.
MODELS = ((dt.timedelta(days=200), "gen-1"), (dt.timedelta(days=60), "gen-2"),
          (dt.timedelta(0), "gen-3"))
SCENES = [1, 2, 3, 4, 4, 4, 4, 4, 6, 8, 8, 12, 16, 24, 32]
CHUNK = 20_000
MILLION = 1_000_000


@dataclass
class Namespace:
    name: str
    weight: float
    failure_rate: float
    teams: list[str]


@dataclass
class Sample:
    """What the queries pick from: a reservoir of the loaded rows and each namespace's size."""

    size: int = 5000
    rows: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)
    seen: int = 0
    per_namespace: Counter[str] = field(default_factory=Counter)
    per_phase: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, rng: random.Random, ns: str, name: str, phase: str,
            labels: dict[str, str]) -> None:
        self.seen += 1
        self.per_namespace[ns] += 1
        self.per_phase[ns, phase] += 1
        if len(self.rows) < self.size:
            self.rows.append((ns, name, phase, labels))
        elif (k := rng.randrange(self.seen)) < self.size:
            self.rows[k] = (ns, name, phase, labels)


def namespaces(rng: random.Random, n: int = 60) -> list[Namespace]:
    out = []
    for k in range(n):
        word = NAMESPACE_WORDS[k % len(NAMESPACE_WORDS)]
        name = f"{word}-{k // len(NAMESPACE_WORDS)}" if k >= len(NAMESPACE_WORDS) else word
        teams = [f"{word}-{t}" for t in ("core", "growth", "video", "ml", "ops", "design")[
            : rng.randint(1, 6)]]
        out.append(Namespace(name, 1 / (k + 1) ** 1.1, rng.choice([0.01, 0.03, 0.05, 0.08,
                                                                    0.12, 0.25]), teams))
    return out


def _cumulative(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def _zipf(n: int, s: float = 1.1) -> list[float]:
    """Cumulative Zipf weights of n choices, for rng.choices(cum_weights=...)."""
    return _cumulative([1 / (k + 1) ** s for k in range(n)])


def run_objects(rng: random.Random, *, uid: str, namespace: str, name: str,
                labels: dict[str, str], failed: bool,
                t0: dt.datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A VideoJob at its end and its stage pods: 1..32 scenes, 1 or 2 GPUs, a few retried
    scenes; a failed one stops in a random stage."""
    scenes, gpus = rng.choice(SCENES), rng.choice([1, 1, 1, 2])
    fail_at = rng.choice([Stage.KEYFRAMES, Stage.SEGMENTS, Stage.SEGMENTS, Stage.PUBLISH]) \
        if failed else None
    pods, stages, t = [], [], 5.0
    for stage in STAGES:
        start = t
        per_scene = stage == Stage.SEGMENTS
        count = scenes if per_scene else 1
        stage_gpus = gpus if stage in (Stage.KEYFRAMES, Stage.SEGMENTS) else 0
        attempts, end = 0, start
        for index in range(count):
            tries = 1 + (rng.random() < 0.05) + (stage == fail_at and index == 0) * 3
            at = start + rng.uniform(0, 5)
            for attempt in range(tries):
                length = rng.uniform(20, 240) if stage_gpus else rng.uniform(5, 40)
                last = attempt == tries - 1
                ok = not (stage == fail_at and index == 0) and (last or attempt > 0)
                pods.append(finished.pod(
                    f"{name}-{stage}-{index}-{attempt}", stage, start=at, finish=at + length,
                    gpus=stage_gpus, index=index, attempt=attempt,
                    exit_code=0 if ok else 1, uid=uid, videojob=name, namespace=namespace,
                    t0=t0))
                attempts += 1
                at += length + 10
            end = max(end, at)
        failed_here = stage == fail_at
        stages.append(finished.stage_status(
            stage, StagePhase.FAILED if failed_here else StagePhase.SUCCEEDED, start, end,
            attempts=attempts, videojob=name, t0=t0,
            **({"completed": scenes, "total": scenes} if per_scene else {})))
        t = end + 2
        if failed_here:
            break
    vj = finished.videojob(
        Phase.FAILED if failed else Phase.SUCCEEDED, stages=stages, uid=uid, name=name,
        namespace=namespace, labels=labels, scenes=scenes, gpus=gpus, finished=t, t0=t0,
        **({"reason": Reason.RETRIES_EXHAUSTED, "output": None, "outputURI": None,
            "message": f"{fail_at}: scene 0 failed 4 times"} if failed else {}))
    return vj, pods


PLACEHOLDER_UID = "00000000-0000-4000-8000-000000000000"
PLACEHOLDER_NAME = "placeholder-name"
PLACEHOLDER_NS = "placeholder-ns"


def detail_templates(rng: random.Random, n: int = 64) -> list[str]:
    """COPY lines (after the uid) of detail rows as rows.row() makes them, with placeholders for
    the uid, name and namespace; ~1/8 of them failed."""
    out = []
    for i in range(n):
        vj, pods = run_objects(rng, uid=PLACEHOLDER_UID, namespace=PLACEHOLDER_NS,
                               name=PLACEHOLDER_NAME, labels={}, failed=i % 8 == 0,
                               t0=NOW - dt.timedelta(days=1))
        built = row(vj, pods, NOW)
        values = queries.detail_values(PLACEHOLDER_UID, built.detail)[1:]
        line = "\t".join(_copy_text(v) for v in values)
        out.append(line)
    return out


def _copy_text(value: Any) -> str:
    """A value in COPY's text format (\\N: NULL); the generated values hold no tab, newline or
    backslash, which would need escaping."""
    if value is None:
        return "\\N"
    text = value.isoformat() if isinstance(value, dt.datetime) else str(value)
    if any(c in text for c in "\t\n\\"):
        raise ValueError(f"value needs COPY escaping: {text[:80]!r}")
    return text


def generate(rng: random.Random, rows: int, sample: Sample) -> Iterator[tuple[str, str]]:
    """(summary COPY line, detail COPY line) per row, oldest first (an archive grows at its end:
    the indexes see appends, as in production)."""
    spaces = namespaces(rng)
    space_weights = _cumulative([ns.weight for ns in spaces])
    team_weights = {ns.name: _zipf(len(ns.teams)) for ns in spaces}
    user_weights = _zipf(300)
    templates = detail_templates(rng)
    users = [f"u{k:03d}" for k in range(300)]
    alphabet = string.ascii_lowercase + string.digits
    # Busier lately: the density of finish times grows linearly over the year.
    offsets = sorted(SPAN.total_seconds() * (1 - rng.random() ** 0.5) for _ in range(rows))
    for offset in reversed(offsets):
        ns = rng.choices(spaces, cum_weights=space_weights)[0]
        finished_at = (NOW - dt.timedelta(seconds=offset)).replace(microsecond=0)
        week = int((NOW - finished_at).days // 7)
        labels = {"env": rng.choices(["prod", "staging", "dev"], [70, 22, 8])[0],
                  "team": rng.choices(ns.teams, cum_weights=team_weights[ns.name])[0],
                  "user": rng.choices(users, cum_weights=user_weights)[0]}
        if rng.random() < 0.6:
            labels["campaign"] = f"w{week}-{rng.randrange(5)}"
        labels["model"] = next(m for age, m in MODELS if NOW - finished_at >= age)
        if rng.random() < 0.5:
            labels["app.kubernetes.io/part-of"] = "videojob-studio"
        failed = rng.random() < ns.failure_rate
        phase = Phase.FAILED if failed else Phase.SUCCEEDED
        name = f"{labels.get('campaign', 'clip')}-{''.join(rng.choices(alphabet, k=6))}"
        uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        run = dt.timedelta(seconds=rng.lognormvariate(6.3, 0.7))
        wait = dt.timedelta(seconds=rng.expovariate(1 / 120))
        started = finished_at - run
        created = started - wait
        reason = rng.choices([r for r, _ in REASONS], [w for _, w in REASONS])[0] \
            if failed else None
        stage = rng.choice(["keyframes", "segments", "segments", "publish"]) if failed else None
        gpu = round(run.total_seconds() * rng.uniform(0.5, 6), 1)
        uri = None if failed else \
            f"gs://videojob-prod/videojob/{ns.name}/{name}/{uid}/output.mp4"
        size = None if failed else int(rng.lognormvariate(16.5, 0.8))
        sample.add(rng, ns.name, name, phase, labels)
        summary = "\t".join(_copy_text(v) for v in (
            uid, created, started, finished_at, gpu, size, ns.name, name, phase, reason, stage,
            uri, json.dumps(labels)))
        detail = rng.choice(templates).replace(PLACEHOLDER_UID, uid).replace(
            PLACEHOLDER_NAME, name).replace(PLACEHOLDER_NS, ns.name)
        yield summary, f"{uid}\t{detail}"


SUMMARY_COPY = ("uid", "created_at", "started_at", "finished_at", "gpu_seconds", "output_bytes",
                "namespace", "name", "phase", "reason", "failed_stage", "output_uri", "labels")


def load(dsn: str, rng: random.Random, rows: int, sample: Sample) -> dict[str, Any]:
    """COPY of `rows` rows into both tables, in transactions of CHUNK rows; a thread makes the
    next chunk while the server takes one (Python on one core, PostgreSQL on the other)."""
    started = time.monotonic()
    summary_sql = f"COPY {queries.SUMMARY} ({', '.join(SUMMARY_COPY)}) FROM STDIN"
    detail_sql = f"COPY {queries.DETAIL} (uid, {', '.join(queries.DETAIL_COLUMNS)}) FROM STDIN"
    chunks: queue.Queue[tuple[str, str, list[str]] | None] = queue.Queue(maxsize=2)
    stopped = threading.Event()  # the load failed or was interrupted: stop making chunks

    def produce() -> None:
        lines = generate(rng, rows, sample)
        for _ in range(0, rows, CHUNK):
            part = list(itertools.islice(lines, CHUNK))
            chunk = ("".join(f"{s}\n" for s, _ in part), "".join(f"{d}\n" for _, d in part),
                     [s[:36] for s, _ in part])
            while not stopped.is_set():
                try:
                    chunks.put(chunk, timeout=1)
                    break
                except queue.Full:
                    continue
            if stopped.is_set():
                return
        chunks.put(None)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    with psycopg.connect(dsn, autocommit=True) as conn, _stopping(stopped):
        loaded = 0
        while (chunk := chunks.get()) is not None:
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(summary_sql) as copy:
                    copy.write(chunk[0])
                with cur.copy(detail_sql) as copy:
                    copy.write(chunk[1])
                cur.execute(queries.INSERT_LABELS, (chunk[2],))  # as Archive.upsert does
            loaded += len(chunk[2])
            if loaded % 200_000 == 0 or loaded == rows:
                print(f"loaded {loaded:,} rows in {time.monotonic() - started:.0f} s",
                      file=sys.stderr, flush=True)
        producer.join()
        load_s = time.monotonic() - started
        tables = (queries.SUMMARY, queries.DETAIL, queries.LABELS)
        for table in tables:
            conn.execute(f"VACUUM (ANALYZE) {table}")
        conn.execute("CHECKPOINT")
        sizes = dict(conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
            " WHERE c.relname = ANY(%s)", (list(tables),)).fetchall())
        indexes = dict(conn.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index"
            " WHERE indrelid = ANY(%s::regclass[])",
            ([queries.SUMMARY, queries.LABELS],)).fetchall())
        heap = conn.execute("SELECT pg_relation_size(%s::regclass)",
                            (queries.SUMMARY,)).fetchone()
    mb = 1 / 2**20
    return {"load_s": round(load_s, 1), "load_rows_per_s": round(rows / load_s),
            "vacuum_analyze_s": round(time.monotonic() - started - load_s, 1),
            "summary_heap_mb": round((heap[0] if heap else 0) * mb),
            "summary_total_mb": round(sizes.get(queries.SUMMARY, 0) * mb),
            "detail_total_mb": round(sizes.get(queries.DETAIL, 0) * mb),
            "label_total_mb": round(sizes.get(queries.LABELS, 0) * mb),
            "index_mb": {k: round(v * mb, 1) for k, v in indexes.items()}}


@contextlib.contextmanager
def _stopping(event: threading.Event) -> Iterator[None]:
    """Sets `event` however the block ends."""
    try:
        yield
    finally:
        event.set()


@dataclass
class Kind:
    name: str
    run: Callable[[], object]


def query_kinds(archive: Archive, dsn: str, sample: Sample,
                rng: random.Random) -> tuple[list[Kind], dict[str, list[float]]]:
    """The kinds of query, each drawing its parameters anew per run; and for the label query,
    its times by label key (filled as it runs)."""
    names = list(sample.per_namespace)
    weights = [sample.per_namespace[n] for n in names]
    by_ns: dict[str, list[tuple[str, str, str, dict[str, str]]]] = {}
    for r in sample.rows:
        by_ns.setdefault(r[0], []).append(r)
    by_key: dict[str, list[float]] = {k: [] for k in LABEL_KEYS}

    def pick() -> tuple[str, str]:
        ns = rng.choices(names, weights)[0]
        phase = rng.choice([Phase.SUCCEEDED, Phase.FAILED])
        return ns, phase

    def plain() -> object:
        ns, phase = pick()
        return archive.list(ns, phase=phase, limit=50)

    def labelled() -> object:
        ns, phase = pick()
        key = rng.choice(LABEL_KEYS)
        having = [r[3][key] for r in by_ns.get(ns, []) if key in r[3]] or ["none"]
        value = rng.choice(having)
        started = time.perf_counter()
        out = archive.list(ns, phase=phase, label_selector=f"{key}={value}", limit=50)
        by_key[key].append((time.perf_counter() - started) * 1000)
        return out

    # Deep cursors: rows 1,000 to 100,000 down a (namespace, phase) list, found beforehand, in
    # the lists long enough (in a quick run, the largest there is).
    deep: list[tuple[str, str, str]] = []
    long_lists = [key for key, n in sample.per_phase.items() if n >= 2000] or [
        sample.per_phase.most_common(1)[0][0]]
    long_weights = [sample.per_phase[key] for key in long_lists]
    with psycopg.connect(dsn) as conn:
        while len(deep) < 100:
            ns, phase = rng.choices(long_lists, long_weights)[0]
            size = sample.per_phase[ns, phase]
            depth = rng.randint(min(1000, size // 2), max(min(100_000, size - 100), size // 2))
            found = conn.execute(
                f"SELECT finished_at, uid::text FROM {queries.SUMMARY} WHERE namespace = %s"
                " AND phase = %s ORDER BY finished_at DESC, uid DESC OFFSET %s LIMIT 1",
                (ns, phase, depth)).fetchone()
            if found:
                deep.append((ns, phase, queries.Cursor(found[0], found[1]).encode()))

    def every_namespace_labelled() -> object:
        _, phase = pick()
        labels = rng.choice(sample.rows)[3]
        key, value = rng.choice(sorted(labels.items()))
        return archive.list(None, phase=phase, label_selector=f"{key}={value}", limit=50)

    def deep_page() -> object:
        ns, phase, cursor = rng.choice(deep)
        return archive.list(ns, phase=phase, limit=50, after=cursor)

    def get() -> object:
        ns, name, _, _ = rng.choice(sample.rows)
        found = archive.get(ns, name)
        assert found is not None, (ns, name)
        return found

    return [Kind("history_list", plain), Kind("history_list_label", labelled),
            Kind("history_deep_page", deep_page), Kind("history_get", get),
            Kind("history_every_namespace_label", every_namespace_labelled)], by_key


def timed(kind: Kind, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        kind.run()
        out.append((time.perf_counter() - started) * 1000)
    return out


def write_round(archive: Archive, rng: random.Random, n: int, batch: int) -> tuple[float, float]:
    """(rows per second of the upsert, ms per row to build the rows) for n VideoJobs that
    finish now."""
    objects = [run_objects(rng, uid=str(uuid.uuid4()), namespace="burst",
                           name=f"burst-{i:04d}-{rng.randrange(10**6)}",
                           labels={"env": "prod", "team": "burst-core"},
                           failed=rng.random() < 0.08, t0=NOW) for i in range(n)]
    started = time.perf_counter()
    built: list[ArchiveRow] = [row(vj, pods, NOW + dt.timedelta(hours=2))
                               for vj, pods in objects]
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    archive.upsert(built, batch=batch)
    write_s = time.perf_counter() - started
    return n / write_s, build_s * 1000 / n


def explain(archive: Archive, sample: Sample) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of each query kind in the largest namespace, on one of the
    archive's own connections (its session settings) with the label it would read by."""
    ns = sample.per_namespace.most_common(1)[0][0]
    labels = Counter((k, v) for r in sample.rows if r[0] == ns for k, v in r[3].items())
    common = labels.most_common(1)[0][0]
    rare = min((kv for kv in labels if kv[0] == "user"), key=lambda kv: labels[kv])
    name = next(r[1] for r in sample.rows if r[0] == ns)
    old = MODELS[0][1]
    plans: dict[str, str] = {}
    with archive.pool.connection() as conn:
        depth = min(50_000, sample.per_phase[ns, Phase.SUCCEEDED] // 2)
        found = conn.execute(
            f"SELECT finished_at, uid::text FROM {queries.SUMMARY} WHERE namespace = %s"
            " AND phase = %s ORDER BY finished_at DESC, uid DESC OFFSET %s LIMIT 1",
            (ns, Phase.SUCCEEDED, depth)).fetchone()
        assert found is not None
        cases = {
            f"-n {ns} --phase Failed": queries.ListQuery(ns, Phase.FAILED),
            f"-n {ns}": queries.ListQuery(ns),
            f"-n {ns} --phase Succeeded -l {common[0]}={common[1]} (a common label)":
                queries.ListQuery(ns, Phase.SUCCEEDED, labels=_req(common)),
            f"-n {ns} --phase Succeeded -l {rare[0]}={rare[1]} (a rare label)":
                queries.ListQuery(ns, Phase.SUCCEEDED, labels=_req(rare)),
            f"-n {ns} --phase Succeeded -l model={old} (a label only old rows have)":
                queries.ListQuery(ns, Phase.SUCCEEDED, labels=_req(("model", old))),
            f"-n {ns} --phase Succeeded -l {common[0]}={common[1]},model={old} (two labels)":
                queries.ListQuery(ns, Phase.SUCCEEDED,
                                  labels=parse(f"{common[0]}={common[1]},model={old}")),
            f"-n {ns} --phase Succeeded, the page after row {depth:,}": queries.ListQuery(
                ns, Phase.SUCCEEDED, after=queries.Cursor(found[0], found[1])),
            f"-n {ns} --phase Failed -l model={old} (failures' entries)": queries.ListQuery(
                ns, Phase.FAILED, labels=_req(("model", old))),
            f"-A --phase Succeeded -l model={old} (every namespace)": queries.ListQuery(
                None, Phase.SUCCEEDED, labels=_req(("model", old))),
            f"-A --phase Failed -l model={old} (every namespace, failures' entries)":
                queries.ListQuery(None, Phase.FAILED, labels=_req(("model", old))),
        }
        for title, q in cases.items():
            s = queries.list_statement(q, choose_driver(conn, q))
            lines = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + s.sql, s.params).fetchall()
            plans[title] = "\n".join(str(line[0]) for line in lines)
        s = queries.get_statement(ns, name)
        lines = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + s.sql, s.params).fetchall()
        plans[f"{ns}/{name} (history NAME)"] = "\n".join(str(line[0]) for line in lines)
    return plans


def _req(kv: tuple[str, str]) -> tuple[Requirement, ...]:
    return parse(f"{kv[0]}={kv[1]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=MILLION,
                        help=f"rows loaded (default {MILLION:,}; fewer: results in "
                        "<timestamp>-archive_quick.json, not taken by bench/summary.py)")
    parser.add_argument("--queries", type=int, default=200, help="per kind and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writes", type=int, default=1000, help="VideoJobs finishing at once")
    parser.add_argument("--batch", type=int, default=500, help="rows per write transaction")
    parser.add_argument("--explain", action="store_true", help="add the query plans")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    # SIGTERM (a timeout, a CI job cancelled) unwinds like Ctrl-C, so the server is stopped and
    # its folder removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rng = random.Random(args.seed)
    server = PostgresServer(settings=SERVER)
    server.start()
    try:
        dsn = server.create_database("archive")
        with Archive(dsn, max_size=2) as archive:
            archive.migrate()
            sample = Sample()
            results: dict[str, Any] = {"machine": describe(), "rows": args.rows,
                                       "server_settings": SERVER}
            results |= load(dsn, rng, args.rows, sample)
            kinds, by_key = query_kinds(archive, dsn, sample, rng)
            for kind in kinds:  # warm-up, not counted
                timed(kind, 50)
            for values in by_key.values():
                values.clear()
            # The machine may be shared: its load around the measured part, as context.
            results["load_average_before"] = round(os.getloadavg()[0], 2)
            rounds: dict[str, list[tuple[float, float]]] = {k.name: [] for k in kinds}
            writes: list[tuple[float, float]] = []
            for r in range(args.rounds):
                for kind in kinds:
                    times = timed(kind, args.queries)
                    rounds[kind.name].append((percentile(times, 50), percentile(times, 99)))
                writes.append(write_round(archive, rng, args.writes, args.batch))
                print(f"round {r + 1}: " + ", ".join(
                    f"{k} p99 {v[-1][1]:.1f} ms" for k, v in rounds.items())
                    + f", writes {writes[-1][0]:.0f} rows/s", file=sys.stderr, flush=True)
            results["load_average_after"] = round(os.getloadavg()[0], 2)
            for name, per_round in rounds.items():
                results[f"{name}_p50_ms"] = round(statistics.median(p[0] for p in per_round), 2)
                results[f"{name}_p99_ms"] = round(statistics.median(p[1] for p in per_round), 2)
                results[f"{name}_p99_ms_by_round"] = [round(p[1], 2) for p in per_round]
            results["history_list_label_p99_ms_by_key"] = {
                k: round(percentile(v, 99), 2) for k, v in by_key.items() if v}
            results["queries_per_kind_per_round"] = args.queries
            results["archive_write_rows_per_s"] = round(statistics.median(w[0] for w in writes))
            results["archive_write_rows_per_s_by_round"] = [round(w[0]) for w in writes]
            results["archive_write_batch"] = args.batch
            results["archive_row_build_ms"] = round(statistics.median(w[1] for w in writes), 3)
            started = time.perf_counter()
            results["estimate_largest_namespace"] = archive.estimate(
                sample.per_namespace.most_common(1)[0][0])
            results["estimate_ms"] = round((time.perf_counter() - started) * 1000, 2)
            results["rows_largest_namespace"] = sample.per_namespace.most_common(1)[0][1]
            if args.explain:
                results["explain"] = explain(archive, sample)
    finally:
        server.stop()
    # A run on fewer rows than the figures are defined at is kept apart, so that bench/summary.py
    # never takes it for the archive's figures.
    save("archive" if args.rows >= MILLION else "archive_quick", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
