"""bench/admission_pass.py's scenario holds: each freed slot admits one queued Job, the rest of
the passes admit nothing."""

from __future__ import annotations

from bench import admission_pass


def test_the_pass_scenario_runs_and_admits_once_per_freed_slot() -> None:
    figures = admission_pass.measure(200)  # asserts PASSES admissions itself
    assert set(figures) == {"full", "freed", "other"} and all(v > 0 for v in figures.values())
