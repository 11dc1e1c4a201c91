"""How bench/feed.py reads the API server's and etcd's metrics, and how far behind it calls the
watch cache."""

from __future__ import annotations

from bench.feed import Segment, read_apiserver, read_etcd, read_etcd_watchers

APISERVER = """\
# HELP apiserver_watch_cache_resource_version [ALPHA] Current resource version of watch cache
# TYPE apiserver_watch_cache_resource_version gauge
apiserver_watch_cache_resource_version{group="",resource="pods"} 120
apiserver_watch_cache_resource_version{group="",resource="configmaps"} 7
apiserver_watch_cache_resource_version{group="batch",resource="jobs"} 95
apiserver_terminated_watchers_total{group="",resource="pods"} 2
apiserver_terminated_watchers_total{group="batch",resource="jobs"} 1
"""


def test_the_caches_revision_by_resource_and_the_watchers_it_closed() -> None:
    assert read_apiserver(APISERVER) == {"/pods": 120.0, "batch/jobs": 95.0,
                                         "terminated_watchers": 3.0}


def test_etcds_revision() -> None:
    text = ("# TYPE etcd_debugging_mvcc_current_revision gauge\n"
            "etcd_debugging_mvcc_current_revision 319\n"
            "etcd_debugging_mvcc_current_revision_other 1\n")
    assert read_etcd(text) == 319.0
    assert read_etcd("nothing here\n") is None


def test_etcds_watchers_behind() -> None:
    text = ("etcd_debugging_mvcc_slow_watcher_total 3\n"
            "etcd_debugging_mvcc_pending_events_total 1200\n"
            "etcd_debugging_mvcc_watcher_total 61\n")
    assert read_etcd_watchers(text) == {"slow_watchers": 3.0, "pending_events": 1200.0}


def test_a_segment_keeps_each_resources_read_wait_and_lag() -> None:
    seg = Segment(started=0.0)
    seg.add(0.0, 100.0, {"batch/jobs": 100.0, "/pods": 98.0, "read_wait/batch/jobs": 0.004,
                         "read_wait//pods": 0.002})
    seg.add(2.0, 300.0, {"batch/jobs": 290.0, "/pods": 120.0, "read_wait/batch/jobs": 3.2,
                         "read_wait//pods": 0.010, "slow_watchers": 2.0,
                         "terminated_watchers": 1.0})
    seg.add(4.0, 500.0, {"batch/jobs": 495.0, "/pods": 480.0})  # the reads failed
    assert seg.samples[1]["batch/jobs"] == {"lag_revisions": 10.0, "read_wait_ms": 3200.0}
    assert seg.samples[2]["/pods"] == {"lag_revisions": 20.0, "read_wait_ms": None}
    summary = seg.summary()
    assert summary["batch/jobs read_wait_ms max"] == 3200.0
    assert summary["batch/jobs reads over 1 s"] == 1
    assert summary["/pods read_wait_ms p50"] == 6.0
    assert summary["/pods reads over 1 s"] == 0
    assert summary["etcd max slow_watchers"] == 2.0
    assert summary["terminated_watchers"] == 1.0
