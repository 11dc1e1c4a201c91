"""A history request's filters as a person types them (`--since 7d`, `phase=Failed`,
`labelSelector=team=a`, `limit`, `continue`), read into a `queries.ListQuery`, with an error that
names the filter at fault. The kubectl plugin and the gateway both read their input here, so
`history --since 7d` and `?since=7d` mean the same and are refused the same way.

Pure: the clock comes in as an argument; nothing here talks to the database.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from videojob_common.pipeline import TERMINAL

from .label_selector import SelectorError
from .label_selector import parse as parse_selector
from .queries import MAX_LIMIT, Cursor, CursorError, ListQuery

DEFAULT_LIMIT = 50
# Only finished VideoJobs are archived: their phases are the only ones a filter can match.
PHASES = tuple(sorted(TERMINAL))
_DURATION = re.compile(r"^(?P<n>\d+)(?P<unit>[smhdw])$")
_UNIT = {"s": dt.timedelta(seconds=1), "m": dt.timedelta(minutes=1),
         "h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1)}


class FilterError(ValueError):
    """A filter that cannot be read: `filter` is its generic name (phase, since, selector,
    limit, continue), `value` what was given, `reason` what is wrong with it. Each front end
    names the filter as its users type it (`--since`, `since=`)."""

    def __init__(self, filter: str, value: object, reason: str) -> None:
        super().__init__(f"{filter} {value!r}: {reason}")
        self.filter, self.value, self.reason = filter, value, reason

    def named(self, name: str) -> str:
        """The message with the filter called `name`."""
        return f"{name} {self.value!r}: {self.reason}"


@dataclass(frozen=True)
class Filters:
    """The filters as given (None or "": not given)."""

    phase: str | None = None
    since: str | None = None
    selector: str = ""
    limit: int | None = None
    after: str | None = None  # a cursor from the page before


def parse_since(text: str, now: dt.datetime) -> dt.datetime:
    """`90s`, `30m`, `24h`, `7d`, `2w` back from `now`, or an RFC 3339 time
    (`2026-12-01T09:00:00Z`; a time without a zone is refused, it would be a guess)."""
    text = text.strip()
    if m := _DURATION.match(text):
        return now - int(m["n"]) * _UNIT[m["unit"]]
    try:
        when = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise FilterError("since", text, "expected a duration back from now (90s, 30m, 24h, "
                                         "7d, 2w) or an RFC 3339 time (2026-12-01T09:00:00Z)"
                          ) from None
    if when.tzinfo is None:
        raise FilterError("since", text, "an RFC 3339 time needs its zone (Z or +hh:mm)")
    return when


def parse_phase(text: str) -> str:
    """A terminal phase, in any case (`failed` is Failed)."""
    for phase in PHASES:
        if text.strip().lower() == phase.lower():
            return phase
    raise FilterError("phase", text, "the archive holds finished VideoJobs only: expected "
                                     f"{' or '.join(PHASES)}")


def list_query(f: Filters, namespace: str | None, now: dt.datetime) -> ListQuery:
    """The query the filters ask for (FilterError naming the first that is wrong)."""
    limit = DEFAULT_LIMIT if f.limit is None else f.limit
    if not 1 <= limit <= MAX_LIMIT:
        raise FilterError("limit", limit, f"must be 1 to {MAX_LIMIT}")
    try:
        labels = parse_selector(f.selector or "")
    except SelectorError as e:
        # Its message names the selector too: keep what follows, which names the part.
        reason = str(e).removeprefix(f"label selector {f.selector!r}").lstrip(":, ")
        raise FilterError("selector", f.selector, reason) from None
    try:
        after = Cursor.decode(f.after) if f.after else None
    except CursorError:
        raise FilterError("continue", f.after, "not a token this archive handed out (pass "
                                               "the page before's, unchanged)") from None
    return ListQuery(namespace=namespace, phase=parse_phase(f.phase) if f.phase else None,
                     since=parse_since(f.since, now) if f.since else None, labels=labels,
                     limit=limit, after=after)
