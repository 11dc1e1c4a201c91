"""Narration (#28): the cue timing, the mixing graph, the TTS backend, and a narrated video
rendered plan → keyframes → segments → narrate → stitch → publish, judged on the output MP4."""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from videojob_testkit.worker import probe, write_wav
from videojob_worker import backends, cues, mixing, tts
from videojob_worker.cancellation import Cancellation
from videojob_worker.environment import Identity
from videojob_worker.errors import PermanentError
from videojob_worker.local import stage_environments
from videojob_worker.plan import Plan
from videojob_worker.progress import ProgressUpdate
from videojob_worker.runner import EXIT_OK, EXIT_PERMANENT, execute
from videojob_worker.spec import parse_spec
from videojob_worker.stages.plan import make_plan
from videojob_worker.stages.stitch import hold_frame, hold_graph
from videojob_worker.storage import file_uri

LINES = ["Red sky.", "Blue sea.", "Green trees."]
BASE: dict[str, Any] = {"prompt": "A red sky. A blue sea. A green forest.", "scenes": 3,
                        "durationSeconds": 6, "fps": 8, "resolution": "64x36",
                        "transition": "crossfade"}


def plan_for(spec: dict[str, Any]) -> Plan:
    parsed = parse_spec(spec)
    return make_plan(parsed, backends.load(parsed.backend))


# --- cue timing (pure) ---

def test_a_line_that_fits_is_not_sped_up_and_a_longer_one_just_enough() -> None:
    assert cues.speed_for(1.5, 2.0, "speedup", 0) == 1.0
    assert cues.speed_for(2.4, 2.0, "speedup", 0) == pytest.approx(1.2)
    assert cues.speed_for(5.0, 2.0, "speedup", 0) == cues.MAX_SPEEDUP


def test_fit_fail_names_the_scene() -> None:
    with pytest.raises(PermanentError, match=r"^scene 2: .*spec\.narration\.fit is fail"):
        cues.speed_for(5.0, 2.0, "fail", 2)


def test_an_extension_moves_every_later_scene_and_grows_the_video() -> None:
    plan = plan_for(BASE)  # 3 scenes of 16 frames (2 s) at 8 fps
    sheet = cues.cue_sheet(plan, LINES, [1.0, 3.0, 0.5])  # scene 1's line overruns by 1 s
    one, two, three = sheet.cues
    assert (one.speech_start, one.speech_end, one.extension_frames) == (0.0, 1.0, 0)
    assert (two.scene_start, two.speech_end, two.extension_frames) == (2.0, 5.0, 8)
    assert two.scene_end == 5.0
    assert three.scene_start == three.speech_start == 5.0  # 4 s + the 1 s extension
    assert (sheet.total_extension_frames, sheet.total_extension_seconds) == (8, 1.0)
    assert (sheet.total_frames, sheet.duration_seconds) == (56, 7.0)
    # Less than half a frame over is not worth a frame.
    assert cues.extension_frames(2.0 + 0.4 / 8, 2.0, 8) == 0
    assert cues.extension_frames(2.0 + 0.6 / 8, 2.0, 8) == 1


def test_a_silent_scene_has_no_cue_and_no_extension() -> None:
    sheet = cues.cue_sheet(plan_for(BASE), ["Hello.", "  ", "Bye."], [1.0, 0.0, 1.0])
    assert [c.index for c in sheet.spoken()] == [0, 2]
    assert sheet.total_extension_frames == 0


def test_webvtt_is_strict_and_holds_the_speech_times() -> None:
    sheet = cues.cue_sheet(plan_for(BASE), ["A <b> & --> c", "two\n\nlines", "x"],
                           [1.0, 1.5, 0.25])
    text = cues.webvtt(sheet)
    parsed = cues.parse_webvtt(text)
    assert parsed == [(0.0, 1.0, "A &lt;b&gt; &amp; --&gt; c"), (2.0, 3.5, "two lines"),
                      (4.0, 4.25, "x")]
    assert "00:00:02,000 --> 00:00:03,500" in cues.srt(sheet)
    with pytest.raises(ValueError):
        cues.parse_webvtt(text.replace("00:00:02.000", "00:00:02,000"))


def test_ducking_lowers_the_music_by_music_duck_under_each_line() -> None:
    sheet = cues.cue_sheet(plan_for(BASE), LINES, [1.0, 1.0, 1.0])
    expr = mixing.duck_expression(sheet.spoken(), 12)
    assert mixing.duck_gain(12) == pytest.approx(0.2512, abs=1e-4)

    def gain(t: float) -> float:  # ffmpeg's clip/max, in Python
        py = expr.replace("clip", "_clip").replace("max", "_max")
        return float(eval(py, {"_clip": lambda x, a, b: min(max(x, a), b), "_max": max,
                               "t": t}))

    assert gain(0.5) == pytest.approx(mixing.duck_gain(12), abs=1e-5)  # under speech
    assert gain(1.8) == pytest.approx(1.0)  # between lines, after the release
    half_released = 1 - (1 - mixing.duck_gain(12)) * 0.5
    assert gain(1.2) == pytest.approx(half_released, abs=1e-5)
    assert mixing.duck_expression(sheet.spoken(), 0) == "1"


