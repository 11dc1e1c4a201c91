"""`watch NAME`: live per-stage progress until the VideoJob finishes.

Progress arrives through a watch on the VideoJob (`videojobs.changes`): the operator writes
stage progress into the status at most once a second and every transition at once, so each
status write is one redraw, and nothing polls.

On a terminal the block of lines (`render.watch_lines`) is redrawn in place with two ANSI
sequences, cursor-up and clear-line; lines are cut to the terminal's width, because a line that
wrapped would take two rows and the cursor would no longer go back to the top of the block.
When stdout is a file or a pipe (CI logs, `| tee`), there are no escape sequences: a line is
printed only when its text changed, so a log reads as a list of transitions.

Exit codes: 0 when the VideoJob Succeeded (the last line is `output: URI`); 1 when it Failed
(its reason and message on stderr), was deleted, or `--timeout` passed first.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Protocol, TextIO

from videojob_common.pipeline import Obj, Phase

from . import render, videojobs
from .cluster import Target
from .errors import CommandError
from .resource import VideoJobView

CURSOR_UP = "\x1b[{}A\r"
CLEAR_LINE = "\x1b[2K"


class Display(Protocol):
    def show(self, lines: list[str]) -> None: ...


class LiveBlock:
    """A terminal: the block redrawn in place."""

    def __init__(self, out: TextIO, width: int) -> None:
        self.out = out
        self.width = max(width - 1, 20)
        self.shown = 0

    def show(self, lines: list[str]) -> None:
        text = CURSOR_UP.format(self.shown) if self.shown else ""
        text += "".join(f"{CLEAR_LINE}{line[:self.width]}\n" for line in lines)
        # A shorter block than last time: clear the rows it no longer covers.
        text += "".join(f"{CLEAR_LINE}\n" for _ in range(self.shown - len(lines)))
        self.out.write(text)
        self.out.flush()
        self.shown = max(self.shown, len(lines))


class ChangedLines:
    """A log: plain lines, each printed again only when its text changed."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.last: list[str] = []

    def show(self, lines: list[str]) -> None:
        changed = [line for i, line in enumerate(lines)
                   if i >= len(self.last) or self.last[i] != line]
        if changed:
            self.out.write("".join(f"{line}\n" for line in changed))
            self.out.flush()
        self.last = lines


def display_for(out: TextIO) -> tuple[Display, bool, bool]:
    """The display for `out`, whether it is live (a terminal) and whether it takes Unicode."""
    if out.isatty():
        unicode = "utf" in (getattr(out, "encoding", None) or "").lower()
        return LiveBlock(out, shutil.get_terminal_size().columns), True, unicode
    return ChangedLines(out), False, False


def run(target: Target, name: str, timeout: float | None, out: TextIO | None = None) -> int:
    """Shows the VideoJob's progress until it finishes; 0 if it Succeeded."""
    out = out or sys.stdout
    display, live, unicode = display_for(out)
    deadline = None if timeout is None else time.monotonic() + timeout
    last: Obj | None = None
    for kind, vj in videojobs.changes(target, name, deadline):
        if kind == "DELETED":
            before = f" (it was {render.state(last)})" if last else ""
            raise CommandError(f"videojob {name} was deleted while being watched{before}")
        last = vj
        display.show(render.watch_lines(vj, live=live, unicode=unicode))
        phase = VideoJobView.of(vj).phase
        if phase == Phase.SUCCEEDED:
            out.write(render.output_line(vj) + "\n")
            out.flush()
            return 0
        if phase == Phase.FAILED:
            raise CommandError(render.failure(vj))
    where = f"; it is {render.state(last)}" if last else ""
    raise CommandError(f"timed out after {timeout or 0:g}s waiting for videojob {name} to finish"
                       f"{where}")
