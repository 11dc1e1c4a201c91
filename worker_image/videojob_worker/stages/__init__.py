"""The five stages, each a function of a `StageContext`, in pipeline order.

A stage returns None, or a JSON-able result the CLI writes as the termination message
(publish: uri, bytes, md5, crc32c).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from videojob_worker.context import StageContext
from videojob_worker.stages import keyframes, plan, publish, segments, stitch

StageResult = dict[str, Any] | None

STAGES: dict[str, Callable[[StageContext], StageResult]] = {
    "plan": plan.run,
    "keyframes": keyframes.run,
    "segments": segments.run,
    "stitch": stitch.run,
    "publish": publish.run,
}
