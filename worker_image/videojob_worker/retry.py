"""Retries with exponential backoff for transient storage and network errors.

The stage retries inside the pod first (cheap: no new pod, no image pull); only when the error
outlives `RetryPolicy.attempts` does it exit 1 and let the Job retry the pod.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from videojob_worker.cancellation import Cancellation
from videojob_worker.errors import Cancelled, PermanentError, TransientError
from videojob_worker.logs import get_logger

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    initial_delay: float = 0.5
    max_delay: float = 8.0
    multiplier: float = 2.0
    # Spread retries of the many segment pods of one VideoJob so they do not hit storage in step.
    jitter: float = 0.25

    def delay(self, retry: int) -> float:
        base = min(self.max_delay, self.initial_delay * self.multiplier ** retry)
        return base * (1 + self.jitter * (2 * random.random() - 1))


DEFAULT_POLICY = RetryPolicy()


def with_retries(action: Callable[[], T], what: str, is_transient: Callable[[BaseException], bool],
                 policy: RetryPolicy = DEFAULT_POLICY,
                 cancellation: Cancellation | None = None) -> T:
    """Run `action`; retry errors `is_transient` accepts; other errors pass through unchanged.

    After the last attempt a transient error becomes `TransientError` naming `what`.
    """
    log = get_logger()
    for attempt in range(1, policy.attempts + 1):
        if cancellation is not None:
            cancellation.check()
        try:
            return action()
        except (PermanentError, TransientError, Cancelled):
            raise
        except Exception as err:
            if not is_transient(err):
                raise
            if attempt == policy.attempts:
                raise TransientError(f"{what}: {err} (after {attempt} attempts)") from err
            delay = policy.delay(attempt - 1)
            log.warning("retrying %s in %.1f s: %s", what, delay, err,
                        extra={"retry": attempt, "error": type(err).__name__})
            if cancellation is not None:
                cancellation.sleep(delay)
            else:
                time.sleep(delay)
    raise AssertionError("unreachable")
