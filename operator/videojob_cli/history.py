"""`history [NAME|UID]`: finished VideoJobs from the PostgreSQL archive (docs/history.md), those
deleted from the cluster included: a table of one page, newest first, or one run with its
stages, pods and GPU-seconds.

It reads the archive directly and needs no cluster at all (the kubeconfig is read only for the
context's namespace, when `-n` is not given). So it is an **administrator's** command: the DSN
is a database credential that reads every namespace's history, and no Kubernetes RBAC stands
between it and the rows. Tenants read their own namespaces' history through the gateway
(`GET /api/v1/namespaces/{ns}/history`), which asks RBAC for each caller.

Where the DSN comes from: `--dsn`, else `$VIDEOJOB_ARCHIVE_DSN`, else the file that
`make operator-up` writes (`$LOCALCLUSTER_ROOT/archive/dsn`, `./.cluster/archive/dsn` when
LOCALCLUSTER_ROOT is not set, as the Makefile's default).

Pages are keyset pages (the next page's token is printed on stderr); the total shown is the
planner's estimate, marked `~`, never a count. The rendering functions are pure
(tests/cli/test_history.py); `run` only connects, queries and prints.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from videojob_common.archive import documents
from videojob_common.archive.filters import FilterError, Filters, list_query
from videojob_common.archive.queries import ListQuery
from videojob_common.archive.rows import ArchiveRow, PodRecord, Summary

from .cluster import context_namespace, kubeconfig_files
from .errors import CommandError
from .flags import KubeFlags
from .render import ABSENT, columns, human_duration, one_line

if TYPE_CHECKING:
    from videojob_common.archive.store import Archive

DSN_ENV = "VIDEOJOB_ARCHIVE_DSN"
# Seconds any one query may run: a page is milliseconds (docs/history.md, "Figures"); one that
# is not should end with an error, not hold a connection of a busy database.
STATEMENT_TIMEOUT = 30.0
LOCAL_DSN = Path("archive") / "dsn"  # under the local cluster's root (make operator-up)
# The flag each filter is given by, for messages (FilterError names the filter generically).
FLAGS = {"phase": "--phase", "since": "--since", "selector": "-l/--selector",
         "limit": "--limit", "continue": "--continue"}
COLUMNS = ["NAME", "PHASE", "REASON", "GPU-SECONDS", "DURATION", "FINISHED"]
WIDE_COLUMNS = [*COLUMNS, "FAILED-STAGE", "OUTPUT", "SIZE", "UID", "LABELS"]


@dataclass(frozen=True)
class Request:
    """What `history` was asked (the parsed command line)."""

    name: str | None
    all_namespaces: bool
    filters: Filters
    output: str | None  # None (a table), wide or json
    dsn: str | None  # --dsn


# -- where the archive is ----------------------------------------------------------------------

def local_dsn_file(environ: Mapping[str, str], cwd: Path) -> Path:
    root = environ.get("LOCALCLUSTER_ROOT")
    return (Path(root) if root else cwd / ".cluster") / LOCAL_DSN


def find_dsn(flag: str | None, environ: Mapping[str, str], cwd: Path) -> tuple[str, str]:
    """(the DSN, where it came from): --dsn, else $VIDEOJOB_ARCHIVE_DSN, else the local
    cluster's file. CommandError naming all three when none has one."""
    if flag:
        return flag, "--dsn"
    if environ.get(DSN_ENV):
        return environ[DSN_ENV], f"${DSN_ENV}"
    path = local_dsn_file(environ, cwd)
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    if text:
        return text, str(path)
    raise CommandError(
        f"no archive to read: pass --dsn, set {DSN_ENV}, or start the local cluster with the "
        f"archive (make operator-up writes {path}). The DSN is a PostgreSQL connection string "
        "(an administrator's credential); tenants read history through the gateway")


