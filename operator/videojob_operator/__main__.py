"""`videojob-operator` / `python -m videojob_operator`: run the operator
(`videojob-operator release`: the chart's uninstall hook, release.py).

Uses the in-cluster service account when it runs in a pod, else the current kubeconfig.

$VIDEOJOB_SWITCH_INTERVAL (seconds) sets the interpreter's thread switch interval, for
experiments: the Job and pod watches are read on threads of their own (child_watches.py) that
must win the GIL back after every read. Unset: CPython's default (5 ms). Shortening it to 0.5 ms
cut the watch delay in a 200-VideoJob burst from 2.8 s to 0.28 s in one paired run, but did not
hold over six more (docs/benchmarks.md, "Open"), so it is not the default.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import kopf

from . import config, heap, logs, metrics, release
from . import handlers as handlers  # importing it registers the handlers with kopf


def main(argv: list[str] | None = None) -> int:
    heap.cap_arenas()  # before any thread starts (heap.py)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["release"]:  # the chart's pre-delete hook (release.py)
        return release.main(argv[1:])
    parser = argparse.ArgumentParser(prog="videojob-operator", description=__doc__)
    parser.add_argument("-n", "--namespace", action="append", default=[],
                        help="watch only this namespace (repeatable); default: all namespaces")
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz",
                        help="liveness endpoint URL (empty to disable)")
    parser.add_argument("--metrics-port", type=int, default=9090,
                        help="port of the Prometheus /metrics endpoint (0 to disable)")
    parser.add_argument("--peering", default="",
                        help="kopf peering object name: several replicas, one active "
                             "(needs the ClusterKopfPeering CRD); default: standalone")
    parser.add_argument("--priority", type=int, default=0,
                        help="peering priority; replicas must have distinct priorities (kopf#51)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logs.setup(args.log_level)
    if os.environ.get("VIDEOJOB_SWITCH_INTERVAL"):  # an experiment's: see the docstring
        sys.setswitchinterval(float(os.environ["VIDEOJOB_SWITCH_INTERVAL"]))
    try:
        # The one configuration: the file, the environment and the command line, once.
        cfg = config.load().model_copy(update={"namespaces": list(args.namespace)})
    except config.ConfigError as e:
        parser.error(str(e))
    if args.metrics_port:
        metrics.serve(args.metrics_port)
    asyncio.run(kopf.operator(
        clusterwide=not args.namespace,
        namespaces=list(args.namespace),
        liveness_endpoint=args.liveness or None,
        standalone=not args.peering,
        peering_name=args.peering or None,
        priority=args.priority,
        memo=kopf.Memo(config=config.LiveConfig(cfg)),
    ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
