"""Where each stage's artifacts live: `<root>/<namespace>/<name>/<uid>/<stage>/…` (contract).

The uid in the path keeps a VideoJob that is deleted and re-created under the same name from
reading its predecessor's artifacts.
"""

from __future__ import annotations

from dataclasses import dataclass

from videojob_common.pipeline import Stage
from videojob_worker.environment import Identity
from videojob_worker.storage import join


def scene_file(index: int, extension: str) -> str:
    """`scene-NNN.<ext>`: three digits, so a listing sorts in scene order."""
    return f"scene-{index:03d}.{extension}"


@dataclass(frozen=True)
class ArtifactLayout:
    root: str
    identity: Identity

    @property
    def prefix(self) -> str:
        return join(self.root, self.identity.namespace, self.identity.name, self.identity.uid)

    @property
    def plan(self) -> str:
        return join(self.prefix, Stage.PLAN, "plan.json")

    def keyframe(self, index: int) -> str:
        return join(self.prefix, Stage.KEYFRAMES, scene_file(index, "png"))

    def segment(self, index: int) -> str:
        return join(self.prefix, Stage.SEGMENTS, scene_file(index, "mp4"))

    @property
    def video(self) -> str:
        return join(self.prefix, Stage.STITCH, "video.mp4")

    # --- narration (#28) ---
    def narration(self, index: int) -> str:
        """A scene's line, spoken and sped up as it is mixed (48 kHz mono PCM WAV)."""
        return join(self.prefix, Stage.NARRATE, scene_file(index, "wav"))

    @property
    def cues(self) -> str:
        """When each line is spoken in the final video (cues.CueSheet, JSON)."""
        return join(self.prefix, Stage.NARRATE, "cues.json")

    @property
    def captions(self) -> str:
        """The narration's captions as WebVTT, next to the video (captions: track)."""
        return join(self.prefix, Stage.STITCH, "video.vtt")
