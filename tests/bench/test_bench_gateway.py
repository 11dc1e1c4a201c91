"""The gateway benchmark's pure parts (bench/gateway.py, bench/loadgen.py): the open-loop
schedule, the HTTP/1.1 framing its load generator reads, how stream latencies are matched, and
the headline keys bench/summary.py takes from it."""

from __future__ import annotations

from typing import Any

from bench import gateway, loadgen
from bench.summary import HEADLINE, complete


def test_the_open_loop_schedule_is_fixed_in_advance_at_the_rate() -> None:
    due = loadgen.due_times(100.0, rate=500, duration=20)
    assert len(due) == 10_000
    assert due[0] == 100.0 and abs(due[1] - due[0] - 0.002) < 1e-12
    assert abs(due[-1] - (100.0 + 19.998)) < 1e-9  # not stretched by slow answers: fixed


def test_a_response_head_says_how_its_body_is_framed() -> None:
    assert loadgen.parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\nX: y") == \
        loadgen.Head(200, 12, False)
    assert loadgen.parse_head(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked") == \
        loadgen.Head(201, None, True)


def test_a_chunked_body_decodes_the_same_however_it_is_split() -> None:
    body = b"5\r\nhello\r\n1a;ext=1\r\n" + b"x" * 26 + b"\r\n0\r\n\r\n"
    for step in (1, 2, 3, 7, len(body)):
        decoder = loadgen.Chunked()
        out = b"".join(decoder.feed(body[i:i + step]) for i in range(0, len(body), step))
        assert out == b"hello" + b"x" * 26 and decoder.done


def test_event_frames_and_watch_lines_come_whole() -> None:
    frames = loadgen.Frames()
    assert frames.feed("retry: 3000\n\nid: 7.ab\nevent: status\ndata: {\"a\"") == []
    assert frames.feed(":1}\n\n: keep-alive\n\n") == [("status", '{"a":1}')]
    lines = loadgen.Lines()
    assert lines.feed('{"type":"ADDED"}\n{"type":') == ['{"type":"ADDED"}']
    assert lines.feed('"MODIFIED"}\n') == ['{"type":"MODIFIED"}']


def test_subscribers_spread_evenly_and_each_is_timed_from_its_own_videojobs_patch() -> None:
    followed = gateway.spread(4, ["a", "b"])
    assert followed == ["a", "b", "a", "b"]
    patched = {("a", "m1"): 10.0, ("b", "m1"): 10.5}
    events = [(0, "m1", 10.1), (1, "m1", 10.7), (2, "m1", 10.3), (0, "m1", 12.0),  # a repeat
              (2, "other", 11.0)]
    latencies, missed = gateway.stream_latencies(events, followed, patched)
    assert sorted(round(x) for x in latencies) == [100, 200, 300]
    assert missed == 1  # subscriber 3 never saw b's change


def test_a_change_replaced_by_a_newer_one_counts_as_seen_with_it() -> None:
    patched = {("a", "m1"): 10.0, ("a", "m2"): 11.0, ("a", "m3"): 12.0}
    events = [(0, "m2", 11.5)]  # m1 was still unsent when m2 came; m3 never came
    latencies, missed = gateway.stream_latencies(events, ["a"], patched)
    assert [round(x) for x in latencies] == [1500, 500] and missed == 1


def test_cpu_shares_name_what_other_work_on_the_machine_took() -> None:
    out = gateway.shares({"gateway": 5.0, "kube-apiserver": 2.0, "machine": 16.0,
                          "wall": 10.0}, loadgen_s=1.0)
    assert out == {"gateway": 0.5, "kube-apiserver": 0.2, "loadgen": 0.1, "machine": 1.6,
                   "other": 0.8}


def run(p50: float, p99: float, **extra: Any) -> dict[str, Any]:
    return {"p50_ms": p50, "p99_ms": p99, "achieved_rps": 500.0, "cpu_ms_per_request": 1.0,
            "cpu_share": {"gateway": 0.5, "loadgen": 0.1, "other": 0.2}, "missed": 0, **extra}


def test_the_figures_are_medians_of_runs_and_carry_every_headline_key() -> None:
    get = {"gateway_token": [run(2, 8), run(3, 9), run(2, 30)],
           "gateway_key": [run(2, 7)] * 3, "apiserver": [run(4, 18), run(5, 20), run(4, 16)]}
    sse = {"gateway": [run(100, 300)] * 3, "apiserver": [run(20, 150)] * 3}
    submit = {"gateway_token": [run(20, 40)] * 3, "gateway_key": [run(21, 40)] * 3,
              "apiserver": [run(10, 20)] * 3}
    hooks = [run(150, 300, from_notification_time={"p50_ms": 60.0})] * 3
    out = gateway.summarise(get, submit, sse, hooks)
    assert out["gateway_get_p99_ms"] == 9  # the median run's p99, not the pooled one
    assert out["apiserver_get_p99_ms"] == 18
    assert out["gateway_get_vs_apiserver_p99_ratio"] == 0.5
    assert out["gateway_sse_vs_apiserver_p99_ratio"] == 2.0
    assert out["gateway_submit_vs_apiserver_p50_ratio"] == 2.0
    assert out["webhook_first_attempt_p50_ms"] == 150
    assert complete("gateway", out)
    assert all(HEADLINE[k].field in out for k in HEADLINE if HEADLINE[k].bench == "gateway")
