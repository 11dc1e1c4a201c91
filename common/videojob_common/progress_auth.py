"""Signed progress reports: a worker may publish its own VideoJob's progress and no other's.

Every stage pod can reach Redis (it needs the password to publish), so anyone who runs a pod
could otherwise write any VideoJob's `status.message`. Each report is signed instead:

- The operator holds a master key (the chart's Secret; docs/tenancy.md). A VideoJob's token is
  HMAC-SHA256(master key, "videojob-progress:" + uid), so the operator never stores one: it
  derives it again to check a report.
- The operator writes the token into a Secret it owns in the VideoJob's namespace (owned by the
  VideoJob, gone with it) before the first stage Job, and the stage pods read it from there
  (`TOKEN_ENV`, an optional reference: a pod whose Secret is gone still runs, its reports are
  then dropped). The token never appears in a Job's spec, in status, Events or logs.
- A worker publishes `{"report": "<the report's JSON text>", "sig": "<hex HMAC-SHA256(token,
  that text)>"}` (docs/contract.md). The text is signed as sent, so no canonical form is
  needed, in any language.
- The operator drops a report whose signature does not verify for the uid the report names, and
  one older than the last it took for the same pod slot (a replay: store.Store.observe_progress).

A pod of VideoJob A holds only A's token: it cannot forge B's reports, in its namespace or
another.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

TOKEN_ENV = "VIDEOJOB_PROGRESS_TOKEN"
SECRET_KEY = "token"  # the key of the token in the VideoJob's Secret
_CONTEXT = b"videojob-progress:"


def _mac(key: bytes, text: bytes) -> str:
    return hmac.new(key, text, hashlib.sha256).hexdigest()


def token_for(master: bytes, uid: str) -> str:
    """The token of the VideoJob `uid` (64 hex digits)."""
    return _mac(master, _CONTEXT + uid.encode())


def signed(token: str, report: str) -> str:
    """The message a worker publishes for `report` (JSON text)."""
    sig = _mac(token.encode(), report.encode())
    return json.dumps({"report": report, "sig": sig}, separators=(",", ":"))


def opened(master: bytes, message: bytes | str) -> dict[str, Any] | None:
    """The report a message carries, if its signature is the token's of the uid it names;
    None for anything else (unsigned, forged, malformed)."""
    try:
        envelope = json.loads(message)
        report, sig = envelope["report"], envelope["sig"]
        if not isinstance(report, str) or not isinstance(sig, str):
            return None
        doc = json.loads(report)
        uid = doc.get("uid") if isinstance(doc, dict) else None
        if not isinstance(uid, str):
            return None
    except (ValueError, KeyError, TypeError):
        return None
    expected = _mac(token_for(master, uid).encode(), report.encode())
    return doc if hmac.compare_digest(expected, sig) else None
