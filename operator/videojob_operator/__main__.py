"""`videojob-operator` / `python -m videojob_operator`: run the operator.

Uses the in-cluster service account when it runs in a pod, else the current kubeconfig.

The interpreter's thread switch interval is shortened (`SWITCH_INTERVAL`). The Job and pod
watches are read on threads of their own (child_watches.py); each read of the stream gives the
GIL up and must win it back. With the default 5 ms, a thread that wants the GIL waits that long
before the holder is asked to let go, and in a burst the event loop and the API threads hold it
nearly all the time: a watch thread then read about one event per switch, and fell seconds
behind the API server (a burst of 200 VideoJobs: a create answered -> its event read, 2.8 s at the
median with 5 ms, 0.28 s with 0.5 ms; docs/benchmarks.md). The cost is more switches between
the threads that compute, a little CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import kopf

from . import config, logs, metrics
from . import handlers as handlers  # importing it registers the handlers with kopf

SWITCH_INTERVAL = 0.0005  # seconds (CPython's default: 0.005); see the module's docstring


def main(argv: list[str] | None = None) -> int:
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
    sys.setswitchinterval(SWITCH_INTERVAL)
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
