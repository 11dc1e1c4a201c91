"""Where a stage hand-off's time goes, as the operator sees it: three histograms.

- `videojob_handoff_seconds`: a VideoJob's stage seen ended on the operator's watches (its last
  pod Succeeded, or its Job Complete: views.done_by_pods) -> the next stage's Job created (the
  API server's answer to the create). The operator's own part: the work queue, the plan, the
  create request; `videojob_handoff_create_seconds` is the create request alone.
- `videojob_watch_delay_seconds`: one of the operator's own Job creates answered -> that Job's
  ADDED event arriving on the operator's watch. The API server's delivery: every event the
  operator reacts to (a Job Complete above all) waits on the same pipeline, and so does every
  other client's (the Job controller's, the scheduler's). A hand-off seen from outside is about
  this delay plus the first histogram.

Both need only times the operator has anyway; nothing here talks to the API server. The
bookkeeping is bounded: a mark with no partner (an ADDED of a Job created before a restart, a
create whose event came through a listing instead) is dropped after `MAX_AGE` seconds.
"""

from __future__ import annotations

from . import metrics

MAX_AGE = 300.0

Key = tuple[str, str]  # (namespace, name)


class HandoffClock:
    def __init__(self) -> None:
        self.finished: dict[Key, float] = {}  # VideoJob -> when a stage Job was seen Complete
        self.created: dict[Key, float] = {}  # Job -> when its create was answered
        self.added: dict[Key, float] = {}  # Job -> when its ADDED arrived (before the answer)

    def stage_finished(self, videojob: Key, at: float) -> None:
        """A stage Job of `videojob` seen Complete, or one of its pods seen Succeeded, on the
        watches. The latest one counts: a stage hands off when its last pod succeeds."""
        self.finished[videojob] = at

    def next_stage_created(self, videojob: Key, at: float, request: float = 0.0) -> None:
        """A stage Job of `videojob` created after one of its stages finished; `request`: the
        seconds its create took."""
        began = self.finished.pop(videojob, None)
        if began is not None:
            metrics.HANDOFF_SECONDS.observe(max(0.0, at - began))
            metrics.HANDOFF_CREATE_SECONDS.observe(max(0.0, request))

    def job_created(self, job: Key, at: float) -> None:
        seen = self.added.pop(job, None)
        if seen is None:
            self.created[job] = at
        else:  # the event came before the answer to the create
            metrics.WATCH_DELAY_SECONDS.observe(0.0)

    def job_added(self, job: Key, at: float) -> None:
        answered = self.created.pop(job, None)
        if answered is None:
            self.added[job] = at
        else:
            metrics.WATCH_DELAY_SECONDS.observe(max(0.0, at - answered))

    def forget(self, videojob: Key) -> None:
        self.finished.pop(videojob, None)

    def prune(self, now: float) -> None:
        """Drops marks older than `MAX_AGE` (called from the resync's round)."""
        for marks in (self.finished, self.created, self.added):
            for key in [k for k, at in marks.items() if now - at > MAX_AGE]:
                del marks[key]
