"""http(s) inputs within the administrator's policy (fetch_policy.py).

The address filter is tested as a pure function with an injected resolver: no test sends a
packet to a link-local, metadata, private or public address. The fetches go to servers this test
starts on loopback addresses (127.0.0.1, 127.0.0.2), which record every request they receive.
"""

from __future__ import annotations

import http.server
import ipaddress
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from videojob_testkit.processes import free_port
from videojob_testkit.worker import write_image
from videojob_worker import inputs
from videojob_worker.errors import PermanentError
from videojob_worker.fetch_policy import FetchPolicy, Unreachable, public, target
from videojob_worker.retry import RetryPolicy
from videojob_worker.storage import Storage, Web

LISTED = FetchPolicy(enabled=True, hosts=("images.example.com", "*.cdn.example.net",
                                          "127.0.0.1", "127.0.0.2", "localhost"))


def resolver(answers: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        if host in answers:
            return answers[host]
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            raise OSError(f"no such host {host}") from None
    return resolve


@pytest.mark.parametrize("address", [
    "127.0.0.1", "::1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "100.64.0.1",  # private
    "169.254.169.254", "fe80::1", "fd00:ec2::254", "100.100.100.200",  # link-local, metadata
    "0.0.0.0", "::", "224.0.0.1", "ff02::1", "240.0.0.1", "255.255.255.255",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "2002:7f00:1::1", "2001:0:4136:e378::1",
    "192.0.2.10", "fc00::1",
])
def test_no_address_that_is_not_public_passes(address: str) -> None:
    assert not public(ipaddress.ip_address(address))
    resolve = resolver({"images.example.com": [address]})
    with pytest.raises(Unreachable):
        target("https://images.example.com/a.png", LISTED, resolve)


def test_a_public_address_of_a_listed_host_passes_and_is_the_one_connected_to() -> None:
    resolve = resolver({"images.example.com": ["93.184.215.14"],
                        "eu.cdn.example.net": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"]})
    t = target("https://images.example.com:8443/a.png?v=2", LISTED, resolve)
    assert (t.scheme, t.host, t.port, t.address, t.path) == (
        "https", "images.example.com", 8443, "93.184.215.14", "/a.png?v=2")
    assert target("http://eu.cdn.example.net/b", LISTED, resolve).port == 80


@pytest.mark.parametrize("url", [
    "https://other.example.com/a.png",  # not listed
    "https://images.example.com.evil.net/a.png",
    "https://cdn.example.net/a.png",  # *.cdn.example.net is its subdomains only
    "https://user:pw@images.example.com/a.png",
    "ftp://images.example.com/a.png",
    "https://rebind.example.com/a.png",
])
def test_only_listed_hosts_whose_every_address_is_public(url: str) -> None:
    policy = FetchPolicy(enabled=True, hosts=(*LISTED.hosts, "rebind.example.com"))
    # One public and one private answer: the name is not a public one.
    resolve = resolver({"images.example.com": ["93.184.215.14"],
                        "rebind.example.com": ["93.184.215.14", "127.0.0.1"]})
    with pytest.raises(Unreachable):
        target(url, policy, resolve)


def test_off_unless_enabled_and_an_allowed_network_is_the_administrators_choice() -> None:
    resolve = resolver({})
    with pytest.raises(Unreachable):
        target("http://127.0.0.1/a.png", FetchPolicy(hosts=("127.0.0.1",)), resolve)
    assert FetchPolicy.from_json(None) == FetchPolicy() and not FetchPolicy().enabled
    assert FetchPolicy.from_json("not json") == FetchPolicy()
    permitted = FetchPolicy.from_json('{"enabled": true, "hosts": ["127.0.0.1"], '
                                      '"allow_networks": ["127.0.0.0/8"]}')
    assert target("http://127.0.0.1/a.png", permitted, resolve).address == "127.0.0.1"


class Recorder(http.server.BaseHTTPRequestHandler):
    """Serves files from `folder`; `/go?to=URL` redirects; records every request."""

    folder: Path
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.path.startswith("/go?to="):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/go?to="))
            self.end_headers()
            return
        path = self.folder / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[dict[str, tuple[str, list[str]]]]:
    """Recording servers on 127.0.0.1 and 127.0.0.2: {address: (base URL, requests seen)}."""
    out, running = {}, []
    for address in ("127.0.0.1", "127.0.0.2"):
        seen: list[str] = []
        handler = type("Handler", (Recorder,), {"folder": tmp_path, "seen": seen})
        server = http.server.ThreadingHTTPServer((address, 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        running.append(server)
        out[address] = (f"http://{address}:{server.server_address[1]}", seen)
    write_image(tmp_path / "a.png", 64, 64, (0, 0, 200))
    yield out
    for server in running:
        server.shutdown()
        server.server_close()


def fetch(policy: FetchPolicy, url: str) -> None:
    store = Storage(policy=RetryPolicy(attempts=2, initial_delay=0.01),
                    backends={"http": Web(policy)})
    inputs.fetch_image(store, url, "images[0]")


def test_a_loopback_server_is_refused_and_sees_no_request(
        servers: dict[str, tuple[str, list[str]]]) -> None:
    base, seen = servers["127.0.0.1"]
    port = base.rsplit(":", 1)[1]
    for url in (f"{base}/a.png", f"http://localhost:{port}/a.png"):
        with pytest.raises(PermanentError) as refused:
            fetch(LISTED, url)
        assert str(refused.value) == f"images[0] ({url}) is unreachable"
    assert seen == []
    # The administrator permits the network: the same server is reached.
    fetch(FetchPolicy(enabled=True, hosts=("127.0.0.1",),
                      allow_networks=(ipaddress.ip_network("127.0.0.1/32"),)), f"{base}/a.png")
    assert seen == ["/a.png"]


def test_filtered_and_refused_read_the_same(servers: dict[str, tuple[str, list[str]]]) -> None:
    permitted = FetchPolicy(enabled=True, hosts=("127.0.0.1",),
                            allow_networks=(ipaddress.ip_network("127.0.0.0/8"),))
    closed = f"http://127.0.0.1:{free_port()}/a.png"  # nothing listens there
    filtered = f"{servers['127.0.0.1'][0]}/a.png"
    messages = []
    for policy, url in ((permitted, closed), (LISTED, filtered)):
        with pytest.raises(PermanentError) as e:
            fetch(policy, url)
        messages.append(str(e.value).replace(url, "URL"))
    assert messages[0] == messages[1] == "images[0] (URL) is unreachable"


def test_a_redirect_cannot_leave_the_policy(servers: dict[str, tuple[str, list[str]]]) -> None:
    first, seen_first = servers["127.0.0.1"]
    second, seen_second = servers["127.0.0.2"]
    only_first = FetchPolicy(enabled=True, hosts=("127.0.0.1", "127.0.0.2"),
                             allow_networks=(ipaddress.ip_network("127.0.0.1/32"),))
    with pytest.raises(PermanentError, match="is unreachable"):
        fetch(only_first, f"{first}/go?to={second}/a.png")
    assert seen_first == [f"/go?to={second}/a.png"] and seen_second == []
    # Within the policy, a redirect is followed.
    fetch(only_first, f"{first}/go?to={first}/a.png")
    assert seen_first[-1] == "/a.png"


def test_size_is_capped(servers: dict[str, tuple[str, list[str]]]) -> None:
    base, _ = servers["127.0.0.1"]
    small = FetchPolicy(enabled=True, hosts=("127.0.0.1",), max_bytes=100,
                        allow_networks=(ipaddress.ip_network("127.0.0.1/32"),))
    with pytest.raises(PermanentError, match=r"images\[0\] \(.*\): is larger than 100 bytes"):
        fetch(small, f"{base}/a.png")
