"""The C heap under the operator: fewer malloc arenas, and free memory handed back.

The operator's threads (API calls, watches) each parse megabytes of JSON now and then: a page
of a listing, a burst of watch events. glibc gives each thread that contends for the heap an
arena of its own (up to eight per core), and an arena keeps what it once held. With 1,500
VideoJobs the operator held 322 MB with glibc's defaults and 228 MB with two arenas
(`MALLOC_ARENA_MAX=2`, same session; docs/benchmarks.md). Two arenas: the main thread's and one
for all others; the threads hold the GIL for most of what they allocate anyway.

`trim` gives the free pages of every arena back to the system (malloc_trim). The store's
resync calls it after each round of listings, the largest transient allocations the operator
makes.

Both are no-ops where the C library is not glibc (the operator's image is Debian's).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

ARENAS = 2
# A buffer this large or larger (a listing's page, a burst of events) is mapped on its own and
# unmapped when freed. glibc's default raises this threshold to the largest buffer freed so far,
# and the next ones then stay in the arenas.
MMAP_THRESHOLD = 128 * 1024
M_ARENA_MAX, M_MMAP_THRESHOLD = -8, -3  # mallopt's parameter numbers (malloc.h)


def _libc() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _libc()


def cap_arenas(arenas: int = ARENAS) -> bool:
    """Caps glibc's malloc arenas and fixes its mmap threshold, each unless the environment
    already sets it ($MALLOC_ARENA_MAX, $MALLOC_MMAP_THRESHOLD_). Call it before any thread
    starts. True if the arena cap is set."""
    mallopt = getattr(_LIBC, "mallopt", None)
    if mallopt is None:
        return False
    if not os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    return not os.environ.get("MALLOC_ARENA_MAX") and mallopt(M_ARENA_MAX, arenas) == 1


def trim() -> bool:
    """Hands the free pages of every arena back to the system. True if any were."""
    malloc_trim = getattr(_LIBC, "malloc_trim", None)
    return bool(malloc_trim is not None and malloc_trim(0) == 1)
