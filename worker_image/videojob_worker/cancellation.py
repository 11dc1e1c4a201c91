"""Cancellation: SIGTERM stops a stage at the next frame, within 2 seconds, leaving nothing behind.

Kubernetes sends SIGTERM when the VideoJob is deleted or suspended, or the node drains, and SIGKILL
after the grace period. The handler only sets a flag and stops child encoders, so the stage's
own loop raises `Cancelled` at the next frame and unwinds through its `finally` blocks, which
delete the temporary workspace and partial outputs.

A stage can be inside a call that does not look at the flag (an HTTP request to storage, say).
For that, a watchdog started by the signal runs the registered clean-ups itself and ends the
process with 143 after `GRACE_SECONDS`, keeping the 2-second promise of the contract.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from videojob_worker.errors import Cancelled

EXIT_CANCELLED = 143  # 128 + SIGTERM, what a shell reports for a process killed by SIGTERM
GRACE_SECONDS = 1.5


class Cancellation:
    """A cancellation flag with the clean-ups to run if the stage is stopped."""

    def __init__(self, grace_seconds: float | None = None) -> None:
        """`grace_seconds`: start the last-resort watchdog on cancellation (the CLI does; code
        running inside another program, such as a test, must not)."""
        self.grace_seconds = grace_seconds
        self._event = threading.Event()
        # Reentrant: the signal handler runs on the main thread, possibly while that thread holds
        # the lock (registering a clean-up); a plain Lock would deadlock there.
        self._lock = threading.RLock()
        self._cleanups: dict[int, Callable[[], None]] = {}
        self._processes: set[subprocess.Popen[bytes]] = set()
        self._next = 0
        self._watchdog: threading.Thread | None = None

    # --- the flag

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise `Cancelled` if a stop was requested; call once per frame or chunk."""
        if self._event.is_set():
            raise Cancelled()

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` (a retry backoff), waking at once on cancellation."""
        if self._event.wait(seconds):
            raise Cancelled()

    def cancel(self) -> None:
        """Request a stop: what the signal handler does, callable from tests and threads."""
        self._event.set()
        with self._lock:
            processes = list(self._processes)
            start_watchdog = self._watchdog is None and self.grace_seconds is not None
            if start_watchdog:
                self._watchdog = threading.Thread(target=self._last_resort, name="cancel-watchdog",
                                                  daemon=True)
        # Stopping the encoder unblocks a frame write that is waiting on a full pipe.
        for process in processes:
            with contextlib.suppress(OSError):
                process.kill()
        if start_watchdog and self._watchdog is not None:
            self._watchdog.start()

    # --- signals

    def install(self, signals: tuple[signal.Signals, ...] = (signal.SIGTERM,)) -> None:
        for signum in signals:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.cancel()

    # --- what to undo

    def on_cancel(self, cleanup: Callable[[], None]) -> int:
        """Register a clean-up (delete a temporary file, …); returns a handle for `discard`."""
        with self._lock:
            self._next += 1
            self._cleanups[self._next] = cleanup
            return self._next

    def discard(self, handle: int) -> None:
        with self._lock:
            self._cleanups.pop(handle, None)

    @contextlib.contextmanager
    def cleanup(self, action: Callable[[], None]) -> Iterator[None]:
        """Run `action` on cancellation while the block runs (the block undoes it otherwise)."""
        handle = self.on_cancel(action)
        try:
            yield
        finally:
            self.discard(handle)

    def track(self, process: subprocess.Popen[bytes]) -> None:
        """A child to kill on cancellation (encoders, ffprobe)."""
        with self._lock:
            self._processes.add(process)
        if self._event.is_set():
            with contextlib.suppress(OSError):
                process.kill()

    def untrack(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.discard(process)

    def run_cleanups(self) -> None:
        """Run every registered clean-up once, newest first; errors in one do not stop others."""
        with self._lock:
            cleanups = [self._cleanups.pop(k) for k in sorted(self._cleanups, reverse=True)]
            processes = list(self._processes)
        for process in processes:
            with contextlib.suppress(OSError):
                process.kill()
        for cleanup in cleanups:
            with contextlib.suppress(Exception):
                cleanup()

    def _last_resort(self) -> None:
        # Runs only if the main thread has not exited by then: it is stuck in a call that does
        # not look at the flag. Clean up from here and leave without unwinding it.
        threading.Event().wait(self.grace_seconds or 0)
        self.run_cleanups()
        os._exit(EXIT_CANCELLED)
