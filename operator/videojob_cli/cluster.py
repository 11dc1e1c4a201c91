"""Which cluster and namespace a command acts on, resolved the way kubectl resolves them.

- kubeconfig: `--kubeconfig FILE`, else `$KUBECONFIG` (a list of files, merged as kubectl merges
  them), else `~/.kube/config`; with none of those present but running in a pod, the pod's
  service account (kubectl's in-cluster fallback);
- context: `--context NAME`, else the kubeconfig's current-context;
- namespace: `-n/--namespace`, else the chosen context's namespace, else `default`.

`$KUBECONFIG` is read when the command runs, not when the kubernetes package is imported (its
`KUBE_CONFIG_DEFAULT_LOCATION` is frozen at import time).

Each command gets its own `client.Configuration`, never the package-wide default, so nothing
here leaks into another client in the same process (the tests run commands in-process).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from .errors import CommandError
from .flags import KubeFlags

DEFAULT_KUBECONFIG = "~/.kube/config"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class Target:
    """An API client for the chosen cluster and the namespace commands act in."""

    api: client.ApiClient
    namespace: str

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)


def kubeconfig_files(flags: KubeFlags) -> str:
    """The kubeconfig path(s) kubectl would read, as one os.pathsep-separated string."""
    return flags.kubeconfig or os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG


def _exists(files: str) -> bool:
    return any(Path(p).expanduser().is_file() for p in files.split(os.pathsep) if p)


def _contexts(files: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    try:
        contexts, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=files)
    except config.ConfigException as e:
        raise CommandError(f"kubeconfig {files}: {e}") from None
    return list(contexts or []), current


def context_namespace(flags: KubeFlags) -> str | None:
    """The namespace set in the chosen context of the kubeconfig, if any."""
    files = kubeconfig_files(flags)
    contexts, current = _contexts(files)
    if flags.context is not None:
        chosen = next((c for c in contexts if c.get("name") == flags.context), None)
        if chosen is None:
            raise CommandError(f"context {flags.context!r} not found in kubeconfig {files}")
    else:
        chosen = current
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else None


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and SERVICE_ACCOUNT_NAMESPACE.is_file()


def connect(flags: KubeFlags) -> Target:
    """An API client and namespace for `flags` (no request is made yet)."""
    files = kubeconfig_files(flags)
    cfg = client.Configuration()
    if not flags.kubeconfig and not _exists(files) and _in_cluster():
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        namespace = flags.namespace or SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        return Target(api=client.ApiClient(cfg), namespace=namespace or "default")
    if not _exists(files):
        raise CommandError(f"no kubeconfig found at {files} (pass --kubeconfig or set "
                           "KUBECONFIG)")
    try:
        # persist_config=False: never write refreshed credentials back into the user's file.
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=files, context=flags.context, client_configuration=cfg,
            persist_config=False)
    except config.ConfigException as e:
        raise CommandError(f"kubeconfig {files}: {e}") from None
    namespace = flags.namespace or context_namespace(flags) or "default"
    return Target(api=client.ApiClient(cfg), namespace=namespace)


def server_message(err: client.ApiException) -> str:
    """The API server's own explanation of a refused request (it names the field at fault)."""
    body = err.body
    if body:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and doc.get("message"):
            return " ".join(str(doc["message"]).split())
        if isinstance(body, str) and body.strip():
            return " ".join(body.split())
    return f"{err.status} {err.reason}".strip()
