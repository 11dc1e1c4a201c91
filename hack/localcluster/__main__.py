"""`python -m localcluster up|down|status|agent`: the project's single-machine Kubernetes."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import controlplane


def default_root() -> Path:
    return Path(os.environ.get("LOCALCLUSTER_ROOT", controlplane.REPO / ".cluster"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["agent"]:
        from . import agent

        return agent.main(argv[1:])
    parser = argparse.ArgumentParser(prog="localcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "binaries"])
    parser.add_argument("--root", type=Path, default=default_root(),
                        help="state directory (default: .cluster/ in the repository)")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    layout = controlplane.Layout(args.root.resolve())
    if args.command == "binaries":
        print(controlplane.binaries())
    elif args.command == "up":
        runtime = controlplane.runtime_from_env()
        took = controlplane.up(layout, timeout=args.timeout, runtime=runtime)
        print(f"local cluster ({runtime} runtime) ready in {took:.1f}s")
        print(f"  export KUBECONFIG={layout.kubeconfig}")
        print(f"  kubectl: {controlplane.binaries() / 'kubectl'}")
        print(f"  logs:    {layout.logs}/")
    elif args.command == "down":
        stopped = controlplane.down(layout)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    else:
        for name, pid in controlplane.status(layout).items():
            print(f"{name:24} {'running, pid ' + str(pid) if pid else 'stopped'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
