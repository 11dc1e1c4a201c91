"""The VideoJob worker: the program every stage pod of a VideoJob runs.

`videojob-worker <stage>` reads the operator-worker contract (docs/contract.md) from its
environment and runs one stage; `videojob-worker run` runs the whole pipeline locally.

The modules, each owning one thing:

- `__main__.py` — the command line: a sub-command per stage, and `run`.
- `environment.py` — the contract's environment variables, read into a `StageEnvironment`.
- `runner.py` — runs one stage (`STAGE_RUNS`) and maps its outcome to exit code and message.
- `local.py` — `videojob-worker run`: every stage in order in one process, no cluster.
- `context.py` — `StageContext`, what a stage function gets, and its private workspace.
- `stages/` — the stages, a module each: plan, keyframes, segments, narrate, stitch, publish.
- `spec.py` — the VideoJob spec as the worker reads it (`VideoSpec`), with the CRD's defaults.
- `plan.py` — the plan document (`plan/plan.json`): scenes, cameras, frame ranges.
- `backends.py` — render backends (`RenderBackend`): the interface and the plug-in loader.
- `procedural.py` — the built-in `procedural` render backend (OpenCV drawings, no model).
- `tts.py` — TTS backends (`TtsBackend`) for narration: the interface, espeak-ng, the loader.
- `cues.py` — the narration's cue sheet: fit rule, timeline, scene extensions, captions.
- `mixing.py` — the narrated soundtrack's ffmpeg filter graph: placement, ducking, loudness.
- `motion.py` — Ken Burns camera motion over a keyframe.
- `transitions.py` — crossfades and fades between scenes, drawn into the segments' frames.
- `ffmpeg.py` — video encoding: frames piped into ffmpeg (H.264), muxing, probing; `Frame`.
- `inputs.py` — the user's images and audio track: fetched, checked, fitted.
- `fetch_policy.py` — which http(s) inputs may be fetched: listed hosts, public addresses.
- `storage.py` — reads and atomic writes by URI: a `StorageBackend` per scheme, with retries.
- `artifacts.py` — where each stage's artifacts live under the artifact root.
- `retry.py` — exponential backoff for transient storage and network errors.
- `progress.py` — progress updates, published to Redis (or printed by `run`).
- `cancellation.py` — SIGTERM: the cancellation flag, clean-ups and the last-resort watchdog.
- `errors.py` — the ways a stage ends early: permanent, transient, cancelled.
- `termination.py` — the termination message the operator copies into the status.
- `logs.py` — JSON-lines logs carrying the stage's identity.

Stage names and the pipeline's shape come from `videojob_common.pipeline`, shared with the
operator.
"""

__version__ = "0.1.0"

import os

# stderr carries one JSON object per line; OpenCV's own warnings ("[ WARN:0@0.1] ...") would break
# that. Decoding problems surface as the worker's own errors instead. Must precede `import cv2`.
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
