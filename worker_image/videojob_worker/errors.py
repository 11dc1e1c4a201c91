"""The three ways a stage can end early, each mapped to one exit code of the contract.

- `PermanentError` (exit 42): the input or the parameters are wrong; retrying cannot help, so the
  operator fails the VideoJob at once (`podFailurePolicy` `FailJob`).
- `TransientError` (exit 1): storage or network trouble that outlived the in-stage retries; the
  Job retries the pod.
- `Cancelled` (exit 143): SIGTERM arrived; the stage cleaned up and stops.

Any other exception is a bug or a crash and also exits 1, so the Job retries it.
"""

from __future__ import annotations


class PermanentError(Exception):
    """Bad input or impossible parameters: the message says which, for the VideoJob's status."""


class TransientError(Exception):
    """A failure that may pass (storage, network): the pod should be retried."""


class Cancelled(Exception):
    """The stage was asked to stop (SIGTERM)."""

    def __init__(self, message: str = "stopped by SIGTERM") -> None:
        super().__init__(message)
