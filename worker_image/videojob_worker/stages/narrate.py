"""narrate: each scene's line spoken, `narrate/scene-NNN.wav`, and the cue sheet,
`narrate/cues.json` (#28).

Reads only the plan (scene frames, fps and, with `fromPlan`, the lines), so it can run beside
keyframes and segments. Each line goes through the TTS backend (tts.py), is measured (ffprobe),
sped up when longer than its scene (cues.speed_for: up to 1.25x; past that the scene is
extended, or with `fit: fail` the stage refuses naming the scene), then measured again: cue
times come from the real durations of what stitch will mix. The WAVs are 48 kHz mono PCM,
written bit-exact (no encoder tag), so a re-run writes the same bytes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from videojob_worker import cues, ffmpeg, tts
from videojob_worker.artifacts import scene_file
from videojob_worker.context import StageContext, StageResult
from videojob_worker.errors import PermanentError
from videojob_worker.mixing import AUDIO_RATE
from videojob_worker.plan import Scene

LINES_AT_ONCE = 4


@dataclass(frozen=True)
class Spoken:
    raw: float  # seconds as the voice said it
    speed: float  # the tempo it was fitted with
    seconds: float  # seconds after fitting: what stitch mixes
    path: Path | None  # the WAV; None for a silent scene


def duration(path: Path) -> float:
    """Seconds of audio in `path`, as ffprobe reads its header."""
    info = ffmpeg.probe(path)
    return float(info["format"]["duration"])


def run(ctx: StageContext) -> StageResult:
    narration = ctx.spec.narration
    if narration is None:
        raise PermanentError("spec.narration is not set: there is nothing to narrate")
    plan = ctx.read_plan()
    texts = (list(narration.lines) if narration.lines is not None
             else [s.narration or "" for s in plan.scenes])
    backend = tts.load(narration.backend)
    tts.check_voice(backend, narration.voice)
    voice = tts.Voice(name=narration.voice, rate=narration.rate, language=narration.language)
    total = len(plan.scenes)
    fps = plan.fps

    def speak(scene: Scene, text: str) -> Spoken:
        """One scene's line rendered, fitted and measured (a silent scene: nothing)."""
        ctx.cancellation.check()
        if not text.strip():
            return Spoken(raw=0.0, speed=1.0, seconds=0.0, path=None)
        said = ctx.workspace / f"said-{scene_file(scene.index, 'wav')}"
        backend.synthesize(text, voice, said, ctx.cancellation)
        raw = duration(said)
        speed = cues.speed_for(raw, scene.frames / fps, narration.fit, scene.index)
        out = ctx.workspace / scene_file(scene.index, "wav")
        tempo = f",atempo={speed:.6f}" if speed != 1.0 else ""
        ffmpeg.run(["-i", str(said), "-af", f"aresample={AUDIO_RATE}{tempo}", "-ac", "1",
                    "-c:a", "pcm_s16le", "-map_metadata", "-1", "-fflags", "+bitexact",
                    "-flags:a", "+bitexact", str(out)], ctx.cancellation)
        return Spoken(raw=raw, speed=speed, seconds=duration(out), path=out)

    # The lines are independent and each is a few short processes (TTS, ffprobe, ffmpeg):
    # rendered side by side, in scene order in the results, so the bytes are the same.
    with ThreadPoolExecutor(max_workers=LINES_AT_ONCE) as pool:
        results = []
        for scene, result in zip(plan.scenes, pool.map(speak, plan.scenes, texts),
                                 strict=True):
            ctx.progress.update(scene.index + 1, total, f"line {scene.index + 1}/{total}")
            if result.path is not None:
                ctx.storage.upload(result.path, ctx.layout.narration(scene.index), "audio/wav")
            results.append(result)
    raw_seconds = [r.raw for r in results]
    speeds = [r.speed for r in results]
    spoken = [r.seconds for r in results]
    sheet = cues.with_speeds(cues.cue_sheet(plan, texts, spoken), raw_seconds, speeds)
    ctx.storage.write_bytes(ctx.layout.cues, sheet.to_json().encode(), ctx.workspace,
                            "application/json")
    ctx.log.info("narrated %d scenes; the video grows by %.3f s", total,
                 sheet.total_extension_seconds,
                 extra={"extensionSeconds": sheet.total_extension_seconds,
                        "durationSeconds": sheet.duration_seconds})
    ctx.progress.finish(total, f"{total} lines, +{sheet.total_extension_seconds:.2f} s")
    return {"durationSeconds": sheet.duration_seconds,
            "extensionSeconds": sheet.total_extension_seconds}
