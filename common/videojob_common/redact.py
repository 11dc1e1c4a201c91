"""Secrets kept out of logs: a URL as it may be logged."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HIDDEN = "***"
_SECRET_PARAMS = {"password", "pass", "pwd", "token", "secret", "key", "access_token"}


def redact_url(url: str) -> str:
    """The URL with its password (`redis://:pw@host`, `redis://user:pw@host`) and any secret
    query parameter (`?password=`) replaced by ***; other URLs unchanged."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return HIDDEN  # not a URL we can read: show none of it
    netloc = parts.netloc
    if password is not None:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{HIDDEN}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode([(k, HIDDEN if k.lower() in _SECRET_PARAMS else v)
                               for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
