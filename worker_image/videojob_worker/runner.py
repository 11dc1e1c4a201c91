"""Runs one stage and turns its outcome into the contract's exit code and termination message.

| outcome | exit | termination message |
|---|---|---|
| success | 0 | the stage's result as JSON, if it has one (publish) |
| `PermanentError` | 42 | `permanent: <reason>` |
| `Cancelled` (SIGTERM) | 143 | `cancelled: <reason>` |
| `TransientError`, any other exception | 1 | `transient: <reason>` / `error: <reason>` |
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from videojob_common.pipeline import Stage
from videojob_worker import cache_writer, logs, termination
from videojob_worker.artifacts import ArtifactLayout
from videojob_worker.cancellation import EXIT_CANCELLED, Cancellation
from videojob_worker.context import StageContext, StageResult, workspace
from videojob_worker.environment import StageEnvironment
from videojob_worker.errors import Cancelled, PermanentError, TransientError
from videojob_worker.progress import ProgressReporter, ProgressSink, RedisSink
from videojob_worker.stages import keyframes, narrate, plan, publish, segments, stitch
from videojob_worker.storage import Storage

EXIT_OK = 0
EXIT_TRANSIENT = 1
EXIT_PERMANENT = 42

# Each stage's function, keyed by the shared stage names: every stage the worker runs
# (pipeline.WORKER_STAGES, a test checks each has one), narrate included (#28).
STAGE_RUNS: dict[Stage, Callable[[StageContext], StageResult]] = {
    Stage.PLAN: plan.run,
    Stage.KEYFRAMES: keyframes.run,
    Stage.SEGMENTS: segments.run,
    Stage.NARRATE: narrate.run,
    Stage.STITCH: stitch.run,
    Stage.PUBLISH: publish.run,
}


def log_context(env: StageEnvironment) -> dict[str, Any]:
    context: dict[str, Any] = {
        "namespace": env.identity.namespace, "name": env.identity.name, "uid": env.identity.uid,
        "stage": env.stage, "attempt": env.attempt,
    }
    if env.index is not None:
        context["index"] = env.index
        if env.scenes is not None:
            context["scene"] = env.scenes[env.index]
    if env.pod_name:
        context["pod"] = env.pod_name
    return context


def fail(path: Path, message: str) -> None:
    logs.get_logger().error(message)
    termination.write_message(path, message)


def execute(env: StageEnvironment, cancellation: Cancellation, *,
            sinks: list[ProgressSink] | None = None, storage: Storage | None = None,
            workspace_parent: Path | None = None, log_level: int = logging.INFO) -> int:
    """Run `env.stage` to its end; returns the exit code."""
    log = logs.configure(log_context(env), log_level)
    all_sinks = list(sinks or [])
    if env.redis_url:
        try:
            all_sinks.append(RedisSink(env.redis_url, token=env.progress_token))
        except Exception as err:  # a malformed URL: progress is best effort, the stage is not
            log.warning("no progress reporting: %s", err)
    progress = ProgressReporter(env.identity, env.stage, env.index, env.attempt, all_sinks)
    storage = storage or Storage(cancellation)
    started = time.monotonic()
    result: StageResult = None
    try:
        with workspace(env.stage, cancellation, workspace_parent) as path:
            context = StageContext(
                identity=env.identity, stage=env.stage, spec=env.spec,
                layout=ArtifactLayout(env.artifact_root, env.identity), storage=storage,
                workspace=path, progress=progress, cancellation=cancellation, index=env.index,
                output_uri=env.output_uri, attempt=env.attempt, scenes=env.scenes)
            log.info("stage %s started", env.stage)
            result = STAGE_RUNS[env.stage](context)
            if env.cache is not None:
                # After the stage's own artifacts, from the files still in the workspace.
                cache_writer.write_entries(context, env.cache,
                                           cache_writer.writer_name(env.identity.uid))
    except PermanentError as err:
        fail(env.termination_log, f"permanent: {err}")
        return EXIT_PERMANENT
    except Cancelled as err:
        cancellation.run_cleanups()
        log.warning("stage %s cancelled after %.2f s", env.stage, time.monotonic() - started)
        termination.write_message(env.termination_log, f"cancelled: {err}")
        return EXIT_CANCELLED
    except TransientError as err:
        fail(env.termination_log, f"transient: {err}")
        return EXIT_TRANSIENT
    except Exception as err:
        log.exception("stage %s failed", env.stage)
        termination.write_message(env.termination_log,
                                  f"error: {type(err).__name__}: {err}")
        return EXIT_TRANSIENT
    finally:
        progress.close()
    if result is not None:
        termination.write_result(env.termination_log, result)
    log.info("stage %s done in %.2f s", env.stage, time.monotonic() - started,
             extra={"seconds": round(time.monotonic() - started, 3)})
    return EXIT_OK
