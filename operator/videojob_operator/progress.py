"""Progress figures: a stage's percent from its workers' reports (or its Job's counts), and the
VideoJob's overall percent from its stages'. Pure; the reports arrive through Redis
(progress_feed.py)."""

from __future__ import annotations

from videojob_common.pipeline import STAGE_DONE, STAGES, Stage

from .api import StageStatus
from .views import JobView, ProgressView

# Share of the overall progress bar each stage stands for.
WEIGHTS: dict[Stage, int] = {Stage.PLAN: 5, Stage.KEYFRAMES: 15, Stage.SEGMENTS: 60,
                             Stage.NARRATE: 5, Stage.STITCH: 15, Stage.PUBLISH: 5}


def stage_progress(stage: str, job: JobView, progress: list[ProgressView],
                   frames_total: int) -> tuple[float, str]:
    """(percent, message) of a stage: the workers' own reports where there are any, else the
    Job's counts."""
    mine = [p for p in progress if p.stage == stage]
    if stage == Stage.SEGMENTS:
        return _scenes(job, mine, frames_total)
    if mine:
        latest = mine[-1]
        return latest.percent, latest.message
    return (100.0 * job.succeeded / max(job.completions, 1)), ""


def _scenes(job: JobView, mine: list[ProgressView], frames_total: int) -> tuple[float, str]:
    """A stage of one pod per scene: the mean of its scenes' percents."""
    total = max(job.completions, 1)
    per_index = {p.index: p.percent for p in mine if p.index is not None}
    reported = sum(per_index.values())
    # Indexes without a report count as done if the Job says so, else as 0.
    unreported_done = max(job.succeeded - sum(1 for v in per_index.values() if v >= 100), 0)
    percent = (reported + 100 * unreported_done) / total
    message = f"{job.succeeded}/{total} scenes rendered"
    if mine:  # frames of the whole video (durationSeconds x fps), summed over the scenes
        message = f"frame {sum(p.done for p in mine)}/{frames_total}, {message}"
    return min(percent, 100.0), message


def overall(stages: dict[Stage, StageStatus]) -> int:
    """The VideoJob's percent: its stages' weighted, a succeeded stage counting 100 (the
    weights of the stages it has: narrate only when narrated)."""
    present = [s for s in STAGES if s in stages]
    done = sum(WEIGHTS[s] * (100 if stages[s].phase in STAGE_DONE else stages[s].progress)
               for s in present)
    return min(done // sum(WEIGHTS[s] for s in present), 100)
