"""The termination message: the one line the operator copies into the VideoJob's status.

Kubernetes reads at most 4096 bytes of `terminationMessagePath`, so the text is cut to fit. A pod
run outside Kubernetes usually cannot write /dev/termination-log; that is not an error (the reason
is also logged).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from videojob_common.pipeline import Obj

MAX_BYTES = 4096


def write_message(path: Path, text: str) -> bool:
    """Write `text` as one line to the termination log; False if it could not be written."""
    return _write(path, " ".join(text.split()).encode())


def write_result(path: Path, result: Obj) -> bool:
    """Write a stage's result as a JSON object (publish: uri, bytes, md5, crc32c)."""
    return _write(path, json.dumps(result, separators=(",", ":")).encode())


def _write(path: Path, data: bytes) -> bool:
    data = data[:MAX_BYTES]
    try:
        # O_TRUNC: a retried container in the same pod must not append to the last reason.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError:
        return False
    try:
        os.write(fd, data)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True

