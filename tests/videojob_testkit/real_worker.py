"""The operator with the REAL worker, for the e2e tests of what the worker makes (the stage
cache, narration): the node agent runs the worker image's entrypoint (`videojob-worker`) as the
stage pods, which render under the operator's storage root (`file://`, its work folder)."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from videojob_common.cache_entries import MANIFEST
from videojob_testkit import videojobs as vjs
from videojob_testkit.kube import Cluster
from videojob_testkit.operator_process import Operator

WORKER_IMAGE = "ghcr.io/videojob/worker:0.1.0"  # the node agent maps it to `videojob-worker`
OVERRIDES = {"worker_command": None, "worker_image": WORKER_IMAGE, "cache": {"enabled": True}}


@dataclass
class World:
    cluster: Cluster
    operator: Operator
    root: Path  # the storage root (file://)
    namespaces: list[str]

    def namespace(self) -> str:
        name = f"real-{uuid.uuid4().hex[:6]}"
        self.cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
            name=name)))
        self.namespaces.append(name)
        return name


def succeeded(w: World, namespace: str, name: str, timeout: float = 240) -> dict[str, Any]:
    vj = vjs.wait(w.cluster, namespace, name, vjs.phase_is("Succeeded", "Failed"), timeout)
    assert vj["status"]["phase"] == "Succeeded", vj["status"]
    return vj


def path_of(uri: str) -> Path:
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(uri).path))


def md5_of(path: Path) -> str:
    return base64.b64encode(hashlib.md5(path.read_bytes(), usedforsecurity=False).digest()
                            ).decode()


def output_verifies(vj: dict[str, Any]) -> Path:
    out = vj["status"]["output"]
    path = path_of(out["uri"])
    assert path.stat().st_size == out["bytes"] and md5_of(path) == out["md5"]
    return path


def entries(w: World, namespace: str, stage: str) -> list[Path]:
    return sorted((w.root / namespace / ".cache" / stage).glob(f"*/{MANIFEST}"))


def entry_verifies(manifest: Path) -> bool:
    doc = json.loads(manifest.read_text())
    artifact = manifest.parent / doc["artifact"]["path"]
    return (artifact.stat().st_size == doc["artifact"]["bytes"]
            and md5_of(artifact) == doc["artifact"]["md5"])


