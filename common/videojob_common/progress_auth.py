"""Signed progress reports: a worker may publish its own namespace's progress and no other's.

Every stage pod can reach Redis (it needs the password to publish), so anyone who runs a pod
could otherwise write any VideoJob's `status.message`. Each report is signed instead:

- The operator holds a master key (the chart's Secret; docs/tenancy.md). A namespace's token is
  HMAC-SHA256(master key, "videojob-progress-namespace:" + name + "/" + the namespace's uid), so
  the operator never stores one: it derives it again to check a report. The uid makes a
  namespace deleted and made again (for another tenant, perhaps) a new token.
- The operator writes the token into one Secret in each namespace it runs VideoJobs in
  (`secret_name`, immutable, owned by the chart's ClusterRole, so gone on uninstall) before
  the first stage Job there, and the stage pods read it from there (`TOKEN_ENV`, an optional
  reference: a pod whose Secret is gone still runs, its reports are then dropped). The token
  never appears in a Job's spec, in status, Events or logs. One Secret a namespace, not one a
  VideoJob: the per-VideoJob Secret was one write in twelve of a VideoJob's life, and it kept
  nothing from anyone who can run a pod in the namespace, who could mount any VideoJob's
  Secret there.
- A worker publishes `{"report": "<the report's JSON text>", "sig": "<hex HMAC-SHA256(token,
  that text)>"}` (docs/contract.md). The text is signed as sent, so no canonical form is
  needed, in any language.
- The operator drops a report whose signature does not verify for the namespace the report
  names, one for a VideoJob of another namespace than the one it names (store.Store), and one
  older than the last it took for the same pod slot (a replay: store.Store.observe_progress).
- Pods of VideoJobs started before the namespace tokens carry their VideoJob's own token,
  HMAC-SHA256(master key, "videojob-progress:" + uid) (`token_for`); those still count.

A pod in namespace A holds only A's token: it cannot forge B's reports.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

TOKEN_ENV = "VIDEOJOB_PROGRESS_TOKEN"
SECRET_KEY = "token"  # the key of the token in the namespace's Secret
_CONTEXT = b"videojob-progress:"
_NAMESPACE_CONTEXT = b"videojob-progress-namespace:"


def _mac(key: bytes, text: bytes) -> str:
    return hmac.new(key, text, hashlib.sha256).hexdigest()


def secret_name(master: bytes) -> str:
    """The name of the namespaces' token Secret under this master key: a new key (rotated, or
    one made up at a start without one) names a new Secret, never the one holding a token of the
    old key (it is immutable, and the operator cannot read it)."""
    return "videojob-progress-" + _mac(master, b"videojob-progress-secret-name")[:10]


def namespace_token(master: bytes, namespace: str, namespace_uid: str) -> str:
    """The token of the namespace `namespace` whose uid is `namespace_uid` (64 hex digits)."""
    return _mac(master, _NAMESPACE_CONTEXT + f"{namespace}/{namespace_uid}".encode())


def token_for(master: bytes, uid: str) -> str:
    """The token of the VideoJob `uid` (64 hex digits): what pods of VideoJobs started before
    the namespace tokens sign with."""
    return _mac(master, _CONTEXT + uid.encode())


def tokens_for_report(master: bytes, namespace_uids: Mapping[str, str],
                      doc: dict[str, Any]) -> Iterator[str]:
    """The tokens a report may be signed with, each derived only when asked for (`opened`
    stops at the first that verifies): its namespace's (when that namespace is known), then its
    VideoJob's own."""
    namespace = doc["namespace"]
    known = namespace_uids.get(namespace)
    if known:
        yield namespace_token(master, namespace, known)
    yield token_for(master, doc["uid"])


def signed(token: str, report: str) -> str:
    """The message a worker publishes for `report` (JSON text)."""
    sig = _mac(token.encode(), report.encode())
    return json.dumps({"report": report, "sig": sig}, separators=(",", ":"))


def opened(message: bytes | str,
           tokens: Callable[[dict[str, Any]], Iterable[str]]) -> dict[str, Any] | None:
    """The report a message carries, if it is signed with one of the tokens `tokens` gives for
    it (it names a uid and a namespace, both strings); None for anything else (unsigned,
    forged, malformed)."""
    try:
        envelope = json.loads(message)
        report, sig = envelope["report"], envelope["sig"]
        if not isinstance(report, str) or not isinstance(sig, str):
            return None
        doc = json.loads(report)
        if not isinstance(doc, dict) or not all(
                isinstance(doc.get(k), str) for k in ("uid", "namespace")):
            return None
    except (ValueError, KeyError, TypeError):
        return None
    text = report.encode()
    if any(hmac.compare_digest(_mac(t.encode(), text), sig) for t in tokens(doc)):
        return doc
    return None
