"""stitch: the segments joined in order, with the audio track, into `stitch/video.mp4`.

The segments share one encoder configuration and already contain the transitions, so their
H.264 streams are joined as they are (ffmpeg's concat demuxer, stream copy): no second
generation of compression and no full-length encode in a single pod. The audio (optional) is
decoded, padded with silence or cut to the video's length, and encoded as AAC. `+faststart`
moves the index (moov atom) to the front so a browser starts playing before the download ends.
"""

from __future__ import annotations

from pathlib import Path

from videojob_worker import ffmpeg, inputs
from videojob_worker.artifacts import scene_file
from videojob_worker.context import StageContext, StageResult
from videojob_worker.plan import Plan

AUDIO_BITRATE = "192k"
AUDIO_RATE = 48000


def concat_list(paths: list[Path]) -> str:
    # The concat demuxer's quoting: single quotes, with ' written as '\''.
    return "".join("file '" + str(p).replace("'", "'\\''") + "'\n" for p in paths)


def check_output(path: Path, plan: Plan, audio: bool) -> None:
    """The video must have exactly the frames of the plan; anything else is a bug here."""
    info = ffmpeg.probe(path, count_packets=True)
    video = [s for s in info["streams"] if s.get("codec_type") == "video"]
    if len(video) != 1 or video[0].get("codec_name") != "h264":
        raise RuntimeError(f"stitched file has video streams {video!r}")
    frames = int(video[0].get("nb_read_packets", -1))
    if frames != plan.total_frames:
        raise RuntimeError(f"stitched video has {frames} frames, not {plan.total_frames}")
    if audio and not any(s.get("codec_type") == "audio" for s in info["streams"]):
        raise RuntimeError("stitched file lost its audio stream")


def run(ctx: StageContext) -> StageResult:
    plan = ctx.read_plan()
    count = len(plan.scenes)
    duration = plan.total_frames / plan.fps
    steps = count + 2  # downloads, audio, mux
    clips = []
    for scene in plan.scenes:
        ctx.progress.update(scene.index, steps, f"segment {scene.index + 1}/{count}")
        path = ctx.workspace / scene_file(scene.index, "mp4")
        ctx.storage.download(ctx.layout.segment(scene.index), path)
        clips.append(path)
    listing = ctx.workspace / "segments.txt"
    listing.write_text(concat_list(clips))

    args = ["-f", "concat", "-safe", "0", "-i", str(listing)]
    audio_uri = ctx.spec.audio
    if audio_uri:
        ctx.progress.update(count, steps, "audio")
        audio_path = ctx.workspace / "audio.input"
        inputs.fetch_audio(ctx.storage, audio_uri, audio_path, ctx.cancellation)
        seconds = f"{duration:.6f}"
        args += ["-i", str(audio_path), "-map", "0:v:0", "-map", "1:a:0",
                 # Pad with silence, then cut: the track ends with the last frame.
                 "-af", f"apad=whole_dur={seconds},atrim=end={seconds}",
                 "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "2"]
    else:
        args += ["-map", "0:v:0"]
    output = ctx.workspace / "video.mp4"
    args += ["-c:v", "copy", "-movflags", "+faststart", str(output)]

    def muxed(block: dict[str, str]) -> None:
        done = int(block.get("out_time_us", "0") or 0) / 1e6 if block.get(
            "out_time_us", "N/A") != "N/A" else 0.0
        share = min(1.0, max(0.0, done / duration))
        ctx.progress.update(count + 1, steps, f"muxing {done:.1f}/{duration:.1f} s",
                            percent=100.0 * (count + 1 + share) / steps)

    ffmpeg.run(args, ctx.cancellation, on_progress=muxed)
    check_output(output, plan, audio=bool(audio_uri))
    ctx.storage.upload(output, ctx.layout.video, "video/mp4")
    ctx.outputs[None] = output
    ctx.log.info("stitched %d segments, %d frames", count, plan.total_frames,
                 extra={"frames": plan.total_frames, "bytes": output.stat().st_size})
    ctx.progress.finish(steps, f"{plan.total_frames} frames, {duration:.2f} s")
    return None
