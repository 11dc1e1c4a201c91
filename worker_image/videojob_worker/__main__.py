"""Command line: `videojob-worker <stage>` in a pod, `videojob-worker run` on a laptop.

A thin adapter: it reads the environment (docs/contract.md), installs the SIGTERM handler and
hands over to `runner.execute`, whose return value is the exit code.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from videojob_common.pipeline import WORKER_STAGES
from videojob_worker import __version__, logs, termination
from videojob_worker.cancellation import GRACE_SECONDS, Cancellation
from videojob_worker.environment import read_environment, termination_log_path
from videojob_worker.errors import PermanentError
from videojob_worker.local import run_local
from videojob_worker.runner import EXIT_PERMANENT, execute


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="videojob-worker", description=__doc__)
    top.add_argument("--version", action="version", version=__version__)
    commands = top.add_subparsers(dest="command", required=True)
    for stage in WORKER_STAGES:
        commands.add_parser(stage, help=f"run the {stage} stage from the pod's environment")
    local = commands.add_parser("run", help="run every stage locally (no cluster)")
    local.add_argument("--spec", type=Path, required=True,
                       help="VideoJob manifest or bare spec (YAML or JSON)")
    local.add_argument("--output", type=Path, required=True, help="where to write the MP4")
    local.add_argument("--workdir", type=Path,
                       help="keep artifacts here (default: a temporary directory, removed)")
    local.add_argument("--redis-url", help="also publish progress to this Redis")
    local.add_argument("--verbose", action="store_true", help="info-level JSON logs on stderr")
    return top


def run_stage(stage: str) -> int:
    # Installed before anything slow, so a SIGTERM during start-up is honoured too.
    cancellation = Cancellation(grace_seconds=GRACE_SECONDS)
    cancellation.install()
    try:
        env = read_environment(stage)
    except PermanentError as err:
        logs.configure({"stage": stage, "namespace": os.environ.get("VIDEOJOB_NAMESPACE"),
                        "name": os.environ.get("VIDEOJOB_NAME"),
                        "uid": os.environ.get("VIDEOJOB_UID")})
        logs.get_logger().error("permanent: %s", err)
        termination.write_message(termination_log_path(), f"permanent: {err}")
        return EXIT_PERMANENT
    return execute(env, cancellation, log_level=logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "run":
        return run_local(args.spec, args.output, args.workdir, args.redis_url, args.verbose)
    return run_stage(args.command)


if __name__ == "__main__":
    sys.exit(main())
