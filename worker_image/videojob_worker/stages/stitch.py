"""stitch: the segments joined in order, with the audio track, into `stitch/video.mp4`.

The segments share one encoder configuration and already contain the transitions, so their
H.264 streams are joined as they are (ffmpeg's concat demuxer, stream copy): no second
generation of compression and no full-length encode in a single pod. The audio (optional) is
decoded, padded with silence or cut to the video's length, and encoded as AAC. `+faststart`
moves the index (moov atom) to the front so a browser starts playing before the download ends.

With `spec.narration` (#28) stitch reads the cue sheet (`narrate/cues.json`): a scene that
narrate extended is re-encoded with its frame before the outgoing transition held for the
extension (the only segments re-encoded), the soundtrack is the voice over the ducked music,
loudness-normalised (mixing.py), and captions are a `mov_text` track plus `stitch/video.vtt`
(`track`) or drawn into the frames (`burned`: libass' `subtitles` filter; the whole video is
re-encoded). Without narration nothing here changes.
"""

from __future__ import annotations

import re
from pathlib import Path

from videojob_worker import cues, ffmpeg, inputs, mixing, transitions
from videojob_worker.artifacts import scene_file
from videojob_worker.context import StageContext, StageResult
from videojob_worker.plan import Plan, Scene
from videojob_worker.spec import Narration

AUDIO_BITRATE = "192k"
AUDIO_RATE = 48000


def concat_list(paths: list[Path]) -> str:
    # The concat demuxer's quoting: single quotes, with ' written as '\''.
    return "".join("file '" + str(p).replace("'", "'\\''") + "'\n" for p in paths)


def check_output(path: Path, plan: Plan, audio: bool, frames_expected: int | None = None,
                 subtitles: bool = False) -> None:
    """The video must have exactly the frames of the plan (plus narration's extensions);
    anything else is a bug here."""
    info = ffmpeg.probe(path, count_packets=True)
    video = [s for s in info["streams"] if s.get("codec_type") == "video"]
    if len(video) != 1 or video[0].get("codec_name") != "h264":
        raise RuntimeError(f"stitched file has video streams {video!r}")
    frames = int(video[0].get("nb_read_packets", -1))
    expected = plan.total_frames if frames_expected is None else frames_expected
    if frames != expected:
        raise RuntimeError(f"stitched video has {frames} frames, not {expected}")
    if audio and not any(s.get("codec_type") == "audio" for s in info["streams"]):
        raise RuntimeError("stitched file lost its audio stream")
    if subtitles and not any(s.get("codec_name") == "mov_text" for s in info["streams"]):
        raise RuntimeError("stitched file lost its caption track")


def run(ctx: StageContext) -> StageResult:
    if ctx.spec.narration is not None:
        return run_narrated(ctx, ctx.spec.narration)
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


# --- narration (#28) ---

def hold_frame(plan: Plan, scene: Scene) -> int:
    """The frame of `scene` an extension holds: the last one before its outgoing transition, so
    the held picture is the scene's own, not half the next one."""
    outgoing = 0
    if scene.index < len(plan.scenes) - 1:
        if plan.transition == "crossfade":
            outgoing = plan.transition_frames
        elif plan.transition == "fade":
            outgoing = transitions.fade_frames(plan)[0]
    return max(0, scene.frames - outgoing - 1)


def hold_graph(frames: int, hold: int, extra: int) -> str:
    """A segment of `frames` frames with frame `hold` repeated `extra` more times (`[v]`)."""
    if hold >= frames - 1:
        return f"[0:v]tpad=stop_mode=clone:stop={extra}[v]"
    return (f"[0:v]split=2[a][b];"
            f"[a]trim=end_frame={hold + 1},setpts=PTS-STARTPTS,"
            f"tpad=stop_mode=clone:stop={extra}[h];"
            f"[b]trim=start_frame={hold + 1},setpts=PTS-STARTPTS[t];"
            f"[h][t]concat=n=2:v=1:a=0[v]")


def reencode_args(fps: int) -> list[str]:
    """The segments' encoder settings for frames that already are yuv420p BT.709 (a held
    segment, burned captions): without the colour conversion, whose `-vf` cannot be combined
    with a `-filter_complex` feeding the same stream."""
    args = ffmpeg.video_encoder_args(fps)
    at = args.index("-vf")
    return args[:at] + args[at + 2:]


_SAFE_PATH = re.compile(r"^[A-Za-z0-9/._-]+$")


def subtitles_filter(path: Path) -> str:
    """libass' `subtitles` filter on `path`. The workspace's path (TMPDIR, mkdtemp) holds no
    character the filter graph would need escaped; refuse rather than mis-escape one."""
    if not _SAFE_PATH.match(str(path)):
        raise RuntimeError(f"cannot pass {path} to the subtitles filter unescaped")
    return f"subtitles=filename={path}"