def describe_dsn(dsn: str) -> str:
    """Where a DSN points, without its password: `host:port/dbname`."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(dsn)
    except Exception:  # an unreadable DSN: say nothing of its content
        return "the archive"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def namespace_of(kube: KubeFlags, all_namespaces: bool) -> str | None:
    """The namespace to read (None: every one): -n, else the kubeconfig context's, else
    `default`. No cluster is asked: a missing kubeconfig is no error here."""
    if all_namespaces:
        return None
    if kube.namespace:
        return kube.namespace
    files = kubeconfig_files(kube)
    if not any(Path(p).expanduser().is_file() for p in files.split(os.pathsep) if p):
        return "default"
    return context_namespace(kube) or "default"


# -- what is printed (pure) --------------------------------------------------------------------

def gpu_seconds(value: float) -> str:
    return f"{value:.1f}"


def size(n: int | None) -> str:
    """Bytes as `ls -h` would say them: 18400112 → 17.5Mi."""
    if n is None:
        return ABSENT
    value = float(n)
    for unit in ("", "Ki", "Mi", "Gi", "Ti"):
        if value < 1024 or unit == "Ti":
            return f"{int(value)}" if unit == "" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def duration(start: dt.datetime | None, end: dt.datetime | None) -> str:
    if start is None or end is None:
        return ABSENT
    return human_duration((end - start).total_seconds())


def labels_cell(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or ABSENT


def table_row(s: Summary, now: dt.datetime, wide: bool, all_namespaces: bool) -> list[str]:
    row = [s.name, s.phase, s.reason or ABSENT, gpu_seconds(s.gpu_seconds),
           duration(s.started or s.created, s.finished),
           f"{human_duration((now - s.finished).total_seconds())} ago"]
    if wide:
        row += [s.failed_stage or ABSENT, s.output_uri or ABSENT, size(s.output_bytes), s.uid,
                labels_cell(s.labels)]
    return ([s.namespace] if all_namespaces else []) + row


def table(rows: Iterable[Summary], now: dt.datetime, wide: bool = False,
          all_namespaces: bool = False) -> str:
    header = (["NAMESPACE"] if all_namespaces else []) + (WIDE_COLUMNS if wide else COLUMNS)
    return columns([header, *(table_row(s, now, wide, all_namespaces) for s in rows)])


def estimate_line(estimated: int, q: ListQuery) -> str:
    """`~1,200 archived VideoJobs in namespace studio (Failed)`: the planner's figure, so
    marked `~`; it leaves the label selector and --since out, so it says so when they are
    given."""
    where = f"in namespace {q.namespace}" if q.namespace else "in all namespaces"
    phase = f" ({q.phase})" if q.phase else ""
    unfiltered = " before -l/--since" if q.labels or q.since else ""
    return f"~{estimated:,} archived VideoJobs {where}{phase}{unfiltered} (an estimate)"


def _when(value: dt.datetime | None) -> str:
    return documents._iso(value) or "-"


def _pod_row(p: PodRecord) -> list[str]:
    return [p.stage, "-" if p.index is None else str(p.index),
            "-" if p.attempt is None else str(p.attempt), p.name, p.phase, p.node or "-",
            str(p.gpus), _when(p.started), _when(p.finished), gpu_seconds(p.gpu_seconds),
            "-" if p.exit_code is None else str(p.exit_code), p.reason or "-"]


def _indent(text: str, by: str = "  ") -> list[str]:
    return [by + line for line in text.splitlines()]


def describe(r: ArchiveRow, now: dt.datetime) -> str:
    """One archived run, as `kubectl describe` lays out an object: fields, then stages, pods
    and conditions as tables."""
    s, d = r.summary, r.detail
    fields: list[tuple[str, str]] = [
        ("Name", s.name), ("Namespace", s.namespace), ("UID", s.uid), ("Phase", s.phase),
        ("Reason", s.reason or "-"), ("Failed stage", s.failed_stage or "-"),
        ("Message", one_line(d.message or "") or "-"), ("Labels", labels_cell(s.labels) or "-"),
        ("Created", _when(s.created)), ("Started", _when(s.started)),
        ("Finished", f"{_when(s.finished)} "
                     f"({human_duration((now - s.finished).total_seconds())} ago)"),
        ("Duration", duration(s.started or s.created, s.finished) or "-"),
        ("GPU-seconds", f"{gpu_seconds(s.gpu_seconds)} in total"),
        ("Output", s.output_uri or "-"), ("Size", size(s.output_bytes) or "-"),
        ("MD5", d.output_md5 or "-"), ("CRC32C", d.output_crc32c or "-")]
    width = max(len(k) for k, _ in fields) + 2
    lines = [f"{k + ':':<{width}}{v}" for k, v in fields]
    if d.stages:
        lines.append("Stages:")
        lines += _indent(columns([
            ["STAGE", "PHASE", "ATTEMPTS", "PODS", "STARTED", "FINISHED", "DURATION",
             "GPU-SECONDS", "MESSAGE"],
            *([st.name, st.phase or "-", str(st.attempts), str(len(st.pods)), _when(st.started),
               _when(st.finished), duration(st.started, st.finished) or "-",
               gpu_seconds(st.gpu_seconds), one_line(st.message or "") or "-"]
              for st in d.stages)]))
    pods = [p for st in d.stages for p in st.pods]
    if pods:
        lines.append("Pods:")
        lines += _indent(columns([
            ["STAGE", "INDEX", "ATTEMPT", "POD", "PHASE", "NODE", "GPUS", "STARTED",
             "FINISHED", "GPU-SECONDS", "EXIT", "REASON"], *(_pod_row(p) for p in pods)]))
    if d.pods_running:
        lines.append(f"({d.pods_running} pod(s) were still running when the row was written: "
                     "their GPU-seconds are counted up to then)")
    if d.conditions:
        lines.append("Conditions:")
        lines += _indent(columns([
            ["TYPE", "STATUS", "REASON", "LAST TRANSITION", "MESSAGE"],
            *([str(c.get("type", "")), str(c.get("status", "")), str(c.get("reason") or "-"),
               str(c.get("lastTransitionTime") or "-"), one_line(str(c.get("message") or "-"))]
              for c in d.conditions)]))
    return "\n".join(lines)


def page_json(rows: Sequence[Summary], cursor: str | None, estimated: int) -> str:
    return documents.page(rows, cursor, estimated).model_dump_json(by_alias=True, indent=4)


# -- the command -------------------------------------------------------------------------------

def flag_error(e: FilterError) -> CommandError:
    return CommandError(e.named(FLAGS.get(e.filter, e.filter)))


def run(req: Request, kube: KubeFlags, environ: Mapping[str, str] | None = None,
        now: dt.datetime | None = None) -> int:
    environ = os.environ if environ is None else environ
    now = now or dt.datetime.now(dt.UTC)
    if req.name and req.all_namespaces and not _looks_like_uid(req.name):
        raise CommandError("a VideoJob is looked up by name within one namespace (drop -A), "
                           "or by UID")
    namespace = namespace_of(kube, req.all_namespaces)
    query = None
    if not req.name:
        try:
            query = list_query(req.filters, namespace, now)
        except FilterError as e:
            raise flag_error(e) from None
    dsn, source = find_dsn(req.dsn, environ, Path.cwd())
    with _archive(dsn, source) as archive:
        if req.name:
            found = archive.get(namespace, req.name)
            if found is None:
                where = f" in namespace {namespace}" if namespace else ""
                raise CommandError(f"no archived VideoJob {req.name!r}{where}")
            if req.output == "json":
                print(documents.run(found).model_dump_json(indent=4))
            else:
                print(describe(found, now))
            return 0
        assert query is not None
        rows, cursor = archive.page(query)
        estimated = archive.estimate(namespace, query.phase)
    if req.output == "json":
        print(page_json(rows, cursor, estimated))
        return 0
    if not rows:
        where = f" in {namespace} namespace" if namespace else ""
        print(f"No archived VideoJobs found{where}.", file=sys.stderr)
        return 0
    print(table(rows, now, wide=req.output == "wide", all_namespaces=namespace is None))
    print(estimate_line(estimated, query), file=sys.stderr)
    if cursor:
        print(f"next page: --continue {cursor}", file=sys.stderr)
    return 0


def _looks_like_uid(text: str) -> bool:
    return len(text) == 36 and text.count("-") == 4


def _database_problem(e: Exception, where: str) -> CommandError:
    import psycopg

    if isinstance(e, psycopg.errors.UndefinedTable):
        return CommandError(f"{where} has no tables yet: the operator creates them when it "
                            "starts with the archive on")
    return CommandError(f"{where} failed: {' '.join(str(e).split())}")


@contextlib.contextmanager
def _archive(dsn: str, source: str, timeout: float = 10) -> Iterator[Archive]:
    """The archive, opened for one command (one connection) and closed after. A database that
    cannot be reached, or that fails a query, is a CommandError saying where (never with the
    password) and why. psycopg is imported here, not with the plugin: `get`, `watch` and the
    rest never pay for it."""
    import psycopg
    from psycopg_pool import PoolTimeout

    from videojob_common.archive.store import Archive

    where = f"the archive at {describe_dsn(dsn)} (from {source})"
    try:
        # One connection first, for its own error: the pool would only say that it timed out
        # (after `timeout`, however quickly the server refused).
        psycopg.connect(dsn, connect_timeout=int(timeout)).close()
    except psycopg.ProgrammingError as e:  # a DSN libpq cannot read
        raise CommandError(f"{source}: not a PostgreSQL connection string: "
                           f"{' '.join(str(e).split())}") from None
    except psycopg.Error as e:
        raise CommandError(f"cannot reach {where}: {' '.join(str(e).split())}") from None
    archive = Archive(dsn, min_size=1, max_size=1, application_name="kubectl-videojob-history",
                      timeout=timeout, statement_timeout=STATEMENT_TIMEOUT)
    try:
        try:
            archive.open(timeout=timeout)
        except PoolTimeout:
            raise CommandError(f"cannot reach {where}: no connection within "
                               f"{timeout:g}s") from None
        yield archive
    except psycopg.Error as e:
        raise _database_problem(e, where) from None
    finally:
        archive.close()
