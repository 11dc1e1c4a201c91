"""`make demo`: applies a VideoJob, shows its progress until it ends, prints the output path.

The operator and the local cluster are started by `make operator-up` first; artifacts are local
files, so the last line is the path of the finished video on this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from localcluster import controlplane

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    manifest = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "examples" / "videojob.yaml")
    name = yaml.safe_load(manifest.read_text())["metadata"]["name"]
    root = Path(os.environ.get("LOCALCLUSTER_ROOT", REPO / ".cluster"))
    kubectl = [str(controlplane.binaries() / "kubectl"), f"--kubeconfig={root / 'kubeconfig'}",
               "-n", "default"]

    def run(*args: str) -> str:
        return subprocess.run([*kubectl, *args], check=True, capture_output=True,
                              text=True).stdout

    run("delete", "videojob", name, "--ignore-not-found", "--wait=true")
    print(run("apply", "-f", str(manifest)).strip())
    last = ""
    deadline = time.monotonic() + 1800
    status: dict[str, object] = {}
    while time.monotonic() < deadline:
        status = json.loads(run("get", "videojob", name, "-o", "json")).get("status") or {}
        line = (f"{status.get('phase', 'Pending'):<10} {status.get('progress', 0):>3}%  "
                f"{status.get('currentStage') or '':<10} {status.get('message') or ''}")
        if line != last:
            print(line, flush=True)
            last = line
        if status.get("phase") in ("Succeeded", "Failed"):
            break
        time.sleep(0.5)
    if status.get("phase") != "Succeeded":
        print(run("describe", "videojob", name))
        return 1
    uri = str(status["outputURI"])
    print(uri.removeprefix("file://"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
