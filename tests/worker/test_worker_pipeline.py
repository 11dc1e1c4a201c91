"""The whole pipeline through `videojob-worker run`, judged by decoding what it wrote."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from videojob_testkit.worker import (
    invoke,
    mean_colour,
    probe,
    read_frames,
    stream,
    top_level_boxes,
    write_wav,
)
from videojob_worker.runner import EXIT_PERMANENT

PROMPT = ("A red sunrise over the desert. A blue ocean at noon. A green forest in the rain. "
          "A purple city at night.")
SPEC: dict[str, Any] = {"prompt": PROMPT, "scenes": 4, "durationSeconds": 3, "fps": 24,
                        "resolution": "320x180", "seed": 7}
FRAME = 1 / 24


def render(tmp: Path, spec: dict[str, Any], manifest: bool = True) -> Path:
    """`videojob-worker run` (in this process); returns its folder (output in out/video.mp4)."""
    tmp.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = spec
    if manifest:
        document = {"apiVersion": "videojob.example.com/v1alpha1", "kind": "VideoJob",
                    "metadata": {"name": "sunrise", "namespace": "demo"}, "spec": spec}
    spec_file = tmp / "videojob.yaml"
    spec_file.write_text(yaml.safe_dump(document))
    code, stdout, stderr = invoke(["run", "--spec", str(spec_file), "--output",
                                   str(tmp / "out/video.mp4"), "--workdir", str(tmp / "work")])
    assert code == 0, stderr + stdout
    last = spec.get("scenes", 4) - 1
    assert f"[segments {last}] 100.0%" in stdout  # progress was printed
    return tmp


def artifacts(run: Path) -> Path:
    return run / "work/artifacts/demo/sunrise/local"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 3 s video with a 2 s audio track (so it must be padded)."""
    tmp = tmp_path_factory.mktemp("pipeline")
    audio = write_wav(tmp / "tone.wav", 2.0)
    return render(tmp / "a", {**SPEC, "audio": audio.as_uri()})


def test_video_plays_in_a_browser(rendered: Path) -> None:
    video = rendered / "out/video.mp4"
    info = probe(video)
    v = stream(info, "video")
    assert v["codec_name"] == "h264"
    assert v["profile"] == "High"
    assert v["pix_fmt"] == "yuv420p"
    assert (v["width"], v["height"]) == (320, 180)
    assert v["r_frame_rate"] == "24/1"
    assert int(v["nb_read_frames"]) == 72  # exactly durationSeconds x fps
    assert abs(float(v["duration"]) - 3.0) <= FRAME
    boxes = top_level_boxes(video)
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # +faststart


def test_short_audio_is_padded_to_the_video(rendered: Path) -> None:
    a = stream(probe(rendered / "out/video.mp4"), "audio")
    assert a["codec_name"] == "aac"
    assert abs(float(a["duration"]) - 3.0) <= FRAME


def test_long_audio_is_cut_to_the_video(tmp_path: Path) -> None:
    audio = write_wav(tmp_path / "long.wav", 5.0)
    run = render(tmp_path / "run", {**SPEC, "durationSeconds": 1, "scenes": 2,
                                    "audio": audio.as_uri()})
    info = probe(run / "out/video.mp4")
    assert int(stream(info, "video")["nb_read_frames"]) == 24
    assert abs(float(stream(info, "audio")["duration"]) - 1.0) <= FRAME


def test_no_audio_means_no_audio_stream(tmp_path: Path) -> None:
    run = render(tmp_path / "run", {**SPEC, "durationSeconds": 1, "scenes": 1}, manifest=False)
    info = probe(run / "out/video.mp4")
    assert [s["codec_type"] for s in info["streams"]] == ["video"]
    assert int(stream(info, "video")["nb_read_frames"]) == 24


def test_scenes_look_different(rendered: Path) -> None:
    import cv2

    keyframes = [cv2.imread(str(artifacts(rendered) / f"keyframes/scene-{i:03d}.png"))
                 for i in range(4)]
    assert all(k is not None and k.shape == (180, 320, 3) for k in keyframes)
    colours = [mean_colour(k) for k in keyframes]
    for a, b in itertools.combinations(range(4), 2):
        distance = float(np.linalg.norm(colours[a] - colours[b]))
        assert distance > 25, f"scenes {a} and {b} are too alike ({distance:.1f})"
    # And in the video itself: the middle frame of each scene (18 frames each).
    frames = read_frames(rendered / "out/video.mp4")
    assert len(frames) == 72
    middles = [mean_colour(frames[9 + 18 * i]) for i in range(4)]
    for a, b in itertools.combinations(range(4), 2):
        assert float(np.linalg.norm(middles[a] - middles[b])) > 20


def test_the_camera_moves(rendered: Path) -> None:
    frames = read_frames(rendered / "out/video.mp4")
    first, late = frames[0].astype(np.int16), frames[10].astype(np.int16)
    assert float(np.abs(first - late).mean()) > 2  # Ken Burns: not a still


def test_same_seed_same_video_other_seed_other_video(rendered: Path, tmp_path: Path) -> None:
    again = render(tmp_path / "again", {**SPEC, "audio": (rendered.parent / "tone.wav").as_uri()})

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    for name in ["plan/plan.json", "keyframes/scene-002.png", "segments/scene-001.mp4"]:
        assert digest(artifacts(rendered) / name) == digest(artifacts(again) / name), name
    assert digest(rendered / "out/video.mp4") == digest(again / "out/video.mp4")

    other = render(tmp_path / "other", {**SPEC, "seed": 8, "durationSeconds": 1})
    assert (artifacts(other) / "plan/plan.json").read_text() != \
        (artifacts(rendered) / "plan/plan.json").read_text()
    assert digest(artifacts(other) / "keyframes/scene-000.png") != \
        digest(artifacts(rendered) / "keyframes/scene-000.png")


def test_fade_goes_through_black(tmp_path: Path) -> None:
    run = render(tmp_path / "run", {**SPEC, "durationSeconds": 2, "scenes": 2,
                                    "transition": "fade"})
    frames = read_frames(run / "out/video.mp4")
    assert len(frames) == 48
    brightness = [float(f.mean()) for f in frames]
    assert brightness[23] < 8  # the last frame of scene 1 is black
    assert brightness[24] < brightness[30]  # scene 2 fades in
    assert brightness[10] > 40


def test_none_cuts_between_scenes(tmp_path: Path) -> None:
    run = render(tmp_path / "run", {**SPEC, "durationSeconds": 2, "scenes": 2,
                                    "transition": "none"})
    frames = read_frames(run / "out/video.mp4")
    step = [float(np.linalg.norm(mean_colour(frames[k + 1]) - mean_colour(frames[k])))
            for k in range(47)]
    assert int(np.argmax(step)) == 23  # the one big change is the cut at the scene boundary


def test_run_refuses_a_field_the_crd_lacks_and_renders_nothing(tmp_path: Path) -> None:
    """A spec with a `voiceover:` block (a field this version does not have) is refused by name
    before anything renders, instead of a silent video without a word."""
    spec_file = tmp_path / "videojob.yaml"
    spec_file.write_text(yaml.safe_dump({"kind": "VideoJob", "metadata": {"name": "n"},
                                         "spec": {**SPEC, "voiceover": {"text": "hello"}}}))
    code, stdout, stderr = invoke(["run", "--spec", str(spec_file), "--output",
                                   str(tmp_path / "out.mp4"), "--workdir", str(tmp_path / "w")])
    assert code == EXIT_PERMANENT, stderr + stdout
    assert "spec.voiceover: unknown field" in stderr
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "w").exists()
