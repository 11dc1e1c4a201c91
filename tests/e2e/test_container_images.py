"""The images built by `make images` (hack/build-images.sh, podman): the operator image runs
against the cluster and answers its liveness endpoint; the worker image renders a tiny VideoJob
to a file, as user 65532 on a read-only root filesystem; the bundled Redis serves its clients;
the real nodes' pause and CoreDNS images (when the node binaries are built) run as non-root.

Containers run as Kubernetes runs them with `readOnlyRootFilesystem`: podman's default tmpfs on
/tmp, /var/tmp and /run is turned off (`--read-only-tmpfs=false`), and only the paths a pod mounts
an emptyDir at are writable (a host directory of mode 0777, as the kubelet makes one)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from videojob_testkit import REPO
from videojob_testkit.kube import Cluster
from videojob_testkit.processes import free_port, wait_until

# A cold build (a changed lock: every package downloaded into the image) takes minutes; the
# first test carries the module's build fixture.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
PODMAN = [
    "podman",
    "--storage-driver",
    "vfs",
    "--cgroup-manager",
    "cgroupfs",
    "--runtime",
    "/usr/sbin/runc",
]
# Container limits within what this machine's hard limits allow.
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
READ_ONLY = ["--read-only", "--read-only-tmpfs=false"]


def run_container(name: str, image: str, *args: str, options: tuple[str, ...] = (),
                  network: str = "none", detach: bool = False,
                  timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`podman run` of an image the way a kubelet runs it here: a read-only root filesystem with
    no tmpfs of podman's, this machine's limits; `options` before the image, `args` after it. A
    detached container must start (its failure fails the test); a foreground one's result is
    returned."""
    mode = ["-d"] if detach else ["--rm"]
    run = subprocess.run([*PODMAN, "run", *LIMITS, *mode, "--name", name, "--network", network,
                          *READ_ONLY, *options, image, *args],
                         capture_output=True, text=True, timeout=timeout)
    assert not detach or run.returncode == 0, run.stderr[-2000:]
    return run


def empty_dir(tmp_path: Path, name: str) -> Path:
    """A host directory like an emptyDir volume (mode 0777; `--tmpfs`'s `mode=` is not honoured
    by podman 4.3 here, and the mount would be root's 0755)."""
    path = tmp_path / name
    path.mkdir()
    path.chmod(0o777)
    return path


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """Builds the images (layers cached between runs); the script prints `<name> <reference>`."""
    out = subprocess.run(
        [str(REPO / "hack" / "build-images.sh")], capture_output=True, text=True, timeout=1800
    )
    assert out.returncode == 0, out.stderr[-4000:]
    built = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert built["operator"] == f"localhost/videojob/operator:{VERSION}"
    assert built["worker"] == f"localhost/videojob/worker:{VERSION}"
    assert built["gateway"] == f"localhost/videojob/gateway:{VERSION}"
    assert built["redis"] == "localhost/videojob/redis:7.0"
    return built


def node_image(images: dict[str, str], name: str) -> str:
    if name not in images:
        pytest.skip(f"no {name} image: the node binaries are built by hack/build-node-tools.sh")
    return images[name]


def inspect(image: str) -> dict[str, object]:
    out = subprocess.run(
        [*PODMAN, "image", "inspect", image], capture_output=True, text=True, check=True
    )
    config: dict[str, object] = json.loads(out.stdout)[0]["Config"]
    return config


@pytest.mark.parametrize("name", ["operator", "worker", "gateway"])
def test_images_run_as_a_numeric_non_root_user(images: dict[str, str], name: str) -> None:
    config = inspect(images[name])
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == [f"/opt/videojob/bin/videojob-{name}"]


