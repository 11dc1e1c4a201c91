"""Where a VideoJob may write and read: each namespace in its own lane of the storage.

- Outputs and artifacts are written only under the namespace's prefix of the storage root,
  `<storage_root>/<namespace>/`: `spec.output.uri` elsewhere is refused, and so is one in
  the namespace's cache (`<storage_root>/<namespace>/.cache/`).
- `gs://` and `file://` inputs (`spec.images`, `spec.audio`) are read only from that prefix or
  from prefixes the administrator lists for the namespace (`read_prefixes`, "*" for all).
- `http(s)://` inputs only when the administrator enables them (`http_inputs`), and only from
  the hosts listed there; the worker checks each address it connects to (no private, link-local
  or metadata address, no redirect that leaves the list: videojob_worker.fetch_policy).

A gs:// or file:// URI with a `.` or `..` segment, an empty segment or a percent escape in its
path is refused outright: no spelling of a path leaves a prefix it appears to be under. Pure;
the planner refuses a spec that breaks a rule (InvalidSpec, naming the field) before any stage
runs.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from videojob_common.cache_entries import CACHE_DIR
from videojob_common.storage_uris import ambiguous

STORAGE_SCHEMES = ("gs", "file")
HTTP_INPUTS_ENV = "VIDEOJOB_HTTP_INPUTS"  # the policy, as JSON, in stage pods that may fetch
HTTP_SCHEMES = ("http", "https")


class HttpInputs(BaseModel):
    """http(s) inputs: off unless enabled, then only from these hosts."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    # Host names, exact (`images.example.com`) or a domain's subdomains (`*.example.com`).
    hosts: list[str] = Field(default_factory=list)
    max_bytes: int = Field(50 * 1024 * 1024, ge=1)
    timeout_seconds: float = Field(30.0, gt=0)
    # Networks (CIDRs) the worker may fetch from although they are not public, e.g. an internal
    # asset server's; loopback, link-local and the metadata servers are refused otherwise.
    allow_networks: list[str] = Field(default_factory=list)

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(n, strict=False)) for n in networks]

    @field_validator("hosts")
    @classmethod
    def _lower(cls, hosts: list[str]) -> list[str]:
        return [h.strip().lower().rstrip(".") for h in hosts if h.strip()]

    def allows(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == h or (h.startswith("*.") and host.endswith(h[1:]))
                   for h in self.hosts)


def valid_prefix(prefix: str) -> str:
    """A read prefix as configured: gs:// or file://, ending in '/', clean (ValueError if not)."""
    problem = _unclean(prefix)
    if problem or urlsplit(prefix).scheme not in STORAGE_SCHEMES or not prefix.endswith("/"):
        raise ValueError(f"{prefix!r}: a read prefix is gs://bucket/path/ or file:///path/ "
                         "(ending in '/', no '.', '..' or escapes)")
    return prefix


def namespace_prefix(storage_root: str, namespace: str) -> str:
    return f"{storage_root.rstrip('/')}/{namespace}/"


def problems(output_uri: str | None, images: list[str], audio: str | None, *,
             storage_root: str, namespace: str, read_prefixes: dict[str, list[str]],
             http: HttpInputs) -> list[str]:
    """What breaks the rules, one line per field (`spec.images[2]: ...`); [] when nothing."""
    own = namespace_prefix(storage_root, namespace)
    readable = [own, *read_prefixes.get("*", []), *read_prefixes.get(namespace, [])]
    out = []
    if output_uri is not None:
        problem = (_unclean(output_uri) or _outside(output_uri, [own], "written")
                   or _in_cache(output_uri, own))
        if problem:
            out.append(f"spec.output.uri: {problem}")
    inputs = [(f"spec.images[{i}]", uri) for i, uri in enumerate(images)]
    if audio is not None:
        inputs.append(("spec.audio", audio))
    for field, uri in inputs:
        problem = _unclean(uri) or _unreadable(uri, readable, http)
        if problem:
            out.append(f"{field}: {problem}")
    return out


def _in_cache(uri: str, own: str) -> str | None:
    """The namespace's cache (cache_entries.CACHE_DIR) is the operator's and its stage pods'
    to write, entry by entry after checking the bytes: an output there could pose as an
    entry."""
    if uri.startswith(f"{own}{CACHE_DIR}/"):
        return f"{uri} is in the namespace's cache ({own}{CACHE_DIR}/), which only the " \
               "pipeline writes"
    return None


def _unreadable(uri: str, readable: list[str], http: HttpInputs) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme in HTTP_SCHEMES:
        if not http.enabled:
            return "http(s) inputs are not enabled on this cluster (operator configuration " \
                   "http_inputs)"
        if not http.allows(parts.hostname or ""):
            return f"host {parts.hostname!r} is not among the hosts inputs may come from " \
                   "(operator configuration http_inputs.hosts)"
        return None
    return _outside(uri, readable, "read")


def _outside(uri: str, prefixes: list[str], verb: str) -> str | None:
    scheme = urlsplit(uri).scheme
    if scheme not in STORAGE_SCHEMES:
        return f"{scheme}:// cannot be {verb} here"
    if any(uri.startswith(p) for p in prefixes):
        return None
    listed = ", ".join(prefixes)
    return f"{uri} is outside what this namespace may have {verb} (under {listed})"


def _unclean(uri: str) -> str | None:
    """Why a URI's path could mean something else than it appears to, or None."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return f"{uri!r} is not a URI"
    if parts.scheme not in STORAGE_SCHEMES:
        return None  # http(s): what matters is the host (_unreadable, and the worker's check)
    return ambiguous(uri, parts)
