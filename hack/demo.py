"""`make demo`: runs examples/hello-gpu-job.yaml on the local cluster and shows what it printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from localcluster import controlplane

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    root = Path(os.environ.get("LOCALCLUSTER_ROOT", REPO / ".cluster"))
    kubectl = [str(controlplane.binaries() / "kubectl"), f"--kubeconfig={root / 'kubeconfig'}"]
    manifest = REPO / "examples" / "hello-gpu-job.yaml"

    def run(*args: str) -> str:
        out = subprocess.run([*kubectl, *args], check=True, capture_output=True, text=True)
        return out.stdout

    run("delete", "-f", str(manifest), "--ignore-not-found", "--wait=true")
    print(run("apply", "-f", str(manifest)).strip())
    run("wait", "--for=condition=Complete", "job/hello-gpu", "--timeout=120s")
    print(run("get", "pods", "-l", "job-name=hello-gpu", "-o", "wide").rstrip())
    print(run("logs", "-l", "job-name=hello-gpu", "--prefix").rstrip())
    print("job/hello-gpu completed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
