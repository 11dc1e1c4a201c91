"""`videojob-worker run`: the whole pipeline in one process, without a cluster.

Every stage runs through the same `runner.execute` as in a pod, in order (the segments one after
another), with artifacts under `file://<workdir>/artifacts` and the result copied to `--output`
by publish. Progress is printed; JSON logs (warnings only, unless --verbose) go to stderr.
http(s) inputs may come from any host with a public address, unless VIDEOJOB_HTTP_INPUTS says
otherwise (fetch_policy.py).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from videojob_common.pipeline import PER_SCENE, WORKER_STAGES, Stage
from videojob_worker.cancellation import Cancellation
from videojob_worker.environment import Identity, StageEnvironment
from videojob_worker.errors import PermanentError
from videojob_worker.fetch_policy import ENV as FETCH_POLICY_ENV
from videojob_worker.progress import PrintSink
from videojob_worker.runner import EXIT_OK, EXIT_PERMANENT, execute
from videojob_worker.spec import VideoSpec, load_manifest
from videojob_worker.storage import file_uri


def stage_environments(identity: Identity, spec: VideoSpec, root: str, output_uri: str,
                       termination_log: Path,
                       redis_url: str | None = None) -> list[StageEnvironment]:
    """The environments the operator would give the pipeline's pods, in order; narrate (after
    segments, before stitch) only when the spec has narration."""
    environments = []
    for stage in WORKER_STAGES:
        if stage == Stage.NARRATE and spec.narration is None:
            continue
        indices: list[int | None] = (list(range(spec.scene_count)) if stage in PER_SCENE
                                     else [None])
        for index in indices:
            environments.append(StageEnvironment(
                identity=identity, stage=stage, spec=spec, artifact_root=root,
                output_uri=output_uri, redis_url=redis_url, attempt=1, pod_name=None,
                index=index, termination_log=termination_log))
    return environments


def run_local(spec_path: Path, output: Path, workdir: Path | None = None,
              redis_url: str | None = None, verbose: bool = False) -> int:
    try:
        metadata, spec = load_manifest(spec_path)
    except PermanentError as err:
        print(f"permanent: {err}", file=sys.stderr)
        return EXIT_PERMANENT
    identity = Identity(namespace=str(metadata.get("namespace") or "local"),
                        name=str(metadata.get("name") or spec_path.stem),
                        uid=str(metadata.get("uid") or "local"))
    owned = workdir is None
    base = Path(tempfile.mkdtemp(prefix="videojob-run-")) if workdir is None else workdir
    base.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(FETCH_POLICY_ENV, json.dumps({"enabled": True, "hosts": ["*"]}))
    cancellation = Cancellation()
    cancellation.install((signal.SIGTERM, signal.SIGINT))
    output = output.resolve()
    termination_log = base / "termination-log"
    try:
        for env in stage_environments(identity, spec, file_uri(base / "artifacts"),
                                      file_uri(output), termination_log, redis_url):
            code = execute(env, cancellation, sinks=[PrintSink()],
                           log_level=logging.INFO if verbose else logging.WARNING)
            if code != EXIT_OK:
                reason = termination_log.read_text() if termination_log.exists() else ""
                where = env.stage if env.index is None else f"{env.stage} {env.index}"
                print(f"{where} failed (exit {code}): {reason}", file=sys.stderr)
                return code
    finally:
        if owned:
            shutil.rmtree(base, ignore_errors=True)
    print(f"wrote {output} ({spec.total_frames} frames, {spec.resolution}, "
          f"{spec.duration_seconds:g} s)")
    return EXIT_OK
