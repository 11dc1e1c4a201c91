"""The pinned tools are the versions the project says, and KUBEBUILDER_ASSETS is honoured."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from videojob_testkit import REPO


def built(script: str) -> str:
    return subprocess.run([str(REPO / "hack" / script)], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_kubectl_is_the_pinned_release() -> None:
    kubectl = Path(built("build-binaries.sh")) / "kubectl"
    out = subprocess.run([str(kubectl), "version", "--client"], check=True,
                         capture_output=True, text=True).stdout
    assert "Client Version: v1.36.3" in out


def test_helm_is_the_pinned_release() -> None:
    out = subprocess.run([built("build-helm.sh"), "version", "--short"], check=True,
                         capture_output=True, text=True).stdout
    assert out.startswith("v4.3.1")


def test_kubebuilder_assets_with_every_binary_is_used_as_is(tmp_path: Path) -> None:
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                 "kubectl"):
        exe = tmp_path / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    env = dict(os.environ, KUBEBUILDER_ASSETS=str(tmp_path))
    out = subprocess.run([str(REPO / "hack" / "build-binaries.sh")], check=True, env=env,
                         capture_output=True, text=True).stdout.strip()
    assert out == str(tmp_path)


def test_incomplete_kubebuilder_assets_fall_back_to_the_pinned_build(tmp_path: Path) -> None:
    (tmp_path / "kube-apiserver").write_text("#!/bin/sh\n")
    (tmp_path / "kube-apiserver").chmod(0o755)
    env = dict(os.environ, KUBEBUILDER_ASSETS=str(tmp_path))
    out = subprocess.run([str(REPO / "hack" / "build-binaries.sh")], check=True, env=env,
                         capture_output=True, text=True).stdout.strip()
    assert out != str(tmp_path) and out.endswith("/bin")
