"""Where in storage the gateway may read and write: the operator's storage root, each
namespace's lane under it (`<root>/<namespace>/`), and the uploads folder in each lane
(`<root>/<namespace>/_uploads/<upload id>/`). Pure.

The lane is the operator's rule (videojob_operator.storage_policy, docs/tenancy.md): a VideoJob
writes only under its namespace's prefix and reads inputs from there (or from prefixes the
administrator lists). The gateway keeps to the same lanes with its own storage credentials:
uploads go only under `<root>/<ns>/_uploads/`, and a download is served only from under
`<root>/<ns>/`, whatever a VideoJob's status says (anyone who may patch the status subresource
could write any URI there).

`_uploads` cannot be a VideoJob's name (names are DNS subdomains: no `_`), so the uploads folder
never shares a path with a VideoJob's artifacts (`<root>/<ns>/<name>/<uid>/`).

The URI checks share the operator's rule (`videojob_common.storage_uris`), with a few of the
gateway's own on top (gs:// and file:// only, a bucket, no control characters);
tests/gateway/test_layout.py runs both on the same URIs.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from videojob_common.storage_uris import ambiguous

UPLOADS = "_uploads"
Scheme = Literal["file", "gs"]
SCHEMES: tuple[Scheme, ...] = ("file", "gs")
# A namespace's name: an RFC 1123 label (what the API server allows).
_NAMESPACE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# What this gateway makes: <UTC date>-<UTC time>-<64 random bits>, sortable by age.
_UPLOAD_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{16}")


def unclean(uri: str) -> str | None:
    """Why a gs:// or file:// URI could mean another place than it appears to, or None."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return f"{uri!r} is not a URI"
    if parts.scheme not in SCHEMES:
        return f"{parts.scheme or '(no scheme)'}:// is not gs:// or file://"
    problem = ambiguous(uri, parts)
    if problem:
        return problem
    if parts.scheme == "gs" and not parts.netloc:
        return "a gs:// URI names its bucket (gs://bucket/path)"
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in uri):
        return "control characters and spaces are not allowed"
    return None


def valid_namespace(namespace: str) -> bool:
    return _NAMESPACE.fullmatch(namespace) is not None


def valid_upload_id(upload_id: str) -> bool:
    return _UPLOAD_ID.fullmatch(upload_id) is not None


def new_upload_id(now: datetime, token: str | None = None) -> str:
    """`20261206-111915-3f9c2a1b7d4e5f60`: when (UTC), and 64 random bits so that nobody finds
    an upload they were not told of."""
    return f"{now:%Y%m%d-%H%M%S}-{token or secrets.token_hex(8)}"


@dataclass(frozen=True)
class StorageRoot:
    """The operator's `storage_root` (`file:///path` or `gs://bucket/prefix`), as the gateway is
    given it with `--storage-root`."""

    uri: str  # without a trailing '/'

    @classmethod
    def parse(cls, uri: str) -> StorageRoot:
        trimmed = uri.rstrip("/")
        problem = unclean(trimmed + "/")
        if problem:
            raise ValueError(f"storage root {uri!r}: {problem}")
        if urlsplit(trimmed).scheme == "file" and not urlsplit(trimmed).path:
            raise ValueError(f"storage root {uri!r}: the file system's root is not a storage root")
        return cls(trimmed)

    @property
    def scheme(self) -> Scheme:
        return "gs" if self.uri.startswith("gs://") else "file"

    def lane(self, namespace: str) -> str:
        """`<root>/<namespace>/`: everything of the namespace."""
        if not valid_namespace(namespace):
            raise ValueError(f"{namespace!r} is not a namespace name")
        return f"{self.uri}/{namespace}/"

    def uploads(self, namespace: str) -> str:
        """`<root>/<namespace>/_uploads/`: the gateway writes nowhere else."""
        return f"{self.lane(namespace)}{UPLOADS}/"

    def upload(self, namespace: str, upload_id: str) -> str:
        if not valid_upload_id(upload_id):
            raise ValueError(f"{upload_id!r} is not an upload id")
        return f"{self.uploads(namespace)}{upload_id}/"

    def parts(self, uri: str) -> list[str]:
        """The path segments of `uri` below the root (`uri` must be under it)."""
        if not uri.startswith(self.uri + "/"):
            raise ValueError(f"{uri} is not under {self.uri}/")
        return uri[len(self.uri) + 1:].split("/")

    def outside(self, uri: str, namespace: str) -> str | None:
        """Why the gateway will not read `uri` for `namespace` (a VideoJob's output), or None."""
        problem = unclean(uri)
        if problem:
            return f"{uri}: {problem}"
        lane = self.lane(namespace)
        if not uri.startswith(lane) or uri == lane or uri.endswith("/"):
            return f"{uri} is not a file under {lane}"
        return None
