"""What a stage function gets: the spec, storage, a private workspace, progress and the
cancellation flag. Stage functions take a `StageContext` and nothing else, and return a
`StageResult`, so the CLI, the local runner and the tests drive them the same way."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from videojob_common.pipeline import Obj, Stage
from videojob_worker.artifacts import ArtifactLayout
from videojob_worker.cancellation import Cancellation
from videojob_worker.environment import Identity
from videojob_worker.ffmpeg import Frame, as_frame
from videojob_worker.logs import get_logger
from videojob_worker.plan import Plan
from videojob_worker.progress import ProgressReporter
from videojob_worker.spec import VideoSpec
from videojob_worker.storage import ObjectNotFound, Storage

# What a stage function returns: None, or the JSON document the runner writes as the termination
# message (publish's uri, bytes and checksums).
StageResult = Obj | None


@dataclass
class StageContext:
    identity: Identity
    stage: Stage
    spec: VideoSpec
    layout: ArtifactLayout
    storage: Storage
    workspace: Path
    progress: ProgressReporter
    cancellation: Cancellation
    index: int | None = None  # segments: the Job's completion index
    output_uri: str | None = None
    attempt: int | None = None
    # VIDEOJOB_SCENES: the scenes this Job renders (keyframes draws them, segments' completion
    # index k renders scenes[k]); None: all of them, each segments index its own scene.
    scenes: tuple[int, ...] | None = None
    # The local file of each output the stage rendered, by scene (None for plan and stitch),
    # kept until the stage returns: the cache entries are written from these bytes
    # (cache_writer.py). A stage records an output once its own artifact is uploaded.
    outputs: dict[int | None, Path] = field(default_factory=dict)

    @property
    def log(self) -> logging.Logger:
        return get_logger()

    @property
    def scene(self) -> int:
        """segments: the scene this pod renders."""
        assert self.index is not None, f"{self.stage} has no completion index"
        return self.index if self.scenes is None else self.scenes[self.index]

    def renders(self, scene: int) -> bool:
        """keyframes: whether this Job draws scene `scene`."""
        return self.scenes is None or scene in self.scenes

    def read_plan(self) -> Plan:
        return Plan.from_json(self.read_artifact(self.layout.plan).decode())

    def read_artifact(self, uri: str) -> bytes:
        """An earlier stage's output. Missing is not the user's fault: the operator runs stages
        in order, so it is transient (a retry after a storage hiccup, or an operator bug)."""
        try:
            return self.storage.read_bytes(uri)
        except ObjectNotFound:
            raise RuntimeError(f"{uri} is missing: has the previous stage run?") from None

    def read_keyframe(self, index: int, plan: Plan) -> Frame:
        uri = self.layout.keyframe(index)
        image = cv2.imdecode(np.frombuffer(self.read_artifact(uri), np.uint8), cv2.IMREAD_COLOR)
        if image is None or image.shape != (plan.height, plan.width, 3):
            raise RuntimeError(f"{uri} is not a {plan.width}x{plan.height} image")
        return as_frame(image)


@contextlib.contextmanager
def workspace(stage: Stage, cancellation: Cancellation,
              parent: Path | None = None) -> Iterator[Path]:
    """A private temporary directory for the stage, removed however the stage ends (also by
    the cancellation watchdog)."""
    path = Path(tempfile.mkdtemp(prefix=f"videojob-{stage}-", dir=parent))

    def remove() -> None:
        shutil.rmtree(path, ignore_errors=True)

    with cancellation.cleanup(remove):
        try:
            yield path
        finally:
            remove()
