"""Progress: how far this pod's work is, published to Redis for the operator (contract, Progress).

Best effort by design. The frame loop only drops the newest update into a one-slot mailbox; a
background thread sends it. So a slow or dead Redis never slows a frame: with Redis down the
sender fails fast (short timeouts, no client-side retries) and then stays quiet for a cool-down
instead of trying again on every update.

Updates are throttled to about 4 a second, plus the first and the last, as the contract allows.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import IO, Protocol

from videojob_common.pipeline import Stage
from videojob_common.progress_auth import signed
from videojob_worker.environment import Identity
from videojob_worker.logs import get_logger

CHANNEL = "videojob:progress"
KEY_TTL_SECONDS = 24 * 3600
MIN_INTERVAL = 0.25  # at most ~4 updates a second
CONNECT_TIMEOUT = 0.25
COOL_DOWN = 5.0  # after a failure, skip Redis this long instead of failing on every update
CLOSE_TIMEOUT = 1.0  # how long the last update may hold up the end of a stage


@dataclass(frozen=True)
class ProgressUpdate:
    namespace: str
    name: str
    uid: str
    stage: str
    index: int | None
    attempt: int | None
    percent: float
    message: str
    done: int
    total: int
    ts: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @property
    def key(self) -> str:
        """`videojob:progress:<uid>:<stage>[:<index>]`: the latest value, for a restarted
        operator."""
        base = f"{CHANNEL}:{self.uid}:{self.stage}"
        return base if self.index is None else f"{base}:{self.index}"


class ProgressSink(Protocol):
    def send(self, update: ProgressUpdate) -> None: ...

    def close(self) -> None: ...


class RedisSink:
    """Publishes updates from a background thread; the caller never waits on Redis."""

    def __init__(self, url: str, connect_timeout: float = CONNECT_TIMEOUT,
                 cool_down: float = COOL_DOWN, close_timeout: float = CLOSE_TIMEOUT,
                 token: str | None = None) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.cool_down = cool_down
        self.close_timeout = close_timeout
        # The VideoJob's token signs every report; without one they go unsigned, and an
        # operator drops them (progress_auth.py): the stage runs all the same.
        self.token = token
        # No client-side retries: an update that does not go now is overtaken by the next one.
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=connect_timeout,
                                           socket_timeout=connect_timeout,
                                           retry=Retry(NoBackoff(), 0))
        self._slot: ProgressUpdate | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closing = False
        self._failed_until = 0.0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="progress-redis", daemon=True)
        self._thread.start()

    def send(self, update: ProgressUpdate) -> None:
        with self._lock:
            self._slot = update
            self._idle.clear()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                update, self._slot = self._slot, None
            if update is not None:
                self._publish(update)
            with self._lock:
                if self._slot is None:
                    self._idle.set()
                closing = self._closing and self._slot is None
            if closing:
                return

    def _publish(self, update: ProgressUpdate) -> None:
        if time.monotonic() < self._failed_until:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            payload = update.to_json()
            if self.token:
                payload = signed(self.token, payload)
            pipe.set(update.key, payload, ex=KEY_TTL_SECONDS)
            pipe.publish(CHANNEL, payload)
            pipe.execute()
        except Exception as err:
            self.failures += 1
            self._failed_until = time.monotonic() + self.cool_down
            if self.failures == 1:
                get_logger().warning("progress not published to Redis (%s); continuing without "
                                     "it for %.0f s", err, self.cool_down)

    def close(self) -> None:
        """Let the last update go out, waiting at most `close_timeout`."""
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(self.close_timeout)
        with contextlib.suppress(Exception):
            self._redis.close()


class PrintSink:
    """Progress as lines of text, for `videojob-worker run`."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def send(self, update: ProgressUpdate) -> None:
        where = update.stage if update.index is None else f"{update.stage} {update.index}"
        print(f"[{where}] {update.percent:5.1f}%  {update.message}", file=self.stream,
              flush=True)

    def close(self) -> None:
        pass


class ProgressReporter:
    """The stage's side: `update(done, total, message)` as often as it likes, throttled here."""

    def __init__(self, identity: Identity, stage: Stage, index: int | None, attempt: int | None,
                 sinks: list[ProgressSink], min_interval: float = MIN_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.identity = identity
        self.clock = clock
        self.stage = stage
        self.index = index
        self.attempt = attempt
        self.sinks = sinks
        self.min_interval = min_interval
        self._last_sent = -float("inf")
        self._sent_any = False

    def update(self, done: int, total: int, message: str, *, percent: float | None = None,
               force: bool = False) -> None:
        """Report `done` of `total` units; `percent` overrides done/total (a stage whose last
        step, such as an upload, is not counted in units)."""
        now = self.clock()
        if not (force or not self._sent_any or now - self._last_sent >= self.min_interval):
            return
        if percent is None:
            percent = 100.0 * done / total if total else 0.0
        update = ProgressUpdate(
            namespace=self.identity.namespace, name=self.identity.name, uid=self.identity.uid,
            stage=self.stage, index=self.index, attempt=self.attempt,
            percent=round(min(100.0, max(0.0, percent)), 1), message=message, done=done,
            total=total, ts=time.time())
        self._last_sent = now
        self._sent_any = True
        for sink in self.sinks:
            sink.send(update)

    def finish(self, total: int, message: str = "done") -> None:
        """The last update: 100%, always sent."""
        self.update(total, total, message, percent=100.0, force=True)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
