"""The C heap settings (heap.py) on this machine's glibc: the arena cap takes, unless the
environment already sets it, and a trim runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from videojob_operator import heap


def run(code: str, **env: str) -> str:
    """`code` in a fresh interpreter (the cap must come before any thread), its output."""
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", **env}).stdout.strip()


@pytest.mark.skipif(heap._LIBC is None or not hasattr(heap._LIBC, "mallopt"),
                    reason="not glibc")
def test_the_arena_cap_takes_unless_the_environment_sets_one() -> None:
    code = "from videojob_operator import heap; print(heap.cap_arenas())"
    assert run(code) == "True"
    assert run(code, MALLOC_ARENA_MAX="4") == "False"


@pytest.mark.skipif(heap._LIBC is None or not hasattr(heap._LIBC, "malloc_trim"),
                    reason="not glibc")
def test_a_trim_hands_back_what_was_freed_below_a_live_block() -> None:
    """20 MB freed in the middle of the heap (a live block above it) stays mapped until the
    trim hands it back."""
    code = """if True:
        import ctypes
        from videojob_operator import heap
        def rss():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) // 1024
        heap._LIBC.malloc.restype = ctypes.c_void_p
        heap._LIBC.free.argtypes = [ctypes.c_void_p]
        blocks = [heap._LIBC.malloc(100_000) for _ in range(200)]
        for b in blocks:
            ctypes.memset(b, 1, 100_000)
        for b in blocks[:-1]:
            heap._LIBC.free(b)
        before = rss()
        heap.trim()
        print(before - rss())"""
    assert int(run(code)) >= 15  # MB handed back
