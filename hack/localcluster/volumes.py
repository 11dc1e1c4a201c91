"""Pod volumes materialised as directories under the pod's directory on this machine.

Each volume becomes a host directory (or, for hostPath, the host path itself); the runner then
bind-mounts it at every `mountPath` inside the pod's own mount namespace. Supported: emptyDir,
configMap, secret, downwardAPI, projected (serviceAccountToken, configMap, secret, downwardAPI,
clusterTrustBundle excepted) and hostPath. Anything else is a mount failure that the pod reports,
as a kubelet would, instead of starting without its data.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path

from videojob_common.pipeline import Obj

from .envvars import field_value, resource_value
from .kube import ApiError, Kube, path_segment


class VolumeError(Exception):
    """A volume cannot be set up (missing ConfigMap/Secret, unsupported type): FailedMount."""


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _items(
    data: Mapping[str, bytes], items: list[Obj] | None, default_mode: int, what: str
) -> list[tuple[str, bytes, int]]:
    if not items:
        return [(k, v, default_mode) for k, v in data.items()]
    out = []
    for item in items:
        if item["key"] not in data:
            raise VolumeError(f"{what} has no key {item['key']!r}")
        out.append((item["path"], data[item["key"]], item.get("mode", default_mode)))
    return out


class VolumeBuilder:
    def __init__(self, kube: Kube, pod: Obj, root: Path) -> None:
        self.kube = kube
        self.pod = pod
        self.ns = pod["metadata"]["namespace"]
        self.root = root

    def _configmap(self, name: str, optional: bool) -> dict[str, bytes] | None:
        try:
            cm = self.kube.get(f"/api/v1/namespaces/{self.ns}/configmaps/{path_segment(name)}")
        except ApiError as e:
            if e.status == 404:
                if optional:
                    return None
                raise VolumeError(f'configmap "{name}" not found') from e
            raise
        data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        return data

    def _secret(self, name: str, optional: bool) -> dict[str, bytes] | None:
        try:
            s = self.kube.get(f"/api/v1/namespaces/{self.ns}/secrets/{path_segment(name)}")
        except ApiError as e:
            if e.status == 404:
                if optional:
                    return None
                raise VolumeError(f'secret "{name}" not found') from e
            raise
        return {k: base64.b64decode(v) for k, v in (s.get("data") or {}).items()}

    def _token(self, source: Obj) -> bytes:
        sa = self.pod["spec"].get("serviceAccountName", "default")
        meta = self.pod["metadata"]
        body: Obj = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [source["audience"]] if source.get("audience") else None,
                "expirationSeconds": source.get("expirationSeconds", 3607),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                   "name": meta["name"], "uid": meta["uid"]},
            },
        }
        resp = self.kube.create(
            f"/api/v1/namespaces/{self.ns}/serviceaccounts/{path_segment(sa)}/token", body)
        return str(resp["status"]["token"]).encode()

    def _downward(self, items: list[Obj], default_mode: int) -> list[tuple[str, bytes, int]]:
        out = []
        for item in items:
            if "fieldRef" in item:
                value = field_value(self.pod, item["fieldRef"]["fieldPath"])
            else:
                ref = item["resourceFieldRef"]
                container = next(c for c in self.pod["spec"]["containers"]
                                 if c["name"] == ref.get("containerName",
                                                         self.pod["spec"]["containers"][0]["name"]))
                value = resource_value(container, ref)
            out.append((item["path"], value.encode(), item.get("mode", default_mode)))
        return out

    def build(self, volume: Obj) -> Path:
        name = str(volume["name"])
        target: Path = self.root / name
        if "hostPath" in volume:
            return Path(str(volume["hostPath"]["path"]))
        if "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
            return target
        files: list[tuple[str, bytes, int]] = []
        if "configMap" in volume:
            src = volume["configMap"]
            data = self._configmap(src["name"], src.get("optional", False))
            files = _items(data or {}, src.get("items"), src.get("defaultMode", 0o644),
                           f'configmap "{src["name"]}"')
        elif "secret" in volume:
            src = volume["secret"]
            data = self._secret(src["secretName"], src.get("optional", False))
            files = _items(data or {}, src.get("items"), src.get("defaultMode", 0o644),
                           f'secret "{src["secretName"]}"')
        elif "downwardAPI" in volume:
            src = volume["downwardAPI"]
            files = self._downward(src.get("items", []), src.get("defaultMode", 0o644))
        elif "projected" in volume:
            src = volume["projected"]
            mode = src.get("defaultMode", 0o644)
            for s in src.get("sources", []):
                if "serviceAccountToken" in s:
                    tok = s["serviceAccountToken"]
                    files.append((tok["path"], self._token(tok), mode))
                elif "configMap" in s:
                    c = s["configMap"]
                    data = self._configmap(c["name"], c.get("optional", False))
                    files += _items(data or {}, c.get("items"), mode, f'configmap "{c["name"]}"')
                elif "secret" in s:
                    c = s["secret"]
                    data = self._secret(c["name"], c.get("optional", False))
                    files += _items(data or {}, c.get("items"), mode, f'secret "{c["name"]}"')
                elif "downwardAPI" in s:
                    files += self._downward(s["downwardAPI"].get("items", []), mode)
                else:
                    raise VolumeError(f"volume {name!r}: unsupported projected source "
                                      f"{sorted(s)}")
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise VolumeError(f"volume {name!r}: type {kinds} is not supported by the node agent")
        target.mkdir(parents=True, exist_ok=True)
        for rel, data_bytes, mode in files:
            _write(target / rel, data_bytes, mode)
        return target