def test_the_mix_places_each_line_exactly_and_normalises_loudness() -> None:
    sheet = cues.cue_sheet(plan_for(BASE), LINES, [1.0, 1.0, 1.0])
    graph = mixing.audio_graph(sheet.spoken(), [2, 3, 4], 1, 6.0, 0.8, 12)
    assert "[3:a]" in graph and "adelay=delays=96000S:all=1" in graph  # 2 s at 48 kHz
    assert "amix=inputs=3:normalize=0" in graph and "volume=0.8," in graph
    assert "[1:a]" in graph and ":eval=frame[music]" in graph
    assert graph.endswith("[mix]loudnorm=I=-16:LRA=11:TP=-1.5,aresample=48000,"
                          "atrim=end=6.000000[aout]")
    assert "[music]" not in mixing.audio_graph(sheet.spoken(), [1, 2, 3], None, 6.0, 1, 12)


def test_an_extension_holds_the_frame_before_the_transition() -> None:
    plan = plan_for(BASE)  # crossfade of 4 frames (0.5 s)
    assert hold_frame(plan, plan.scenes[0]) == 16 - 4 - 1
    assert hold_frame(plan, plan.scenes[2]) == 15  # the last scene has no outgoing transition
    assert hold_graph(16, 15, 8) == "[0:v]tpad=stop_mode=clone:stop=8[v]"
    assert "trim=end_frame=12" in hold_graph(16, 11, 8)


# --- the TTS backend ---

def test_espeak_ng_is_deterministic(tmp_path: Path) -> None:
    backend = tts.load("espeak-ng")
    voice = tts.Voice(name="en", rate=170)
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    backend.synthesize("-v the same words", voice, a, Cancellation())
    backend.synthesize("-v the same words", voice, b, Cancellation())
    assert a.read_bytes() == b.read_bytes() and len(a.read_bytes()) > 1000


def test_a_missing_voice_names_the_field_and_lists_the_voices() -> None:
    with pytest.raises(PermanentError) as err:
        tts.check_voice(tts.load("espeak-ng"), "no-such-voice")
    message = str(err.value)
    assert message.startswith("spec.narration.voice 'no-such-voice' is not installed")
    assert re.search(r"installed: .*\ben\b.*\bfr\b", message)
    tts.check_voice(tts.load("espeak-ng"), "en+f3")  # a variant of an installed voice


def test_an_unknown_tts_backend_names_the_field() -> None:
    with pytest.raises(PermanentError, match=r"^spec\.narration\.backend 'nope' is not "):
        tts.load("nope")


def test_the_spec_names_each_bad_narration_field() -> None:
    with pytest.raises(PermanentError, match=r"spec\.narration: lines has 2 lines for 3"):
        parse_spec({**BASE, "narration": {"lines": ["a", "b"]}})
    with pytest.raises(PermanentError, match=r"spec\.narration\.rate"):
        parse_spec({**BASE, "narration": {"fromPlan": True, "rate": 1000}})
    with pytest.raises(PermanentError, match=r"spec\.narration\.voice"):
        parse_spec({**BASE, "narration": {"fromPlan": True, "voice": "-x"}})
    assert parse_spec(BASE).narration is None


# --- a narrated video, end to end ---

class Quiet:
    def send(self, update: ProgressUpdate) -> None:
        pass

    def close(self) -> None:
        pass


def run_pipeline(tmp: Path, spec: dict[str, Any]) -> tuple[int, Path, str]:
    parsed = parse_spec(spec)
    log = tmp / "termination-log"
    output = tmp / "out" / "video.mp4"
    output.parent.mkdir(parents=True, exist_ok=True)
    code = EXIT_OK
    for env in stage_environments(Identity("ns", "narrated", "uid"), parsed,
                                  file_uri(tmp / "artifacts"), file_uri(output), log):
        code = execute(env, Cancellation(), sinks=[Quiet()], log_level=logging.WARNING)
        if code != EXIT_OK:
            break
    return code, output, log.read_text() if log.exists() else ""


def speech_starts(video: Path) -> list[float]:
    """Where sound begins after silence, per ffmpeg's silencedetect on the file's audio."""
    out = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(video), "-map",
                          "0:a:0", "-af", "silencedetect=noise=-50dB:d=0.3", "-f", "null", "-"],
                         capture_output=True, text=True, check=True, timeout=60).stderr
    end = float(probe(video)["format"]["duration"])
    # A silence that ends with the file is not followed by speech.
    starts = [float(x) for x in re.findall(r"silence_end: ([\d.]+)", out)
              if float(x) < end - 0.1]
    first_silence = re.search(r"silence_start: ([\d.]+)", out)
    if first_silence is None or float(first_silence.group(1)) > 0.05:
        starts.insert(0, 0.0)  # sound from the very start
    return starts


