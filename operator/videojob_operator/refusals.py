"""When the API server says no: which answers can never change, and how long to wait on the rest.

A write the API server refuses as invalid (400, 422 and the like: a Job it will never accept, a
denial by an admission policy) would be refused again on every try, so the VideoJob fails at
once (`Failed`, reason `APIRejected`, the server's message naming the field) instead of retrying
in the log forever. Any other refusal (403 from RBAC, a webhook or a ResourceQuota, 404 from a
namespace being deleted, 429, 5xx, no answer) may pass later: the VideoJob's reconciles back off
exponentially, per VideoJob (2 s doubling to 5 minutes), and its `Degraded` condition says what
was refused until a reconcile goes through again. Pure: the controller records refusals,
the planner (planner.report_refusal) turns them into status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# Answers that say the request itself is wrong: sent again, it is refused again.
PERMANENT = frozenset({400, 405, 406, 413, 414, 415, 422})
FIRST_RETRY = 2.0  # seconds
MAX_RETRY = 300.0


@dataclass(frozen=True)
class Refusal:
    """The last refusal of one VideoJob's writes, and how many came in a row."""

    what: str  # the write refused, e.g. "creating Job clip-keyframes-1a2b3"
    status: int  # HTTP status; 0: no answer (connection refused, timeout)
    message: str  # the API server's message
    attempts: int = 1

    @property
    def permanent(self) -> bool:
        return self.status in PERMANENT

    @property
    def retry_after(self) -> float:
        return backoff(self.attempts)

    def describe(self) -> str:
        code = f"{self.status} " if self.status else ""
        return f"the API server refused {self.what}: {code}{self.message}".rstrip(": ")


def backoff(attempts: int) -> float:
    """Seconds before the next reconcile after `attempts` failures in a row: 2, 4, 8, ... up to
    5 minutes."""
    return min(FIRST_RETRY * 2.0 ** (max(attempts, 1) - 1), MAX_RETRY)


def refusal(what: str, status: int | None, reason: str | None, body: str | bytes | None,
            previous: Refusal | None) -> Refusal:
    """A refusal from an API answer (`body`: its Status object, as JSON), counted after
    `previous` (the same VideoJob's last one, None after a reconcile that went through)."""
    return Refusal(what=what, status=status or 0, message=api_message(reason, body),
                   attempts=(previous.attempts + 1) if previous else 1)


def api_message(reason: str | None, body: str | bytes | None) -> str:
    """The Status object's message (which names the field), else the reason phrase."""
    if body:
        try:
            doc = json.loads(body)
        except ValueError:
            text = body.decode(errors="replace") if isinstance(body, bytes) else body
            return text.strip()[:500]
        if isinstance(doc, dict) and doc.get("message"):
            return str(doc["message"])[:1000]
    return reason or ""
