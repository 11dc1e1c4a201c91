"""`videojob-operator` / `python -m videojob_operator`: run the operator.

Uses the in-cluster service account when it runs in a pod, else the current kubeconfig.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import kopf

from . import config, logs, metrics
from . import handlers as handlers  # importing it registers the handlers with kopf


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
