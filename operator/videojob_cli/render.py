"""What the plugin prints, as pure functions of a VideoJob (the dict the API server returns).

Nothing here talks to a cluster or a terminal, so everything a user reads is unit-tested
(tests/cli/test_cli.py). Tables follow `kubectl get`: upper-case headers, columns three spaces
apart, an empty cell for an absent value (as kubectl prints a CRD's columns), ages in kubectl's
own format (apimachinery's `duration.HumanDuration`), so eyes and scripts used to
`kubectl get vj` read them the same way.

`watch` shows a block of lines: a header, then one line per stage with a progress bar, its
percentage, phase and latest message (`frame 120/288`). On a terminal the block is redrawn in
place, so the header carries the overall percentage; in a log (stdout not a TTY) only lines that
changed are printed again, so the header there leaves out figures that move while a stage runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from videojob_common.pipeline import STAGE_DONE, StagePhase

from .resource import STAGES, StageView, VideoJobView, display_name

ABSENT = ""  # kubectl shows an absent value of a CRD column as an empty cell
BAR_WIDTH = 20
COLUMNS = ["NAME", "PHASE", "PROGRESS", "STAGE", "QUEUE", "AGE"]
WIDE_COLUMNS = [*COLUMNS, "OUTPUT", "MESSAGE"]
STAGE_WIDTH = max(len(s) for s in STAGES)
PHASE_WIDTH = max(len(p) for p in StagePhase)

Obj = Mapping[str, Any]


def progress_bar(percent: int, width: int = BAR_WIDTH, unicode: bool = False) -> str:
    """`[#########-----------]`: a bar only full at 100 % (rounded down, as progress is)."""
    percent = max(0, min(100, percent))
    filled = percent * width // 100
    done, todo = ("\u2588", "\u2591") if unicode else ("#", "-")
    return f"[{done * filled}{todo * (width - filled)}]"


def human_duration(seconds: float) -> str:
    """kubectl's AGE format (k8s.io/apimachinery/pkg/util/duration.HumanDuration)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, hours // 24 % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def age(vj: Obj, now: dt.datetime) -> str:
    created = VideoJobView.of(vj).metadata.creation_timestamp
    if not created:
        return ABSENT
    try:
        when = dt.datetime.fromisoformat(created)
    except ValueError:
        return ABSENT
    return human_duration((now - when).total_seconds())


def one_line(text: str) -> str:
    """A message on one line. Worker failures can carry a whole traceback (the pod's log tail
    becomes its termination message): keep its first line, which says what failed, and its
    last, which says why."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) <= 2:
        return " ".join(lines)
    return f"{lines[0]} ... {lines[-1]}"


def _cell(value: object) -> str:
    return ABSENT if value is None else one_line(str(value))


def table_row(vj: Obj, now: dt.datetime, wide: bool = False,
              all_namespaces: bool = False) -> list[str]:
    """One VideoJob as the cells of `get`'s table (NAMESPACE first with -A)."""
    view = VideoJobView.of(vj)
    status = view.status
    progress = f"{status.progress}%" if status.progress is not None else None
    row = [view.name, _cell(status.phase), _cell(progress), _cell(status.current_stage),
           _cell(status.queue_position), age(vj, now)]
    if wide:
        row += [_cell(view.output_uri), _cell(status.message)]
    return ([view.metadata.namespace] if all_namespaces else []) + row


def columns(rows: Iterable[Sequence[str]]) -> str:
    """Rows aligned in columns three spaces apart, the last column unpadded (kubectl's tabwriter
    settings)."""
    rows = [list(r) for r in rows]
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True))
                     .rstrip() for r in rows)


def table(vjs: Iterable[Obj], now: dt.datetime, wide: bool = False,
          all_namespaces: bool = False) -> str:
    """`get`'s table: NAME PHASE PROGRESS STAGE QUEUE AGE (-o wide: OUTPUT MESSAGE too)."""
    header = (["NAMESPACE"] if all_namespaces else []) + (WIDE_COLUMNS if wide else COLUMNS)
    rows = [table_row(vj, now, wide, all_namespaces) for vj in vjs]
    return columns([header, *rows])


def stage_detail(stage: StageView) -> str:
    """The stage's latest message, with its scene count where the message lacks it."""
    detail = one_line(stage.message or "")
    if stage.total is not None and "scene" not in detail:
        scenes = f"{stage.completed or 0}/{stage.total} scenes"
        detail = f"{detail} ({scenes})" if detail else scenes
    return detail


def stage_line(stage: StageView, unicode: bool = False) -> str:
    """`  segments   [########------------]  40%  Running    frame 120/288, 2/4 scenes …`"""
    percent = 100 if stage.phase in STAGE_DONE else max(0, min(100, stage.progress))
    line = (f"  {stage.name:<{STAGE_WIDTH}}  {progress_bar(percent, unicode=unicode)} "
            f"{percent:>3}%  {stage.phase:<{PHASE_WIDTH}}  {stage_detail(stage)}")
    return line.rstrip()


def header(vj: Obj, live: bool) -> str:
    """The first line of `watch`: name and phase; on a terminal also the overall progress and
    the operator's message, in a log the message only when it is not a moving figure."""
    view = VideoJobView.of(vj)
    phase, message = view.phase, one_line(view.status.message or "")
    if live:
        percent = f"{view.status.progress or 0}%"
        return "   ".join(p for p in (view.name, phase, percent, message) if p)
    if phase == "Running":
        message = f"stage {view.status.current_stage}" if view.status.current_stage else ""
    return "   ".join(p for p in (view.name, phase, message) if p)


def watch_lines(vj: Obj, live: bool = False, unicode: bool = False) -> list[str]:
    """The block `watch` shows: the header, then every stage in pipeline order."""
    view = VideoJobView.of(vj)
    return [header(vj, live), *(stage_line(s, unicode) for s in view.stages())]


def output_line(vj: Obj) -> str:
    """The last line of a successful `watch`: where the video is."""
    return f"output: {VideoJobView.of(vj).output_uri or '<none>'}"


def failure(vj: Obj) -> str:
    """Why a VideoJob failed, for stderr: `videojob NAME failed (Reason): message`."""
    view = VideoJobView.of(vj)
    reason = f" ({view.status.reason})" if view.status.reason else ""
    stage = view.status.current_stage
    where = f" in stage {stage}" if stage else ""
    message = one_line(view.status.message or "") or "no message"
    return f"videojob {view.name} failed{where}{reason}: {message}"


def state(vj: Obj) -> str:
    """Where a VideoJob stands, in a few words, for messages: `Running (stage segments, 42%)`."""
    view = VideoJobView.of(vj)
    details = []
    if view.status.current_stage and not view.finished:
        details.append(f"stage {view.status.current_stage}")
    if view.status.progress is not None and not view.finished:
        details.append(f"{view.status.progress}%")
    return view.phase + (f" ({', '.join(details)})" if details else "")


def name_line(vj: Obj, verb: str = "") -> str:
    """`videojob.videojob.dev/NAME created`, kubectl's line for what it did to an object."""
    text = display_name(VideoJobView.of(vj).name)
    return f"{text} {verb}" if verb else text
