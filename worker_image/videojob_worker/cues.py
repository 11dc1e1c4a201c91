"""The cue sheet (`narration/cues.json`): when each scene's line is spoken in the final video,
how much it was sped up, and how much its scene grew to hold it (#28).

Pure arithmetic over the real durations of the rendered lines, so the rule is tested without
audio:

- a line no longer than its scene is spoken as it is, from the scene's first frame;
- a longer one is sped up (ffmpeg `atempo`) just enough to fit, up to `MAX_SPEEDUP` (1.25x);
- past that, `fit: fail` refuses, naming the scene; `fit: speedup` keeps 1.25x and extends the
  scene by whole frames, holding the frame before its outgoing transition (stitch), so every
  later scene starts later and the video grows by the sum of the extensions.

Times are seconds on the final timeline. Captions (WebVTT, SRT) are rendered from the same cues.
"""

from __future__ import annotations

import math
import re

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from videojob_worker.errors import PermanentError
from videojob_worker.plan import Plan
from videojob_worker.spec import Fit

CUES_VERSION = 1
MAX_SPEEDUP = 1.25  # faster than this, espeak-ng's and most voices' speech stops being clear


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True,
                              extra="forbid")


class Cue(_Model):
    index: int  # the scene
    text: str
    scene_start: float  # the scene on the final timeline, extension included
    scene_end: float
    speech_start: float  # the line, as sped up
    speech_end: float
    spoken_seconds: float  # as the voice rendered it, before any speed-up
    speed: float  # atempo factor, 1 to MAX_SPEEDUP
    extension_frames: int  # frames held to make room for the line
    extension_seconds: float


class CueSheet(_Model):
    version: int = CUES_VERSION
    fps: int
    total_frames: int  # of the final video: the plan's plus the extensions
    duration_seconds: float
    total_extension_frames: int
    total_extension_seconds: float
    cues: list[Cue]

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CueSheet:
        return cls.model_validate_json(text)

    def spoken(self) -> list[Cue]:
        """The cues with something said (an empty line is a silent scene)."""
        return [c for c in self.cues if c.text.strip() and c.speech_end > c.speech_start]


def speed_for(spoken: float, scene: float, fit: Fit, index: int) -> float:
    """The atempo factor for a line lasting `spoken` s over a scene of `scene` s."""
    if spoken <= scene:
        return 1.0
    if spoken <= scene * MAX_SPEEDUP:
        return spoken / scene
    if fit == "fail":
        raise PermanentError(
            f"scene {index}: its narration lasts {spoken:.2f} s, {spoken / MAX_SPEEDUP:.2f} s at "
            f"{MAX_SPEEDUP:g}x, longer than the scene's {scene:.2f} s (spec.narration.fit is "
            "fail: shorten the line, raise spec.narration.rate or lengthen the video)")
    return MAX_SPEEDUP


def extension_frames(spoken: float, scene: float, fps: int) -> int:
    """Whole frames the scene needs to hold a line of `spoken` s (after speed-up). Half a frame
    of overhang is tolerated: atempo lands within a few milliseconds of the asked length."""
    return max(0, math.ceil((spoken - scene) * fps - 0.5))


def cue_sheet(plan: Plan, texts: list[str], spoken: list[float]) -> CueSheet:
    """Place each line at its scene's start. `spoken[i]`: the real duration of line i as it will
    be mixed (after speed-up, measured)."""
    fps = plan.fps
    cues: list[Cue] = []
    shift = 0  # frames every later scene moves by
    for scene, text, seconds in zip(plan.scenes, texts, spoken, strict=True):
        extra = extension_frames(seconds, scene.frames / fps, fps) if text.strip() else 0
        start = (scene.frame_start + shift) / fps
        cues.append(Cue(index=scene.index, text=text, scene_start=start,
                        scene_end=(scene.frame_end + shift + extra) / fps,
                        speech_start=start, speech_end=start + seconds if text.strip() else start,
                        spoken_seconds=seconds, speed=1.0, extension_frames=extra,
                        extension_seconds=extra / fps))
        shift += extra
    total = plan.total_frames + shift
    return CueSheet(fps=fps, total_frames=total, duration_seconds=total / fps,
                    total_extension_frames=shift, total_extension_seconds=shift / fps, cues=cues)


def with_speeds(sheet: CueSheet, raw: list[float], speeds: list[float]) -> CueSheet:
    """Record each line's duration before the speed-up and the factor applied."""
    cues = [c.model_copy(update={"spoken_seconds": r, "speed": s})
            for c, r, s in zip(sheet.cues, raw, speeds, strict=True)]
    return sheet.model_copy(update={"cues": cues})


# --- captions ---

def _caption_text(text: str) -> str:
    # One line of plain text: a blank line would end a WebVTT cue, < & are markup in both
    # formats, and > escaped keeps "-->" from reading as a timing line.
    text = " ".join(text.split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _timestamp(seconds: float, separator: str) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{separator}{ms:03d}"


def webvtt(sheet: CueSheet) -> str:
    """The spoken lines as WebVTT (W3C): one cue per line, timed to the speech."""
    blocks = ["WEBVTT\n"]
    for n, cue in enumerate(sheet.spoken(), 1):
        blocks.append(f"{n}\n{_timestamp(cue.speech_start, '.')} --> "
                      f"{_timestamp(cue.speech_end, '.')}\n{_caption_text(cue.text)}\n")
    return "\n".join(blocks)


def srt(sheet: CueSheet) -> str:
    """The same cues as SubRip, which the `subtitles` filter (libass) burns in."""
    return "\n".join(
        f"{n}\n{_timestamp(c.speech_start, ',')} --> {_timestamp(c.speech_end, ',')}\n"
        f"{_caption_text(c.text)}\n" for n, c in enumerate(sheet.spoken(), 1))


_VTT_TIMING = re.compile(r"^(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3}) --> "
                         r"(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})$")


def parse_webvtt(text: str) -> list[tuple[float, float, str]]:
    """A strict reader of what `webvtt` writes: (start, end, text) per cue. Raises ValueError
    on anything else (tests, and a check before upload)."""
    if not text.startswith("WEBVTT\n"):
        raise ValueError("no WEBVTT header")
    cues: list[tuple[float, float, str]] = []
    for block in text.split("\n\n")[1:]:
        lines = block.strip("\n").split("\n")
        if not block.strip():
            continue
        if len(lines) != 3 or not lines[0].isdigit():
            raise ValueError(f"malformed cue {block!r}")
        timing = _VTT_TIMING.match(lines[1])
        if not timing:
            raise ValueError(f"malformed timing {lines[1]!r}")
        g = [int(x) for x in timing.groups()]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        if end < start or (cues and start < cues[-1][0]):
            raise ValueError(f"cue {lines[0]} goes back in time")
        cues.append((start, end, lines[2]))
    return cues
