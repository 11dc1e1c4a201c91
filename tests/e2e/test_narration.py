"""Narration end to end with the real worker (#28): the operator runs narrate beside keyframes
and segments (espeak-ng in the worker), stitch mixes the voice, and publish writes the video
with its caption track and the WebVTT file next to it. The cache keeps a narrated video apart
from the same video without narration."""

from __future__ import annotations

import json
import subprocess

import pytest

from videojob_testkit import videojobs as vjs
from videojob_testkit.real_worker import World, output_verifies, succeeded

pytestmark = pytest.mark.e2e

SPEC = {"prompt": "A lighthouse. A harbour. A boat.", "durationSeconds": 3, "fps": 4,
        "resolution": "64x64", "scenes": 3, "transition": "fade", "seed": 5}
NARRATION = {"lines": ["The light.", "The harbour.", "The boat."], "captions": "track"}


def streams(path: str) -> list[dict[str, str]]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "stream=codec_type,codec_name", "-of", "json", path],
                         capture_output=True, text=True, check=True).stdout
    found: list[dict[str, str]] = json.loads(out)["streams"]
    return found


def test_a_narrated_videojob_speaks_and_is_cached_apart(real_worker: World) -> None:
    ns = real_worker.namespace()
    vjs.create(real_worker.cluster, ns, "spoken", **SPEC, narration=NARRATION)
    done = succeeded(real_worker, ns, "spoken", timeout=300)
    by = {s["name"]: s["phase"] for s in done["status"]["stages"]}
    assert by["narrate"] == "Succeeded"
    video = output_verifies(done)
    kinds = {(s["codec_type"], s["codec_name"]) for s in streams(str(video))}
    assert ("audio", "aac") in kinds and ("subtitle", "mov_text") in kinds
    assert video.with_suffix(".vtt").read_text().startswith("WEBVTT")
    # The same spec without narration is another video: its pictures come from the cache,
    # the video does not.
    vjs.create(real_worker.cluster, ns, "silent", **SPEC)
    silent = succeeded(real_worker, ns, "silent", timeout=300)
    assert silent["status"].get("reason") != "Reused"
    assert [s["name"] for s in silent["status"]["stages"]] == [
        "plan", "keyframes", "segments", "stitch", "publish"]
    assert silent["status"]["output"]["md5"] != done["status"]["output"]["md5"]
    assert ("subtitle", "mov_text") not in {(s["codec_type"], s["codec_name"])
                                            for s in streams(str(output_verifies(silent)))}
    # The narrated spec again: the pictures from the cache, the voice spoken again (a video
    # with a caption file beside it is not cached whole: the entry would lose the file).
    vjs.create(real_worker.cluster, ns, "spoken-again", **SPEC, narration=NARRATION)
    again = succeeded(real_worker, ns, "spoken-again", timeout=300)
    phases = {s["name"]: s["phase"] for s in again["status"]["stages"]}
    assert phases["segments"] == "Cached" and phases["narrate"] == "Succeeded"
    assert output_verifies(again).with_suffix(".vtt").exists()
