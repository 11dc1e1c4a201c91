"""The one kind of failure a subcommand reports: a sentence for the user, exit code 1.

kubectl prints failures as a single `error: …` line on stderr; `__main__` does the same for
`CommandError` and for the API server's own refusals, so scripts can rely on stdout holding only
results.
"""

from __future__ import annotations


class CommandError(Exception):
    """A failure to report to the user as one line on stderr (exit code 1)."""
