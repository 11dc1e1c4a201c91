"""The stages as the operator runs them: `videojob-worker <stage>` with the contract's
environment, one process per pod, judged by exit code, termination message, logs and artifacts."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import pytest

from videojob_common.pipeline import STAGES, WORKER_STAGES
from videojob_testkit.processes import free_port
from videojob_testkit.worker import (
    BUCKET,
    invoke,
    probe,
    run_stage,
    stage_env,
    stream,
    worker_command,
    write_image,
    write_wav,
)
from videojob_worker import inputs, runner
from videojob_worker.cancellation import Cancellation
from videojob_worker.environment import read_environment
from videojob_worker.errors import PermanentError
from videojob_worker.fetch_policy import ENV as FETCH_POLICY_ENV
from videojob_worker.fetch_policy import FetchPolicy
from videojob_worker.retry import RetryPolicy
from videojob_worker.storage import Storage, Web, file_uri

# The fetch policy of these tests: their input server on 127.0.0.1, which an administrator must
# permit explicitly (http(s) inputs are off by default, and loopback is never public).
LOOPBACK_SERVER = json.dumps({"enabled": True, "hosts": ["127.0.0.1"],
                              "allow_networks": ["127.0.0.0/8"]})
SPEC: dict[str, Any] = {"prompt": "A golden desert. A teal lagoon.", "scenes": 2,
                        "durationSeconds": 1.5, "fps": 24, "resolution": "160x90",
                        "transition": "crossfade", "backend": "procedural", "seed": 3,
                        "images": [], "audio": None}


def json_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def test_pipeline_on_gcs_with_publish_result(emulated_gcs: str, tmp_path: Path) -> None:
    root = f"gs://{BUCKET}/artifacts"
    output = f"gs://{BUCKET}/videos/out.mp4"
    audio = write_wav(tmp_path / "a.wav", 1.0)
    spec = {**SPEC, "audio": audio.as_uri()}
    log = tmp_path / "termination-log"

    def pod(stage: str, index: int | None = None) -> subprocess.Popen[str]:
        env = stage_env(spec, stage, root, uid="gcs-1", termination_log=log, output_uri=output,
                        index=index)
        return subprocess.Popen(worker_command(stage), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def finish(process: subprocess.Popen[str], stage: str, index: int | None = None) -> None:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        lines = json_lines(stderr)
        assert lines, "no logs"
        for line in lines:
            assert {"namespace": "ns", "name": "job", "uid": "gcs-1", "stage": stage,
                    "attempt": 1}.items() <= line.items()
            assert line.get("index") == index
            assert line["pod"] == f"job-{stage}-pod"

    for stage in ("plan", "keyframes"):
        finish(pod(stage), stage)
    # The segments Job is Indexed: its pods run side by side.
    scenes = [pod("segments", 0), pod("segments", 1)]
    for index, process in enumerate(scenes):
        finish(process, "segments", index)
    for stage in ("stitch", "publish"):
        finish(pod(stage), stage)

    store = Storage()
    prefix = f"{root}/ns/job/gcs-1"
    assert store.list(prefix) == [
        f"{prefix}/keyframes/scene-000.png", f"{prefix}/keyframes/scene-001.png",
        f"{prefix}/plan/plan.json", f"{prefix}/segments/scene-000.mp4",
        f"{prefix}/segments/scene-001.mp4", f"{prefix}/stitch/video.mp4"]

    published = json.loads(log.read_text())
    data = store.read_bytes(output)
    assert published == {
        "uri": output, "bytes": len(data),
        "md5": base64.b64encode(hashlib.md5(data).digest()).decode(),
        "crc32c": base64.b64encode(google_crc32c.Checksum(data).digest()).decode(),
    }
    video = tmp_path / "out.mp4"
    video.write_bytes(data)
    info = probe(video)
    assert int(stream(info, "video")["nb_read_frames"]) == 36
    assert abs(float(stream(info, "audio")["duration"]) - 1.5) <= 1 / 24


@dataclass
class Outcome:
    returncode: int
    stderr: str


def run_local_stages(tmp_path: Path, spec: dict[str, Any], stages: list[str],
                     uid: str = "uid-1", processes: bool = False) -> tuple[Outcome, Path, Path]:
    """Run `stages` in order on file:// storage, stopping at the first failure; returns the
    last outcome, the VideoJob's artifact folder and the termination log.

    `processes`: each stage in its own process, as in a pod; otherwise the CLI's `main` in this
    process (the same code after interpreter start-up, which is most of a small stage's time).
    """
    root = tmp_path / "artifacts"
    log = tmp_path / "termination-log"
    outcome = Outcome(0, "")
    for stage in stages:
        env = stage_env(spec, stage, file_uri(root), uid=uid, termination_log=log,
                        output_uri=file_uri(tmp_path / "out.mp4"),
                        index=0 if stage == "segments" else None,
                        extra={FETCH_POLICY_ENV: LOOPBACK_SERVER})
        if processes:
            result = run_stage(stage, env)
            outcome = Outcome(result.returncode, result.stderr)
        else:
            code, _, stderr = invoke([stage], env)
            outcome = Outcome(code, stderr)
        if outcome.returncode != 0:
            break
    return outcome, root / "ns/job" / uid, log


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server for input files: (base URL, the folder it serves)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


def test_slideshow_fits_each_image(tmp_path: Path, web: tuple[str, Path]) -> None:
    import cv2

    from videojob_testkit.worker import mean_colour

    base, www = web
    red = write_image(tmp_path / "red.png", 400, 300, (0, 0, 220))
    green = write_image(tmp_path / "green.jpg", 90, 160, (0, 200, 0))  # portrait
    write_image(www / "blue.png", 1920, 1080, (210, 0, 0))
    spec = {**SPEC, "prompt": "", "scenes": 4,
            "images": [red.as_uri(), green.as_uri(), f"{base}/blue.png"]}
    result, artifacts, _ = run_local_stages(tmp_path, spec, ["plan", "keyframes"])
    assert result.returncode == 0, result.stderr
    plan = json.loads((artifacts / "plan/plan.json").read_text())
    assert len(plan["scenes"]) == 3  # one scene per image, whatever spec.scenes says
    assert [s["image"] for s in plan["scenes"]] == spec["images"]
    expected = [(0, 0, 220), (0, 200, 0), (210, 0, 0)]
    for i, colour in enumerate(expected):
        keyframe = cv2.imread(str(artifacts / f"keyframes/scene-{i:03d}.png"))
        assert keyframe.shape == (90, 160, 3)
        centre = keyframe[30:60, 70:90]  # away from the diagonal, inside the fitted image
        distance = float(((mean_colour(centre) - colour) ** 2).sum() ** 0.5)
        assert distance < 60, (i, mean_colour(centre))
    # The portrait image is not cropped: its full height fits, with a (dimmer) fill beside it.
    portrait = cv2.imread(str(artifacts / "keyframes/scene-001.png"))
    assert portrait[:, 80].mean() > portrait[:, 2].mean()


def test_corrupt_image_is_a_permanent_error(tmp_path: Path) -> None:
    good = write_image(tmp_path / "good.png", 64, 64, (10, 20, 30))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 100)
    spec = {**SPEC, "prompt": "", "images": [good.as_uri(), corrupt.as_uri()]}
    result, artifacts, log = run_local_stages(tmp_path, spec, ["plan", "keyframes"],
                                              processes=True)
    assert result.returncode == 42, result.stderr
    assert log.read_text() == (f"permanent: images[1] ({corrupt.as_uri()}) is not a decodable "
                               "image")
    names = sorted(p.name for p in (artifacts / "keyframes").iterdir())
    assert names == ["scene-000.png"]  # nothing half-written, no temporary files
    assert any("is not a decodable image" in line["message"]
               for line in json_lines(result.stderr))


@pytest.mark.parametrize("where", ["file", "http"])
def test_missing_image_is_a_permanent_error(tmp_path: Path, web: tuple[str, Path],
                                            where: str) -> None:
    missing = (tmp_path / "nope.png").as_uri() if where == "file" else f"{web[0]}/nope.png"
    result, _, log = run_local_stages(tmp_path, {**SPEC, "images": [missing]},
                                      ["plan", "keyframes"])
    assert result.returncode == 42
    assert log.read_text().startswith(f"permanent: images[0] ({missing}) does not exist")


def test_unreachable_image_is_a_permanent_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/a.png"  # nothing listens there
    store = Storage(policy=RetryPolicy(attempts=2, initial_delay=0.01),
                    backends={"http": Web(FetchPolicy.from_json(LOOPBACK_SERVER))})
    with pytest.raises(PermanentError, match=r"images\[3\] \(http://.*\) is unreachable"):
        inputs.fetch_image(store, url, "images[3]")


def test_unreadable_audio_is_a_permanent_error(tmp_path: Path) -> None:
    audio = tmp_path / "song.mp3"
    audio.write_bytes(b"ID3" + bytes(range(256)) * 20)
    spec = {**SPEC, "scenes": 1, "durationSeconds": 0.5, "audio": audio.as_uri()}
    result, _, log = run_local_stages(tmp_path, spec,
                                      ["plan", "keyframes", "segments", "stitch"])
    assert result.returncode == 42, result.stderr
    assert log.read_text().startswith(f"permanent: audio ({audio.as_uri()}) ")


def test_an_audio_track_over_the_size_cap_is_refused_before_it_is_copied(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    audio = write_wav(tmp_path / "long.wav", 2.0)
    monkeypatch.setattr(inputs, "MAX_AUDIO_BYTES", 1000)
    target = tmp_path / "scratch" / "audio.wav"
    with pytest.raises(PermanentError, match=r"^audio \(.*\): is \d+ bytes, over the 1000 bytes"):
        inputs.fetch_audio(Storage(), audio.as_uri(), target, Cancellation())
    assert not target.exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"resolution": "161x90"}, "must have even width and height"),
    ({"durationSeconds": 0.1, "scenes": 4}, "fewer than the 4 scenes"),
    ({"fps": 0}, "spec.fps"),
    ({"prompt": "", "images": []}, "either prompt or images"),
    ({"backend": "sdxl"}, "spec.backend 'sdxl' is not installed"),
])
def test_impossible_parameters_are_permanent(tmp_path: Path, change: dict[str, Any],
                                             message: str) -> None:
    result, _, log = run_local_stages(tmp_path, {**SPEC, **change}, ["plan"])
    assert result.returncode == 42, result.stderr
    assert log.read_text().startswith("permanent: ")
    assert message in log.read_text()


def test_missing_environment_is_permanent(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    env = stage_env(SPEC, "segments", file_uri(tmp_path), termination_log=log)
    result = run_stage("segments", env)  # no JOB_COMPLETION_INDEX
    assert result.returncode == 42
    assert log.read_text() == "permanent: JOB_COMPLETION_INDEX is not set for segments"


def test_the_stages_are_the_shared_ones(tmp_path: Path) -> None:
    """The stage list is `videojob_common.pipeline`'s, which the operator creates Jobs from:
    the runner has a function for each stage the worker runs (the operator's five, and narrate,
    #28), in order, and any other name is refused."""
    assert list(runner.STAGE_RUNS) == list(WORKER_STAGES)
    assert set(STAGES) <= set(WORKER_STAGES)
    env = stage_env(SPEC, "render", file_uri(tmp_path), termination_log=tmp_path / "log")
    with pytest.raises(PermanentError, match=r"^unknown stage 'render' \(one of plan, "
                                             r"keyframes, segments, narrate, stitch, "
                                             r"publish\)$"):
        read_environment("render", env)


def test_missing_artifact_is_transient(tmp_path: Path) -> None:
    result, _, log = run_local_stages(tmp_path, SPEC, ["keyframes"])  # no plan yet
    assert result.returncode == 1
    assert "plan/plan.json is missing" in log.read_text()
