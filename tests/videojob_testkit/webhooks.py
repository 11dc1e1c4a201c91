"""A webhook receiver for the tests: a threaded HTTP server on 127.0.0.1 that records every
request it gets, answers as a test scripts it, and checks Standard Webhooks signatures the way a
receiver would, with hmac directly (not with the operator's code)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

TOLERANCE = 300  # seconds a receiver accepts a webhook-timestamp off its clock (the usual 5 min)


def new_secret() -> str:
    """A Standard Webhooks signing secret: whsec_ and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> bool:
    """What a receiver checks: one of the `v1` signatures is HMAC-SHA256 over
    `<webhook-id>.<webhook-timestamp>.<body>` with the secret's key, and the timestamp is within
    the tolerance."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > TOLERANCE:
        return False
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body,
                                         hashlib.sha256).digest()).decode()
    offered = [s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split()
               if s.startswith("v1,")]
    return any(hmac.compare_digest(expected, s) for s in offered)


@dataclass(frozen=True)
class Delivery:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived
    answered: int

    @property
    def id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def doc(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """Records requests; `script[path]` lists the status codes to answer there, in turn, for
    each webhook-id (200 once they run out)."""

    script: dict[str, list[int]] = field(default_factory=dict)
    got: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                path = self.path.split("?")[0]
                with receiver.lock:
                    earlier = sum(1 for d in receiver.got
                                  if d.path == path and d.id == headers.get("webhook-id"))
                    answers = receiver.script.get(path, [])
                    code = answers[earlier] if earlier < len(answers) else 200
                    receiver.got.append(Delivery(path, headers, body, time.time(), code))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def at(self, path: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.got if d.path == path]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
