"""The scale benchmark's admission figures (bench/scale.py) from made-up readings of the
operator's own metrics: the gpu pool's series of a labelled histogram, and medians of what was
observed between two readings only."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from bench import scale
from bench.testbed import operator_histograms


@pytest.fixture
def metrics() -> Iterator[tuple[CollectorRegistry, int]]:
    registry = CollectorRegistry()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield registry, server.server_address[1]
    server.shutdown()


def test_a_labelled_histogram_is_read_for_the_pool_asked(
        metrics: tuple[CollectorRegistry, int]) -> None:
    registry, port = metrics
    h = Histogram("videojob_admission_patch_seconds", "", ["pool"], buckets=(0.01, 0.1),
                  registry=registry)
    h.labels("gpu").observe(0.05)
    h.labels("cpu").observe(0.005)
    h.labels("cpu").observe(0.005)
    got = operator_histograms(port, ("videojob_admission_patch_seconds",), {"pool": "gpu"})
    assert got == {"videojob_admission_patch_seconds": {0.01: 0, 0.1: 1, float("inf"): 1}}


def test_the_reaction_parts_are_medians_of_what_came_between_two_readings() -> None:
    def reading(reaction: dict[float, float], passes: float) -> dict[str, object]:
        empty = {0.1: 0.0, float("inf"): 0.0}
        return {"reconciles": 10 * passes, "passes": passes, "pass_seconds": 0.01 * passes,
                "buckets": {scale.PASS: {0.01: passes, float("inf"): passes},
                            "videojob_admission_reaction_seconds": reaction,
                            "videojob_admission_pass_delay_seconds": empty,
                            "videojob_admission_patch_seconds": empty,
                            **{key: empty for key in scale.CALL_PARTS.values()}}}

    before = reading({0.05: 4, 0.1: 4, 0.2: 4, float("inf"): 4}, passes=2)
    after = reading({0.05: 4, 0.1: 6, 0.2: 8, float("inf"): 8}, passes=6)
    out = scale.admission_work(before, after, reactions=4, n=3000)
    assert out["admission_operator_p50_ms_3000"] == 100.0  # the 4 new: 2 in 50-100, 2 in 100-200
    assert out["admission_pass_delay_p50_ms_3000"] is None  # nothing observed
    assert out["admission_passes_3000"] == 4 and out["admission_pass_mean_ms_3000"] == 10.0
    assert out["reconciles_per_admission_3000"] == 10.0


def test_the_slope_ratios_tell_a_bending_curve_from_a_straight_line() -> None:
    sizes = [1000, 3000, 10000]

    def figures(rss: list[float], cpu_per_videojob: list[float]) -> dict[str, float]:
        return {**{f"operator_rss_mb_{n}": r for n, r in zip(sizes, rss, strict=True)},
                **{f"operator_cpu_s_per_videojob_{n}": c
                   for n, c in zip(sizes, cpu_per_videojob, strict=True)}}

    # A straight line with a fixed part (the idle process): 1, however large the fixed part.
    straight = scale.slope(figures([112 + 20, 112 + 60, 112 + 200], [0.03] * 3), sizes)
    assert straight == {"operator_rss_mb_per_1000": 20.0, "rss_slope_ratio": 1.0,
                        "cpu_slope_ratio": 1.0}
    # Bending upwards: its middle point is under the line through its ends (the old figure,
    # 0.955 here, read that as better than linear), and the ratio says so (a run of the
    # thirteenth session: 162.7, 203.6, 390.4 MB).
    bent = scale.slope(figures([162.7, 203.6, 390.4], [0.0331, 0.0232, 0.0458]), sizes)
    assert bent["rss_slope_ratio"] > 1.05 and bent["cpu_slope_ratio"] > 1.05
    # A fixed cost shared by more VideoJobs: better than linear.
    assert scale.slope(figures([150, 170, 230], [0.05, 0.03, 0.02]), sizes)[
        "cpu_slope_ratio"] < 1


def _job(suspend: bool, active: int = 0, condition: str | None = None) -> dict[str, object]:
    status: dict[str, object] = {"active": active}
    if condition:
        status["conditions"] = [{"type": condition, "status": "True"}]
    return {"spec": {"suspend": suspend}, "status": status}


def test_a_namespace_holds_still_once_the_job_controller_has_finished_every_job() -> None:
    done = [{"status": {"phase": "Succeeded"}}]
    queued, complete, failed = _job(True), _job(False, 0, "Complete"), _job(False, 0, "Failed")
    assert scale.holds_still([queued, complete, failed], done)
    # Its pods have all exited, but the Job controller has not said Complete yet.
    assert not scale.holds_still([queued, _job(False)], done)
    # Suspended while its pods still run (a VideoJob suspended), or a pod still running.
    assert not scale.holds_still([_job(True, active=1)], done)
    assert not scale.holds_still([complete], [{"status": {"phase": "Running"}}])
    assert not scale.holds_still([complete], [{"status": {"phase": "Pending"}}])
    # A condition that is not true is not an end.
    assert not scale.holds_still(
        [{"spec": {}, "status": {"conditions": [{"type": "Complete", "status": "False"}]}}], [])


def test_the_audit_log_counts_one_users_writes_as_they_are_appended(tmp_path: Path) -> None:
    from bench.testbed import AuditWrites

    log = tmp_path / "audit.log"
    user = "system:serviceaccount:videojob-system:videojob-operator"

    def line(verb: str, resource: str, sub: str = "", who: str = user, group: str = "") -> bytes:
        ref = {"resource": resource, "apiGroup": group, **({"subresource": sub} if sub else {})}
        return orjson.dumps({"verb": verb, "user": {"username": who}, "objectRef": ref}) + b"\n"

    log.write_bytes(line("create", "jobs", group="batch"))  # before: not counted
    audit = AuditWrites(log, user)
    with log.open("ab") as f:
        f.write(line("patch", "videojobs", "status", group="videojob.dev") * 2
                + line("create", "jobs", group="batch")
                + line("patch", "videojobs", "status", who=user + "-other")
                + line("create", "events")[:20])  # being written
    assert audit.read() == {"patch videojobs/status": 2, "create jobs": 1}
    with log.open("ab") as f:
        f.write(line("create", "events")[20:])
    assert audit.read() == {"patch videojobs/status": 2, "create jobs": 1, "create events": 1}
    log.write_bytes(line("patch", "jobs", group="batch"))  # rotated: a new, shorter file
    assert audit.read()["patch jobs"] == 1
