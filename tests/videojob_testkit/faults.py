"""The fault suite's bookkeeping: run a batch of VideoJobs, then check that each reached the
terminal phase it should have, that no stage ran more often than it should, and that nothing it
started (Job, pod, process) is left over. Figures accumulate in REPORT, printed at the end of the
session and written to .cluster/faults-report.json."""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from videojob_testkit import REPO
from videojob_testkit import videojobs as vjs
from videojob_testkit.kube import Cluster
from videojob_testkit.operator_process import Operator
from videojob_testkit.processes import wait_until


@dataclass
class Figures:
    scenario: str
    videojobs: int = 0
    faults: int = 0
    lost: int = 0
    duplicated: int = 0
    orphaned: int = 0
    stuck: int = 0
    # A scenario's own figures (e.g. webhook deliveries, duplicates, delays), by name.
    extra: dict[str, float] = field(default_factory=dict)


REPORT: list[Figures] = []
FAILED = pytest.StashKey[bool]()  # set on each test item by conftest's report hook
REPORT_FILE = REPO / ".cluster" / "faults-report.json"


def save_report() -> None:
    REPORT_FILE.parent.mkdir(parents=True, exist_ok=True)
    REPORT_FILE.write_text(json.dumps([asdict(f) for f in REPORT], indent=2) + "\n")


@dataclass
class Batch:
    """VideoJobs of one scenario in one namespace, followed through a watch."""

    cluster: Cluster
    namespace: str
    figures: Figures
    phases: dict[str, str] = field(default_factory=dict)
    uids: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, count: int, prefix: str = "vj", **spec: Any) -> list[str]:
        names = [f"{prefix}{len(self.uids) + i:03d}" for i in range(count)]
        for name in names:
            self.uids[name] = vjs.create(self.cluster, self.namespace, name, **spec)[
                "metadata"]["uid"]
        self.figures.videojobs += count
        return names

    def listing(self) -> dict[str, dict[str, Any]]:
        items = vjs.custom(self.cluster).list_namespaced_custom_object(
            vjs.GROUP, vjs.VERSION, self.namespace, vjs.PLURAL)["items"]
        return {i["metadata"]["name"]: i for i in items}

    def wait_terminal(self, timeout: float) -> dict[str, str]:
        """Every VideoJob's terminal phase; the ones still running after `timeout` count as
        stuck, the ones gone as lost."""
        final: dict[str, str] = {}

        def all_terminal() -> bool:
            now = self.listing()
            final.clear()
            final.update({n: (vj.get("status") or {}).get("phase", "") for n, vj in now.items()})
            return all(final.get(n) in ("Succeeded", "Failed") for n in self.uids)

        with contextlib.suppress(AssertionError):
            wait_until(all_terminal, timeout, "every VideoJob in a terminal phase")
        self.figures.lost += sum(1 for n in self.uids if n not in final)
        self.figures.stuck += sum(1 for n in self.uids
                                  if n in final and final[n] not in ("Succeeded", "Failed"))
        return final

    def runs(self, operator: Operator, event: str = "start") -> Counter[tuple[str, str, str]]:
        """(uid, stage, index) -> how many times the scripted worker recorded `event`."""
        mine = set(self.uids.values())
        out: Counter[tuple[str, str, str]] = Counter()
        if operator.ledger.exists():
            for line in operator.ledger.read_text().splitlines():
                uid, stage, index, ev = line.split()
                if uid in mine and ev == event:
                    out[(uid, stage, index)] += 1
        return out

    def count_duplicates(self, operator: Operator, allowed: int = 1) -> int:
        """Stage indexes (a stage, or one scene of segments) started more than `allowed`
        times."""
        dup = sum(1 for n in self.runs(operator, "start").values() if n > allowed)
        self.figures.duplicated += dup
        return dup

    def delete_all_and_count_orphans(self, timeout: float = 60) -> int:
        """Deletes the VideoJobs; whatever they started that is still there `timeout` seconds
        later (Job, pod, or a worker process on this machine) counts as orphaned."""
        vjs.custom(self.cluster).delete_collection_namespaced_custom_object(
            vjs.GROUP, vjs.VERSION, self.namespace, vjs.PLURAL)
        left: list[str] = []

        def nothing_left() -> bool:
            left.clear()
            left.extend(f"VideoJob {n}" for n in self.listing())
            left.extend(f"Job {j.metadata.name}" for j in self.cluster.batch.list_namespaced_job(
                self.namespace).items)
            left.extend(f"Pod {p.metadata.name}" for p in self.cluster.core.list_namespaced_pod(
                self.namespace).items)
            left.extend(f"process {pid}" for pid in worker_processes(set(self.uids.values())))
            return not left

        with contextlib.suppress(AssertionError):
            wait_until(nothing_left, timeout, "nothing left")
        self.figures.orphaned += len(left)
        return len(left)


def cmdline(pid: int) -> bytes:
    """The process's command line, NUL-separated; empty for one that has already gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def worker_processes(uids: set[str]) -> list[int]:
    """Processes on this machine running a stage of one of these VideoJobs."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for var in env:
            if var.startswith(b"VIDEOJOB_UID=") and var[13:].decode() in uids:
                out.append(int(proc.name))
                break
    return out
