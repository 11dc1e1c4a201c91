"""Whether a `gs://` or `file://` URI could mean another place than it appears to: the one rule
the operator's storage policy (what a VideoJob may read and write) and the gateway's uploads and
downloads both apply, so a URI one accepts the other reads the same way."""

from __future__ import annotations

from urllib.parse import SplitResult


def ambiguous(uri: str, parts: SplitResult) -> str | None:
    """Why `uri` (a gs:// or file:// URI, split as `parts`) is ambiguous, or None."""
    if "%" in uri or "\\" in uri:
        return "escapes (%XX) and backslashes are not allowed"
    if parts.query or parts.fragment:
        return "a gs:// or file:// URI has no query or fragment"
    segments = parts.path.split("/")[1:]
    if any(s in (".", "..") for s in segments) or "" in segments[:-1]:
        return "'.', '..' and empty path segments are not allowed"
    if parts.scheme == "file" and parts.netloc:
        return "a file:// URI has no host (file:///path)"
    return None
