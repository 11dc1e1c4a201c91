"""Which http(s) inputs a stage pod may fetch, decided before any connection is made.

The operator passes the administrator's policy in `VIDEOJOB_HTTP_INPUTS` (JSON: `enabled`,
`hosts`, `max_bytes`, `timeout_seconds`, and `allow_networks`, CIDRs an administrator permits
although they are private, e.g. an internal asset server). Without it, http(s) inputs are off.

A URL passes when its host is listed (exactly, `*.domain` for the domain's subdomains, `*` for
any: a local `videojob-worker run`'s default) and
every address the host resolves to is a public one: no loopback, private, link-local (the cloud
metadata servers among them), shared, multicast, reserved or unspecified address, IPv4 mapped
into IPv6 included, unless it lies in `allow_networks` (the check is
videojob_common.addresses', which the operator's webhook notifications use too). The
connection then goes to the address that was checked (no second lookup a DNS answer could
change), and a redirect is checked the same way before it is followed. A URL that does not pass
fails exactly as a server that refuses the connection does: "unreachable", with no detail, so
status cannot serve as a port scanner.
Pure: the resolver is a parameter.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from videojob_common.addresses import (
    AddressRefused,
    IPAddress,
    Network,
    Resolver,
    allowed,
    checked_address,
    public,
    system_resolver,
)

__all__ = ["ENV", "MAX_REDIRECTS", "FetchPolicy", "Resolver", "Target", "Unreachable", "public",
           "system_resolver", "target"]

ENV = "VIDEOJOB_HTTP_INPUTS"
MAX_REDIRECTS = 3


class Unreachable(Exception):
    """The one answer for a URL the policy refuses and for a server that cannot be reached."""


@dataclass(frozen=True)
class FetchPolicy:
    enabled: bool = False
    hosts: tuple[str, ...] = ()
    allow_networks: tuple[Network, ...] = field(default=())
    max_bytes: int = 50 * 1024 * 1024
    timeout_seconds: float = 30.0

    @classmethod
    def from_json(cls, text: str | None) -> FetchPolicy:
        """The policy from `VIDEOJOB_HTTP_INPUTS`; off when it is unset or unreadable."""
        try:
            doc = json.loads(text) if text else {}
            return cls(enabled=bool(doc.get("enabled", False)),
                       hosts=tuple(str(h).lower().rstrip(".") for h in doc.get("hosts", [])),
                       allow_networks=tuple(ipaddress.ip_network(n, strict=False)
                                            for n in doc.get("allow_networks", [])),
                       max_bytes=int(doc.get("max_bytes", cls.max_bytes)),
                       timeout_seconds=float(doc.get("timeout_seconds", cls.timeout_seconds)))
        except (ValueError, TypeError, AttributeError):
            return cls()

    def host_listed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(h == "*" or host == h or (h.startswith("*.") and host.endswith(h[1:]))
                   for h in self.hosts)

    def address_allowed(self, address: IPAddress) -> bool:
        return allowed(address, self.allow_networks)


@dataclass(frozen=True)
class Target:
    """Where to connect: the URL's parts and the one address that was checked."""

    scheme: str
    host: str
    port: int
    address: str
    path: str  # path and query, as sent in the request line


def target(url: str, policy: FetchPolicy, resolve: Resolver = system_resolver) -> Target:
    """The checked address to fetch `url` from; Unreachable if the policy refuses it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not policy.enabled:
        raise Unreachable(url)
    if parts.username or parts.password or not policy.host_listed(parts.hostname):
        raise Unreachable(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        # Every address must pass: a name that also resolves to 127.0.0.1 is not a public name.
        address = checked_address(parts.hostname, port, policy.allow_networks, resolve)
    except AddressRefused:
        raise Unreachable(url) from None
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return Target(parts.scheme, parts.hostname, port, address, path)