@pytest.fixture(scope="module")
def narrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("narrated")
    spec = {**BASE, "narration": {"lines": LINES, "captions": "track", "language": "eng"}}
    code, output, message = run_pipeline(tmp, spec)
    assert code == EXIT_OK, message
    return tmp, output


def test_each_line_starts_within_100_ms_of_its_scene(narrated: tuple[Path, Path]) -> None:
    _, video = narrated
    info = probe(video)
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert [a["codec_name"] for a in audio] == ["aac"]
    starts = speech_starts(video)
    assert len(starts) == 3, starts
    for start, scene in zip(starts, [0.0, 2.0, 4.0], strict=True):
        assert abs(start - scene) <= 0.1, starts


def test_the_caption_track_has_a_cue_per_line(narrated: tuple[Path, Path]) -> None:
    _, video = narrated
    subs = [s for s in probe(video)["streams"] if s["codec_type"] == "subtitle"]
    assert [s["codec_name"] for s in subs] == ["mov_text"]
    assert subs[0]["tags"]["language"] == "eng"
    srt = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-map", "0:s:0", "-f",
                          "srt", "-"], capture_output=True, text=True, check=True).stdout
    assert next(line for line in srt.splitlines() if "-->" in line).startswith("00:00:00,000")
    assert [line for line in srt.splitlines() if line in LINES] == LINES


def test_the_webvtt_file_is_published_next_to_the_video(narrated: tuple[Path, Path]) -> None:
    _, video = narrated
    parsed = cues.parse_webvtt(video.with_suffix(".vtt").read_text())
    assert [text for _, _, text in parsed] == LINES
    assert [round(start, 3) for start, _, _ in parsed] == [0.0, 2.0, 4.0]


def test_a_line_too_long_for_its_scene_extends_it(tmp_path: Path) -> None:
    long_line = "This line is far too long to be read in the two seconds of its scene."
    music = write_wav(tmp_path / "music.wav", 6.0)
    spec = {**BASE, "audio": music.as_uri(),
            "narration": {"lines": ["One.", long_line, "Three."], "musicDuck": 18}}
    code, video, message = run_pipeline(tmp_path, spec)
    assert code == EXIT_OK, message
    sheet = cues.CueSheet.from_json(
        (tmp_path / "artifacts/ns/narrated/uid/narrate/cues.json").read_text())
    second = sheet.cues[1]
    assert second.speed == cues.MAX_SPEEDUP and second.extension_frames > 0
    assert second.speech_end - second.speech_start == pytest.approx(
        second.spoken_seconds / cues.MAX_SPEEDUP, abs=0.05)
    assert sheet.cues[2].scene_start == 4.0 + second.extension_seconds
    v = next(s for s in probe(video)["streams"] if s["codec_type"] == "video")
    assert int(v["nb_read_frames"]) == 48 + sheet.total_extension_frames


def test_fit_fail_refuses_naming_the_scene(tmp_path: Path) -> None:
    long_line = "This line is far too long to be read in the two seconds of its scene."
    spec = {**BASE, "narration": {"lines": ["One.", long_line, "Three."], "fit": "fail"}}
    code, _, message = run_pipeline(tmp_path, spec)
    assert code == EXIT_PERMANENT
    assert message.startswith("permanent: scene 1: its narration lasts")


def test_burned_captions_are_drawn_into_the_frames(tmp_path: Path) -> None:
    plain_code, plain, _ = run_pipeline(tmp_path / "plain",
                                        {**BASE, "narration": {"lines": LINES}})
    code, burned, message = run_pipeline(tmp_path / "burned",
                                         {**BASE, "narration": {"lines": LINES,
                                                                "captions": "burned"}})
    assert (plain_code, code) == (EXIT_OK, EXIT_OK), message
    streams = probe(burned)["streams"]
    assert [s["codec_type"] for s in streams] == ["video", "audio"]  # no caption track
    assert int(streams[0]["nb_read_frames"]) == 48
    assert not burned.with_suffix(".vtt").exists()
    # Half a second in, the first line is on screen: the frame differs from the plain one.
    def frame(video: Path) -> bytes:
        return subprocess.run(["ffmpeg", "-v", "error", "-ss", "0.5", "-i", str(video),
                               "-frames:v", "1", "-f", "rawvideo", "-"], capture_output=True,
                              check=True, timeout=60).stdout

    a, b = frame(plain), frame(burned)
    assert len(a) == len(b) > 0 and a != b


def test_the_plan_writes_lines_only_with_from_plan() -> None:
    plain = plan_for(BASE)
    assert '"narration"' not in plain.to_json()  # a plan without narration is as before
    spoken = plan_for({**BASE, "narration": {"fromPlan": True}})
    assert [s.narration for s in spoken.scenes] == [s.description for s in spoken.scenes]
    assert Plan.from_json(spoken.to_json()) == spoken
    assert '"narration"' not in plan_for({**BASE, "narration": {"lines": LINES}}).to_json()