@pytest.mark.parametrize("name", ["operator", "worker"])
def test_images_know_their_user_by_name(images: dict[str, str], name: str) -> None:
    # A kubelet, unlike podman, adds no /etc/passwd entry for the image's user; kopf names its
    # peering identity after getpass.getuser(), which raises for a UID /etc/passwd lacks.
    run = subprocess.run(
        [*PODMAN, "run", *LIMITS, *READ_ONLY, "--rm", "--passwd=false", "--network", "none",
         "--entrypoint", "/opt/videojob/bin/python", images[name], "-c",
         "import getpass, os; print(os.getuid(), getpass.getuser())"],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["65532", "videojob"]


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"videojob-image-test-{os.getpid()}"
    yield name
    subprocess.run([*PODMAN, "rm", "-f", "-t", "2", name], capture_output=True, timeout=60)


def test_operator_image_answers_its_liveness_endpoint(
    images: dict[str, str],
    cluster: Cluster,
    crds: None,
    namespace: str,
    no_session_operator: None,
    container_name: str,
    tmp_path: Path,
) -> None:
    # A self-contained kubeconfig the container's user can read.
    flat = cluster.kubectl("config", "view", "--raw", "--flatten").stdout
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(flat)
    kubeconfig.chmod(0o644)
    liveness, metrics = free_port(), free_port()
    run_container(
        container_name, images["operator"],
        f"--liveness=http://127.0.0.1:{liveness}/healthz", f"--metrics-port={metrics}",
        f"--namespace={namespace}",
        # The chart's emptyDir: the Kubernetes client writes a kubeconfig's embedded
        # certificates to temporary files (in a pod, with the service account, it does not).
        options=("-v", f"{empty_dir(tmp_path, 'tmp')}:/tmp",
                 "-v", f"{kubeconfig}:/etc/videojob/kubeconfig:ro",
                 "-e", "KUBECONFIG=/etc/videojob/kubeconfig"),
        network="host", detach=True)

    def answers(port: int, path: str, needle: bytes) -> bool:
        state = subprocess.run(
            [*PODMAN, "inspect", "-f", "{{.State.Running}}", container_name],
            capture_output=True,
            text=True,
        ).stdout.strip()
        logs = subprocess.run(
            [*PODMAN, "logs", container_name], capture_output=True, text=True
        ).stderr
        assert state == "true", logs[-3000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status == 200 and needle in r.read()

    wait_until(lambda: answers(liveness, "/healthz", b""), 60, "the operator image's /healthz")
    wait_until(
        lambda: answers(metrics, "/metrics", b"videojob_build_info"),
        30,
        "the operator image's /metrics",
    )


def test_worker_image_renders_a_tiny_videojob(
    images: dict[str, str], tmp_path: Path, container_name: str
) -> None:
    spec = {
        "apiVersion": "videojob.dev/v1alpha1",
        "kind": "VideoJob",
        "metadata": {"name": "tiny"},
        "spec": {
            "prompt": "a red balloon over a field",
            "scenes": 2,
            "durationSeconds": 2,
            "fps": 6,
            "resolution": "128x72",
        },
    }
    work = tmp_path / "io"
    work.mkdir()
    work.chmod(0o777)  # written by the image's user, 65532
    (work / "tiny.yaml").write_text(yaml.safe_dump(spec))
    run = run_container(
        container_name, images["worker"], "run", "--spec", "/io/tiny.yaml",
        "--output", "/io/tiny.mp4",
        options=("-v", f"{empty_dir(tmp_path, 'scratch')}:/scratch",  # stage pods' emptyDir
                 "-v", f"{work}:/io"),
        timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    probe = subprocess.run(
        [
            shutil.which("ffprobe") or "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "json",
            str(work / "tiny.mp4"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    (stream,) = json.loads(probe.stdout)["streams"]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 128, 72)
    assert int(stream["nb_read_frames"]) == 2 * 6


def podman_exec(container: str, *argv: str) -> str:
    out = subprocess.run(
        [*PODMAN, "exec", container, *argv], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_redis_image_serves_clients_with_the_charts_arguments(
    images: dict[str, str], container_name: str, tmp_path: Path
) -> None:
    config = inspect(images["redis"])
    assert config["User"] == "999:999"
    port = "6390"
    run_container(
        container_name, images["redis"],
        # What the chart appends to the entry point.
        "--port", port, "--protected-mode", "no", "--save", "", "--appendonly", "no",
        "--dir", "/data",
        options=("-v", f"{empty_dir(tmp_path, 'data')}:/data"),  # the chart's emptyDir
        detach=True)
    cli = ["redis-cli", "-p", port]

    def pong() -> bool:
        out = subprocess.run(
            [*PODMAN, "exec", container_name, *cli, "ping"], capture_output=True, text=True
        )
        return out.stdout.strip() == "PONG"

    wait_until(pong, 30, "the Redis image answering PING")
    assert podman_exec(container_name, *cli, "set", "k", "v").strip() == "OK"
    assert podman_exec(container_name, *cli, "get", "k").strip() == "v"
    # Clients come from other pods' addresses, with no password: protected mode would refuse them.
    got = podman_exec(container_name, *cli, "config", "get", "protected-mode").split()
    assert got == ["protected-mode", "no"]


def test_pause_image_runs_as_65535_and_stops_on_sigterm(
    images: dict[str, str], container_name: str
) -> None:
    image = node_image(images, "pause")
    config = inspect(image)
    assert (config["User"], config["Entrypoint"]) == ("65535:65535", ["/pause"])
    run_container(container_name, image, options=("--cap-drop", "all"), detach=True)

    def state() -> list[str]:
        out = subprocess.run(
            [*PODMAN, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", container_name],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.split()

    wait_until(lambda: state()[0] == "running", 30, "the pause container running")
    # SIGTERM, and SIGKILL after 10 s: a sandbox that ignores SIGTERM slows every pod deletion.
    subprocess.run(
        [*PODMAN, "stop", "-t", "10", container_name], check=True, capture_output=True, timeout=60
    )
    assert state() == ["exited", "0"]


def test_coredns_image_is_the_static_binary_as_65532(
    images: dict[str, str], container_name: str
) -> None:
    image = node_image(images, "coredns")
    config = inspect(image)
    assert (config["User"], config["Entrypoint"]) == ("65532:65532", ["/coredns"])
    run = run_container(container_name, image, "-version",
                        options=("--cap-drop", "all", "--security-opt", "no-new-privileges"))
    assert run.returncode == 0, run.stderr[-2000:]
    # The tag is the version the binary reports.
    assert run.stdout.startswith(f"CoreDNS-{image.rsplit(':', 1)[1]}")
