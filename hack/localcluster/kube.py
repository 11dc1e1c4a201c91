"""A small JSON client for the Kubernetes API, used by the node agent and the cluster scripts.

The node agent works on raw objects (what the API server sends), not on the generated models of
the official client: it needs fields the models may not know yet, strategic-merge patches on
`/status`, and long watches it restarts itself. Connection settings come from a kubeconfig (or the
in-cluster environment) through the official client's loader, so every auth method it supports
works here too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from videojob_common.pipeline import Obj

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer from the API server, with its Status object's reason and message."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {}
        self.reason: str = doc.get("reason", "") if isinstance(doc, dict) else ""
        self.message: str = (
            doc.get("message", "") if isinstance(doc, dict) else ""
        ) or body.decode("utf-8", "replace")[:500]
        super().__init__(f"{status} {self.reason}: {self.message}")


class WatchExpired(Exception):
    """The resourceVersion a watch started from is too old (HTTP 410): list again."""


def path_segment(value: str) -> str:
    return quote(value, safe="")


class Kube:
    def __init__(self, kubeconfig: str | None = None, *, pool_size: int = 32) -> None:
        cfg = k8s_client.Configuration()
        if kubeconfig is None:
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=cfg)
        self.base = cfg.host.rstrip("/")
        self.headers: dict[str, str] = {"Accept": JSON, "User-Agent": "localcluster/0.1"}
        token = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
        if token:
            prefix = cfg.api_key_prefix.get("authorization", "")
            self.headers["Authorization"] = f"{prefix} {token}".strip()
        self.pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=pool_size,
            cert_reqs="CERT_REQUIRED" if cfg.verify_ssl else "CERT_NONE",
            ca_certs=cfg.ssl_ca_cert,
            cert_file=cfg.cert_file,
            key_file=cfg.key_file,
        )

    def _url(self, path: str, query: Mapping[str, Any] | None) -> str:
        url = self.base + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        return url

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = JSON,
        timeout: float = 30.0,
    ) -> Obj:
        headers = dict(self.headers)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        resp = self.pool.request(
            method,
            self._url(path, query),
            body=data,
            headers=headers,
            timeout=urllib3.Timeout(connect=5.0, read=timeout),
            retries=False,
        )
        if resp.status >= 300:
            raise ApiError(resp.status, resp.data)
        if not resp.data:
            return {}
        result: Obj = json.loads(resp.data)
        return result

    def get(self, path: str, **query: Any) -> Obj:
        return self.request("GET", path, query=query)

    def create(self, path: str, body: Obj) -> Obj:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: Obj, content_type: str = MERGE_PATCH) -> Obj:
        return self.request("PATCH", path, body=body, content_type=content_type)

    def delete(self, path: str, body: Obj | None = None) -> Obj:
        return self.request("DELETE", path, body=body)

    def text(self, path: str, **query: Any) -> str:
        headers = dict(self.headers, Accept="*/*")
        resp = self.pool.request("GET", self._url(path, query), headers=headers, retries=False)
        if resp.status >= 300:
            raise ApiError(resp.status, resp.data)
        return str(resp.data.decode("utf-8", "replace"))

    def watch(self, path: str, resource_version: str, *, timeout_seconds: int = 300,
              **query: Any) -> Iterator[Obj]:
        """Yields watch events from `resource_version` until the server closes the stream.

        Raises WatchExpired when the version is too old, so the caller lists again.
        """
        q = dict(query, watch="true", resourceVersion=resource_version,
                 allowWatchBookmarks="true", timeoutSeconds=timeout_seconds)
        resp = self.pool.request(
            "GET",
            self._url(path, q),
            headers=self.headers,
            preload_content=False,
            timeout=urllib3.Timeout(connect=5.0, read=timeout_seconds + 30),
            retries=False,
        )
        try:
            if resp.status == 410:
                raise WatchExpired(path)
            if resp.status >= 300:
                raise ApiError(resp.status, resp.read())
            buf = b""
            for chunk in resp.stream(64 * 1024, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event: Obj = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object", {})
                        if status.get("code") == 410:
                            raise WatchExpired(path)
                        raise ApiError(int(status.get("code", 500)), json.dumps(status).encode())
                    yield event
        finally:
            resp.release_conn()
