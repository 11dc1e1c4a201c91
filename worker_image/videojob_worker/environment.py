"""The environment of a stage pod, as docs/contract.md defines it, read into one typed value.

The stage names, and which stages run a pod per scene, come from `videojob_common.pipeline`:
the operator creates the Jobs from the same definition.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from videojob_common import cache_entries
from videojob_common.cache_entries import CACHE_ENV, SCENES_ENV, Instruction
from videojob_common.pipeline import PER_SCENE, WORKER_STAGES, Stage
from videojob_common.progress_auth import TOKEN_ENV
from videojob_worker.errors import PermanentError
from videojob_worker.spec import VideoSpec, spec_from_json

DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")


@dataclass(frozen=True)
class Identity:
    """Which VideoJob a stage works for; also the artifact prefix and the progress key."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class StageEnvironment:
    identity: Identity
    stage: Stage
    spec: VideoSpec
    artifact_root: str
    output_uri: str | None
    redis_url: str | None
    attempt: int | None
    pod_name: str | None
    index: int | None
    termination_log: Path
    progress_token: str | None = None  # signs its progress (videojob_common.progress_auth)
    cache: Instruction | None = None  # VIDEOJOB_CACHE: the entries to write; None: write none
    scenes: tuple[int, ...] | None = None  # VIDEOJOB_SCENES (keyframes, segments); None: all


def termination_log_path(env: Mapping[str, str] | None = None) -> Path:
    """/dev/termination-log, or VIDEOJOB_TERMINATION_LOG (tests and local runs)."""
    env = os.environ if env is None else env
    return Path(env.get("VIDEOJOB_TERMINATION_LOG") or DEFAULT_TERMINATION_LOG)


def _optional_int(env: Mapping[str, str], key: str) -> int | None:
    value = env.get(key, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise PermanentError(f"{key}={value!r} is not an integer") from None


def _required(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "").strip()
    if not value:
        raise PermanentError(f"{key} is not set")
    return value


def read_environment(name: str, env: Mapping[str, str] | None = None) -> StageEnvironment:
    """Read and check the contract's variables for stage `name` (the command-line argument)."""
    env = os.environ if env is None else env
    if name not in WORKER_STAGES:
        raise PermanentError(f"unknown stage {name!r} (one of {', '.join(WORKER_STAGES)})")
    stage = Stage(name)
    declared = env.get("VIDEOJOB_STAGE", "").strip()
    if declared and declared != stage:
        raise PermanentError(f"VIDEOJOB_STAGE={declared} but the argument is {stage}")
    index = _optional_int(env, "JOB_COMPLETION_INDEX")
    spec = spec_from_json(_required(env, "VIDEOJOB_SPEC"))
    scenes = _scenes(env, stage, spec.scene_count)
    if stage in PER_SCENE:
        if index is None:
            raise PermanentError(f"JOB_COMPLETION_INDEX is not set for {stage}")
        if scenes is not None and not 0 <= index < len(scenes):
            raise PermanentError(f"JOB_COMPLETION_INDEX={index} is outside the {len(scenes)} "
                                 f"scenes of {SCENES_ENV}")
        if not 0 <= index < spec.scene_count:
            raise PermanentError(f"JOB_COMPLETION_INDEX={index} is outside the "
                                 f"{spec.scene_count} scenes")
    else:
        # Only the per-scene stage (segments) runs as an Indexed Job; an index elsewhere is
        # meaningless, not an error.
        index = None
    output_uri = env.get("VIDEOJOB_OUTPUT_URI", "").strip() or None
    if stage == Stage.PUBLISH and output_uri is None:
        raise PermanentError("VIDEOJOB_OUTPUT_URI is not set for publish")
    return StageEnvironment(
        identity=Identity(namespace=_required(env, "VIDEOJOB_NAMESPACE"),
                          name=_required(env, "VIDEOJOB_NAME"),
                          uid=_required(env, "VIDEOJOB_UID")),
        stage=stage,
        spec=spec,
        artifact_root=_required(env, "VIDEOJOB_ARTIFACT_ROOT"),
        output_uri=output_uri,
        redis_url=env.get("VIDEOJOB_REDIS_URL", "").strip() or None,
        progress_token=env.get(TOKEN_ENV, "").strip() or None,
        attempt=_attempt(env),
        pod_name=env.get("VIDEOJOB_POD_NAME", "").strip() or None,
        index=index,
        termination_log=termination_log_path(env),
        cache=_cache(env),
        scenes=scenes,
    )


def _scenes(env: Mapping[str, str], stage: Stage, scene_count: int) -> tuple[int, ...] | None:
    """VIDEOJOB_SCENES, for the stages that render per scene; elsewhere it means nothing."""
    text = env.get(SCENES_ENV, "").strip()
    if not text or stage not in (Stage.KEYFRAMES, Stage.SEGMENTS):
        return None
    try:
        return cache_entries.parse_scenes(text, scene_count)
    except ValueError as err:
        raise PermanentError(str(err)) from None


def _cache(env: Mapping[str, str]) -> Instruction | None:
    text = env.get(CACHE_ENV, "").strip()
    if not text:
        return None
    try:
        return cache_entries.parse_instruction(text)
    except ValueError as err:  # json.JSONDecodeError included
        reason = str(err)
        raise PermanentError(reason if reason.startswith(CACHE_ENV)
                             else f"{CACHE_ENV} is malformed: {reason}") from None


def _attempt(env: Mapping[str, str]) -> int | None:
    """VIDEOJOB_ATTEMPT, else the Job controller's per-index failure count + 1 (contract)."""
    attempt = _optional_int(env, "VIDEOJOB_ATTEMPT")
    if attempt is not None:
        return attempt
    failures = _optional_int(env, "VIDEOJOB_FAILURE_COUNT")
    return None if failures is None else failures + 1
