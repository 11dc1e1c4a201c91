"""bench/progress.py's medians over its runs (the runs themselves need a cluster)."""

from __future__ import annotations

from bench.progress import median_of


def test_each_figure_is_its_median_over_the_runs() -> None:
    runs = [{"p99": 1500.0, "by_third": [1400.0, 1000.0, 2000.0], "parts": {"request": [20, 700]},
             "max": None},
            {"p99": 1900.0, "by_third": [1800.0, 1010.0, None], "parts": {"request": [30, 900]},
             "max": 3000.0},
            {"p99": 1600.0, "by_third": [1500.0, 1020.0, 2600.0], "parts": {"request": [25, 650]},
             "max": 2000.0}]
    assert median_of(runs) == {"p99": 1600.0, "by_third": [1500.0, 1010.0, 2300.0],
                               "parts": {"request": [25, 700]}, "max": 2500.0}
