"""Which network addresses VideoJob's own connections may go to, checked before any is made.

Two parts of VideoJob connect to addresses a tenant names: stage pods fetching http(s) inputs
(videojob_worker.fetch_policy) and the operator sending webhook notifications
(videojob_operator.delivery). Both take a host name from a tenant and must not become a way into
the cluster's own network or the cloud's metadata server, so both use this one check:

- `public(address)`: a globally routable unicast address that is no metadata server's: no
  loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), shared (100.64/10), link-local (the
  169.254.169.254 metadata server among them), multicast, reserved or unspecified address, IPv4
  mapped into IPv6 and 6to4 included;
- `allowed(address, networks)`: public, or inside a network the administrator permits
  explicitly (an internal asset server's, a receiver inside the cluster);
- `checked_address(host, port, networks, resolve)`: every address the host resolves to must be
  allowed (a name that also resolves to 127.0.0.1 is not a public name), and the first one is
  the one to connect to;
- `PinnedHTTP`, `PinnedHTTPS`: connections to that checked address whatever the name resolves to
  a moment later (no second lookup a DNS answer could change), TLS still verified for the name.

Pure but for `system_resolver` and the connections: the resolver is a parameter, so the tests
never send a packet to any of the addresses they check.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

# Metadata servers that are not link-local everywhere (AWS's IPv6 one, Alibaba's is 100.100.x).
METADATA = (ipaddress.ip_network("fd00:ec2::254/128"), ipaddress.ip_network("100.100.100.200/32"))


class AddressRefused(Exception):
    """The host cannot be resolved, or resolves to an address that is not allowed."""


def public(address: IPAddress) -> bool:
    """A globally routable unicast address that is no metadata server's."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return public(mapped)
        if address.teredo is not None:
            return False
    if any(address in n for n in METADATA if n.version == address.version):
        return False
    return address.is_global and not (address.is_multicast or address.is_reserved
                                      or address.is_unspecified or address.is_link_local)


def allowed(address: IPAddress, networks: Iterable[Network]) -> bool:
    """Public, or in one of the networks an administrator allows although they are not."""
    if any(address in n for n in networks if n.version == address.version):
        return True
    return public(address)


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs as networks (ValueError for one that is not)."""
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def checked_address(host: str, port: int, allow: Iterable[Network],
                    resolve: Resolver = system_resolver) -> str:
    """The address to connect to for `host`: every address it resolves to is allowed, the first
    is returned. AddressRefused otherwise (no address, a lookup error, one address refused)."""
    allow = tuple(allow)
    try:
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in resolve(host, port)]
    except (OSError, ValueError, UnicodeError):
        raise AddressRefused(f"{host} cannot be resolved") from None
    if not addresses:
        raise AddressRefused(f"{host} has no address")
    if not all(allowed(a, allow) for a in addresses):
        raise AddressRefused(f"{host} resolves to an address that is not allowed")
    return str(addresses[0])


class PinnedHTTP(http.client.HTTPConnection):
    """A connection to the address that was checked, whatever the name resolves to now."""

    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class PinnedHTTPS(http.client.HTTPSConnection):
    """PinnedHTTP over TLS, the certificate verified for the host name."""

    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def pinned(scheme: str, address: str, host: str, port: int,
           timeout: float) -> http.client.HTTPConnection:
    """The pinned connection for an http or https URL's parts."""
    kind = PinnedHTTPS if scheme == "https" else PinnedHTTP
    return kind(address, host, port, timeout)
