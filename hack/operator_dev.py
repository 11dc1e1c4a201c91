"""`make operator-up` / `make operator-down`: the operator, Redis and the HTTP gateway on the
local cluster.

With the node agent (the default), all three run in the background against .cluster/kubeconfig,
with the CRDs applied first, and with the archive on: a PostgreSQL from Debian's packages under
.cluster/postgres (localcluster/postgres.py), its DSN in .cluster/archive/dsn, so `kubectl
videojob history` works at once. Logs go to .cluster/logs/{operator,redis,gateway,postgres}.log.
They carry the cluster's process marker, so `make cluster-down` stops them too. The gateway
listens on http://127.0.0.1:18080 (`VIDEOJOB_DEV_GATEWAY_PORT`), in token and key modes; an API
key for the `default` namespace (ServiceAccount `videojob-dev`, allowed VideoJobs only) is made
once and kept in .cluster/gateway/api-key.

With real nodes (a cluster started with LOCALCLUSTER_RUNTIME=containerd), the images are built
from the Dockerfiles and pushed to the local registry, and the chart is installed as a user would
(`helm upgrade --install`, examples/helm/values-local.yaml): the operator, the bundled Redis and
the gateway run as containers in `videojob-system` (reach the gateway with `kubectl
port-forward`).

Either way artifacts are local files under .cluster/artifacts, so a finished video's path is a
path on this machine.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from localcluster import controlplane, postgres, realnodes

REPO = Path(__file__).resolve().parent.parent
REDIS_PORT = int(os.environ.get("VIDEOJOB_DEV_REDIS_PORT", "16379"))
GATEWAY_PORT = int(os.environ.get("VIDEOJOB_DEV_GATEWAY_PORT", "18080"))
LIVENESS_PORT = int(os.environ.get("VIDEOJOB_DEV_LIVENESS_PORT", "18081"))
METRICS_PORT = int(os.environ.get("VIDEOJOB_DEV_METRICS_PORT", "19090"))


def layout() -> controlplane.Layout:
    return controlplane.Layout(Path(os.environ.get("LOCALCLUSTER_ROOT", REPO / ".cluster")))


def kubectl(lay: controlplane.Layout, *args: str) -> None:
    subprocess.run([str(controlplane.binaries() / "kubectl"), f"--kubeconfig={lay.kubeconfig}",
                    *args], check=True, stdout=subprocess.DEVNULL)


RELEASE = "videojob-operator"
RELEASE_NAMESPACE = "videojob-system"


def helm() -> str:
    out = subprocess.run([str(REPO / "hack" / "build-helm.sh")], check=True,
                         stdout=subprocess.PIPE, text=True)
    return out.stdout.strip().splitlines()[-1]


def up_real_nodes(lay: controlplane.Layout) -> None:
    """The chart, from the images built here and pushed to the local registry."""
    refs = realnodes.push_images(["operator", "worker", "gateway", "redis"])
    artifacts = lay.root / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    os.chown(artifacts, 65532, 65532)  # the worker image's user
    subprocess.run([helm(), "upgrade", "--install", RELEASE, str(REPO / "helm" / RELEASE),
                    f"--kubeconfig={lay.kubeconfig}", "-n", RELEASE_NAMESPACE,
                    "--create-namespace", "-f", str(REPO / "examples/helm/values-local.yaml"),
                    "--set", f"storage.root=file://{artifacts}",
                    "--set", f"storage.volume.hostPath.path={artifacts}",
                    "--set", "worker.serviceAccount.namespaces={default}",
                    "--set", "gateway.enabled=true",
                    *realnodes.chart_image_sets(refs), "--wait", "--timeout=300s"],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"operator installed with Helm: release {RELEASE} in {RELEASE_NAMESPACE} "
          f"(kubectl -n {RELEASE_NAMESPACE} logs deploy/{RELEASE}); the HTTP gateway: "
          f"kubectl -n {RELEASE_NAMESPACE} port-forward svc/{RELEASE}-gateway "
          f"{GATEWAY_PORT}:80, then the console is http://127.0.0.1:{GATEWAY_PORT}/")


def up() -> None:
    lay = layout()
    kubectl(lay, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kubectl(lay, "wait", "--for=condition=Established", "--timeout=60s",
            "crd/videojobs.videojob.dev", "crd/videojobpools.videojob.dev")
    if controlplane.recorded_runtime(lay) == "containerd":
        up_real_nodes(lay)
        return
    if controlplane.recorded_pid(lay, "redis") is None:
        controlplane.start(lay, "redis", ["redis-server", "--port", str(REDIS_PORT),
                                          "--bind", "127.0.0.1", "--save", "",
                                          "--appendonly", "no"])
    # The archive (docs/history.md): Debian's PostgreSQL under .cluster/postgres.
    os.environ["VIDEOJOB_ARCHIVE_DSN"] = postgres.up(lay)
    config = lay.root / "operator" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump({
        "storage_root": f"file://{lay.root / 'artifacts'}",
        "redis_url": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "worker_image": "ghcr.io/videojob/worker:0.1.0",
        "cache": {"enabled": True},  # the stage cache (docs/reuse.md), under the storage root
    }))
    if controlplane.recorded_pid(lay, "operator") is None:
        os.environ.update(KUBECONFIG=str(lay.kubeconfig), VIDEOJOB_CONFIG=str(config),
                          VIDEOJOB_PROGRESS_KEY=progress_key(config.parent))
        controlplane.start(lay, "operator", [
            sys.executable, "-m", "videojob_operator",
            f"--liveness=http://127.0.0.1:{LIVENESS_PORT}/healthz",
            f"--metrics-port={METRICS_PORT}"])
    controlplane.wait_for("the operator's liveness endpoint",
                          lambda: _ok(f"http://127.0.0.1:{LIVENESS_PORT}/healthz"), 60,
                          lay.logs / "operator.log")
    key_file = dev_api_key(lay)
    if controlplane.recorded_pid(lay, "gateway") is None:
        controlplane.start(lay, "gateway", [
            sys.executable, "-m", "videojob_gateway", "--host=127.0.0.1",
            f"--port={GATEWAY_PORT}", "--auth-modes=token,key",
            f"--key-namespace={RELEASE_NAMESPACE}",
            # The operator's storage_root: uploads and downloads (docs/http-api.md).
            f"--storage-root=file://{lay.root / 'artifacts'}"])
    controlplane.wait_for("the gateway's readiness endpoint",
                          lambda: _ok(f"http://127.0.0.1:{GATEWAY_PORT}/readyz"), 60,
                          lay.logs / "gateway.log")
    print(f"operator running (logs: {lay.logs / 'operator.log'}, metrics "
          f"http://127.0.0.1:{METRICS_PORT}/metrics), redis on :{REDIS_PORT}, the archive's "
          f"PostgreSQL on :{postgres.PORT} (DSN in {postgres.dsn_file(lay)})")
    print(f"gateway: http://127.0.0.1:{GATEWAY_PORT}/api/v1 (an API key for namespace "
          f"default: {key_file}; docs/http-api.md)")
    print(f"console: http://127.0.0.1:{GATEWAY_PORT}/ (sign in with that key, or a token: "
          f"kubectl -n default create token {DEV_ACCOUNT})")


DEV_ACCOUNT = "videojob-dev"


def dev_api_key(lay: controlplane.Layout) -> Path:
    """The local API key: acts as ServiceAccount `videojob-dev` of `default`, which may do
    anything to VideoJobs there and nothing else. Made once, kept in .cluster/gateway/api-key;
    its Secret (the key's hash) applied again on every start."""
    from videojob_gateway import keys

    path = lay.root / "gateway" / "api-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(keys.new_key() + "\n")
    secret = keys.secret_manifest(f"apikey-default-{DEV_ACCOUNT}", RELEASE_NAMESPACE, "default",
                                  DEV_ACCOUNT, path.read_text().strip())
    docs: list[dict[str, object]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE_NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": DEV_ACCOUNT, "namespace": "default"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": DEV_ACCOUNT, "namespace": "default"},
         "rules": [{"apiGroups": ["videojob.dev"], "resources": ["videojobs"],
                    "verbs": ["create", "get", "list", "watch", "patch", "delete"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": DEV_ACCOUNT, "namespace": "default"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": DEV_ACCOUNT},
         "subjects": [{"kind": "ServiceAccount", "name": DEV_ACCOUNT, "namespace": "default"}]},
        secret,
    ]
    subprocess.run([str(controlplane.binaries() / "kubectl"), f"--kubeconfig={lay.kubeconfig}",
                    "apply", "--server-side", "--force-conflicts", "-f", "-"],
                   input=yaml.safe_dump_all(docs), text=True,
                   check=True, stdout=subprocess.DEVNULL)
    return path


def progress_key(directory: Path) -> str:
    """The master key of progress tokens (docs/tenancy.md), made once and kept with the
    cluster, so that an operator restarted here still takes the reports of running stages."""
    path = directory / "progress-key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


def _ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as r:
        return bool(r.status == 200)


def down() -> None:
    lay = layout()
    if controlplane.recorded_runtime(lay) == "containerd" and lay.kubeconfig.exists():
        subprocess.run([helm(), "uninstall", RELEASE, f"--kubeconfig={lay.kubeconfig}", "-n",
                        RELEASE_NAMESPACE, "--wait", "--ignore-not-found"], check=False)
    for name in ("gateway", "operator", "redis", "postgres"):
        if controlplane.stop(layout(), name, grace=15):
            print(f"stopped {name}")


if __name__ == "__main__":
    {"up": up, "down": down}[sys.argv[1]]()