def run_narrated(ctx: StageContext, narration: Narration) -> StageResult:
    plan = ctx.read_plan()
    sheet = cues.CueSheet.from_json(ctx.read_artifact(ctx.layout.cues).decode())
    count = len(plan.scenes)
    duration = sheet.duration_seconds
    steps = count + 2
    clips = []
    for scene, cue in zip(plan.scenes, sheet.cues, strict=True):
        ctx.progress.update(scene.index, steps, f"segment {scene.index + 1}/{count}")
        path = ctx.workspace / scene_file(scene.index, "mp4")
        ctx.storage.download(ctx.layout.segment(scene.index), path)
        if cue.extension_frames:
            held = ctx.workspace / f"held-{scene_file(scene.index, 'mp4')}"
            graph = hold_graph(scene.frames, hold_frame(plan, scene), cue.extension_frames)
            ffmpeg.run(["-i", str(path), "-filter_complex", graph, "-map", "[v]", "-an",
                        *reencode_args(plan.fps), str(held)], ctx.cancellation)
            path = held
        clips.append(path)
    listing = ctx.workspace / "segments.txt"
    listing.write_text(concat_list(clips))

    ctx.progress.update(count, steps, "voice")
    args = ["-f", "concat", "-safe", "0", "-i", str(listing)]
    inputs_used = 1
    music_input = None
    if ctx.spec.audio:
        audio_path = ctx.workspace / "audio.input"
        inputs.fetch_audio(ctx.storage, ctx.spec.audio, audio_path, ctx.cancellation)
        args += ["-i", str(audio_path)]
        music_input, inputs_used = inputs_used, inputs_used + 1
    spoken = sheet.spoken()
    speech_inputs = []
    for cue in spoken:
        wav = ctx.workspace / scene_file(cue.index, "wav")
        ctx.storage.download(ctx.layout.narration(cue.index), wav)
        args += ["-i", str(wav)]
        speech_inputs.append(inputs_used)
        inputs_used += 1
    graph = mixing.audio_graph(spoken, speech_inputs, music_input, duration,
                               narration.volume, narration.music_duck)
    video_map = "0:v:0"
    video_codec = ["-c:v", "copy"]
    if narration.captions == "burned":
        captions = ctx.workspace / "captions.srt"
        captions.write_text(cues.srt(sheet))
        graph += f";[0:v]{subtitles_filter(captions)}[vout]"
        video_map = "[vout]"
        video_codec = reencode_args(plan.fps)
    vtt = None
    caption_args: list[str] = []
    if narration.captions == "track":
        vtt = ctx.workspace / "video.vtt"
        vtt.write_text(cues.webvtt(sheet))
        args += ["-i", str(vtt)]
        caption_args = ["-map", f"{inputs_used}:s:0", "-c:s", "mov_text"]
        if narration.language and len(narration.language) == 3:
            # MP4 tags a track with an ISO 639-2 code ("eng"); ffmpeg drops any other form.
            caption_args += ["-metadata:s:s:0", f"language={narration.language}"]
    args += ["-filter_complex", graph, "-map", video_map, "-map", "[aout]", *caption_args]
    output = ctx.workspace / "video.mp4"
    args += [*video_codec, "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE),
             "-ac", "2", "-movflags", "+faststart", str(output)]

    def muxed(block: dict[str, str]) -> None:
        raw = block.get("out_time_us", "N/A")
        done = int(raw) / 1e6 if raw not in ("N/A", "") else 0.0
        share = min(1.0, max(0.0, done / duration))
        ctx.progress.update(count + 1, steps, f"mixing {done:.1f}/{duration:.1f} s",
                            percent=100.0 * (count + 1 + share) / steps)

    ffmpeg.run(args, ctx.cancellation, on_progress=muxed)
    check_output(output, plan, audio=True, frames_expected=sheet.total_frames,
                 subtitles=vtt is not None)
    ctx.storage.upload(output, ctx.layout.video, "video/mp4")
    if vtt is not None:
        ctx.storage.upload(vtt, ctx.layout.captions, "text/vtt")
    else:
        # A cache entry holds one artifact: a video whose captions live in a file beside it
        # (captions: track) is not cached as a whole, or a reuse would lose the WebVTT file.
        ctx.outputs[None] = output
    ctx.log.info("stitched %d segments with narration, %d frames (+%d held)", count,
                 sheet.total_frames, sheet.total_extension_frames,
                 extra={"frames": sheet.total_frames, "bytes": output.stat().st_size})
    ctx.progress.finish(steps, f"{sheet.total_frames} frames, {duration:.2f} s, narrated")
    return None
