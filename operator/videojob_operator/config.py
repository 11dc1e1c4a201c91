"""Operator configuration and the effective values each VideoJob runs with.

Precedence, field by field: the VideoJob's spec > the operator's defaults > built-in defaults.
The operator's defaults come from a YAML file (the ConfigMap the Helm chart renders, mounted at
`VIDEOJOB_CONFIG`), then from `VIDEOJOB_*` environment variables for the few settings a developer
changes often. Unknown keys are an error that names them, so a typo never silently falls back to
a default.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from videojob_common.archive.retention import RetentionPolicy, by_namespace
from videojob_common.pipeline import DEFAULT_SCENES

from . import pools as pool_config
from .api import EffectiveSpec, Toleration, VideoJobSpec
from .limits import Limits, Placement
from .notifications import NotifyPolicy
from .pools import Pool
from .storage_policy import HttpInputs, valid_prefix

DEFAULT_GPU_TOLERATIONS = [Toleration(key="nvidia.com/gpu", operator="Exists",
                                      effect="NoSchedule")]


class ConfigError(Exception):
    pass


class Defaults(BaseModel):
    """Operator-wide defaults for what a VideoJob leaves unset."""

    model_config = ConfigDict(extra="forbid")

    backend: str = "procedural"
    retry_limit: int = Field(3, ge=0, le=20)
    retry_backoff_seconds: int = Field(5, ge=0)
    total_seconds: int = Field(3600, ge=1)
    stage_seconds: int = Field(900, ge=1)
    pending_seconds: int = Field(600, ge=1)
    gpu_count: int = Field(1, ge=0)
    gpu_resource_name: str = "nvidia.com/gpu"
    gpu_node_selector: dict[str, str] = Field(default_factory=dict)
    gpu_tolerations: list[Toleration] = Field(
        default_factory=lambda: list(DEFAULT_GPU_TOLERATIONS))


class SecretKeyRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    key: str = Field(min_length=1)


class ArchiveRetention(BaseModel):
    """How long the archive keeps one namespace's VideoJobs ("*": every namespace without a
    policy of its own): those finished within `max_age_days`, at most the `max_rows` newest."""

    model_config = ConfigDict(extra="forbid")

    namespace: str = Field("*", min_length=1)
    max_age_days: float | None = Field(None, gt=0)
    max_rows: int | None = Field(None, ge=0)

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            namespace=None if self.namespace == "*" else self.namespace,
            max_age=dt.timedelta(days=self.max_age_days) if self.max_age_days else None,
            max_rows=self.max_rows)


class ArchiveConfig(BaseModel):
    """The archive of finished VideoJobs in PostgreSQL (archiving.py, docs/history.md): on when
    `dsn` is set ($VIDEOJOB_ARCHIVE_DSN, from a Secret), off otherwise."""

    model_config = ConfigDict(extra="forbid")

    dsn: SecretStr | None = None
    retention: list[ArchiveRetention] = Field(default_factory=list)
    retention_interval_seconds: float = Field(3600.0, gt=0)
    # A deleted VideoJob keeps its finalizer until it is archived, at most this long (the
    # database may be down): then it goes unarchived, with a Warning Event.
    hold_seconds: int = Field(600, ge=0)
    # Rows written to a transaction, at most (a burst of completions goes in a few).
    batch: int = Field(200, ge=1, le=5000)

    @property
    def enabled(self) -> bool:
        return self.dsn is not None and bool(self.dsn.get_secret_value())

    @field_validator("retention")
    @classmethod
    def _one_policy_each(cls, value: list[ArchiveRetention]) -> list[ArchiveRetention]:
        by_namespace([r.policy() for r in value], [])  # two for one namespace: ValueError
        return value


class SharedCache(BaseModel):
    """Namespaces that read and write one cache (docs/reuse.md: members trust each other's
    writes, as they would a shared bucket)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    namespaces: list[str] = Field(min_length=1)


class CacheLimit(BaseModel):
    """How much of the stage cache one namespace keeps ("*": every namespace without a limit
    of its own, and the shared caches): entries written within `max_age_days`, then at most
    `max_bytes`, the oldest evicted first (cache_eviction.py)."""

    model_config = ConfigDict(extra="forbid")

    namespace: str = Field("*", min_length=1)
    max_bytes: int | None = Field(None, ge=0)
    max_age_days: int | None = Field(None, ge=1)


class CacheConfig(BaseModel):
    """The stage cache (issue #25): each namespace's own, unless an administrator made some
    namespaces share one. Off unless turned on (the chart and `make operator-up` do): the
    operator then reads every namespace's cache and writes reused videos to their output URIs,
    storage access an administrator grants on purpose (docs/reuse.md)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    shared: list[SharedCache] = Field(default_factory=list)
    # Lookups run on threads off the reconcile path (cache_lookup.py).
    lookup_threads: int = Field(4, ge=1, le=32)
    # Housekeeping (cache_sweeper.py): limits by namespace, a sweep this often, and how long a
    # writer folder no manifest names is kept (an upload in progress, or a pod killed mid-way).
    limits: list[CacheLimit] = Field(default_factory=list)
    sweep_interval_seconds: float = Field(300.0, ge=1)
    writer_grace_seconds: int = Field(3600, ge=0)

    def shared_by(self, namespace: str) -> str | None:
        return next((s.name for s in self.shared if namespace in s.namespaces), None)

    def limit_for(self, namespace: str | None) -> CacheLimit | None:
        """The namespace's limit, else the default ("*"); None: a shared cache's, the default."""
        by_ns = {limit.namespace: limit for limit in self.limits}
        return by_ns.get(namespace or "*") or by_ns.get("*")

    @field_validator("limits")
    @classmethod
    def _one_limit_each(cls, value: list[CacheLimit]) -> list[CacheLimit]:
        seen = set()
        for limit in value:
            if limit.namespace in seen:
                raise ValueError(f"cache.limits: two limits for namespace {limit.namespace}")
            seen.add(limit.namespace)
        return value

    @field_validator("shared")
    @classmethod
    def _one_cache_each(cls, value: list[SharedCache]) -> list[SharedCache]:
        seen: dict[str, str] = {}
        for s in value:
            for ns in s.namespaces:
                if ns in seen:
                    raise ValueError(f"cache.shared: namespace {ns} is in {seen[ns]} and "
                                     f"{s.name}")
                seen[ns] = s.name
        return value


class OperatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    storage_root: str = "file:///var/lib/videojob/artifacts"
    worker_image: str = "ghcr.io/videojob/worker:0.1.0"
    # Overrides the worker image's entrypoint (the stage is still the only argument).
    worker_command: list[str] | None = None
    worker_service_account: str = "default"
    # Passed to every stage pod as-is (e.g. STORAGE_EMULATOR_HOST, GOOGLE_CLOUD_PROJECT).
    worker_env: dict[str, str] = Field(default_factory=dict)
    # Environment variables of stage pods read from a Secret in the VideoJob's namespace (e.g.
    # VIDEOJOB_REDIS_URL with a password), so no credential is written into a Job's spec.
    worker_secret_env: dict[str, SecretKeyRef] = Field(default_factory=dict)
    # Extra volumes and mounts of stage pods (a GCS key Secret, a shared file:// storage PVC).
    worker_volumes: list[dict[str, Any]] = Field(default_factory=list)
    worker_volume_mounts: list[dict[str, Any]] = Field(default_factory=list)
    redis_url: str | None = None
    # The master key progress tokens are derived from (videojob_common.progress_auth); from
    # $VIDEOJOB_PROGRESS_KEY (the chart's Secret). Unset: one made up at start, so reports signed
    # before a restart stop counting after it (docs/tenancy.md).
    progress_key: SecretStr | None = None
    # Where VideoJobs may read images and audio from (gs://bucket/path/ or file:///path/), besides
    # their namespace's prefix of storage_root: by namespace, "*" for all (storage_policy.py).
    read_prefixes: dict[str, list[str]] = Field(default_factory=dict)
    # http(s) inputs: off unless enabled, then only from the listed hosts.
    http_inputs: HttpInputs = Field(default_factory=HttpInputs)
    # Webhook notifications (spec.notify): where they may go besides public addresses, their
    # retries and timeouts (notifications.py, delivery.py).
    notify: NotifyPolicy = Field(default_factory=NotifyPolicy)
    # The archive of finished VideoJobs (off without a DSN).
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)
    # The stage cache: reuse of outputs whose inputs did not change (caching.py).
    cache: CacheConfig = Field(default_factory=CacheConfig)
    # Ceilings by namespace, "*" for the default (limits.py), and what tenants may add to the
    # GPU placement.
    limits: dict[str, Limits] = Field(default_factory=dict)
    placement: Placement = Field(default_factory=Placement)
    # Bound on waiting for a deleted VideoJob's pods to go before its finalizer is removed anyway.
    cancel_timeout_seconds: int = Field(120, ge=1)
    defaults: Defaults = Field(default_factory=Defaults)
    # Admission pools (pools.py); the only part that changes at run time (config_watch.py).
    pools: dict[str, Pool] = Field(default_factory=pool_config.default_pools)
    # How this process runs (environment and command line, not usually the ConfigMap):
    # the namespaces it serves (empty: all; `--namespace`);
    namespaces: list[str] = Field(default_factory=list)
    # seconds between the listings that correct the caches (store.Store.resync);
    resync_seconds: float = Field(60.0, gt=0)
    # the ConfigMap (<namespace>/<name>) whose `pools:` it follows at run time, and its key;
    configmap: str = ""
    configmap_key: str = "config.yaml"
    # the cluster-scoped object VideoJobPools are owned by (the Helm chart's ClusterRole), so
    # that uninstalling the operator garbage-collects them; unset: the pools are left in place.
    pool_owner_clusterrole: str = ""

    @field_validator("read_prefixes")
    @classmethod
    def _clean_prefixes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {ns: [valid_prefix(p) for p in prefixes] for ns, prefixes in value.items()}

    @field_validator("worker_volumes", "worker_volume_mounts")
    @classmethod
    def _named(cls, value: list[dict[str, Any]], info: ValidationInfo) -> list[dict[str, Any]]:
        for i, item in enumerate(value):
            if not isinstance(item.get("name"), str) or not item["name"]:
                raise ValueError(f"{info.field_name}: item {i} needs a name")
        return value

    @model_validator(mode="after")
    def _mounts_match_volumes(self) -> OperatorConfig:
        names = {v["name"] for v in self.worker_volumes} | {"scratch"}
        for m in self.worker_volume_mounts:
            if m["name"] not in names:
                raise ValueError(f"worker_volume_mounts: {m['name']!r} is not in worker_volumes")
            if not m.get("mountPath"):
                raise ValueError(f"worker_volume_mounts: {m['name']!r} needs a mountPath")
        return self

    @field_validator("pools", mode="before")
    @classmethod
    def _merge_pools(cls, value: Any) -> dict[str, Pool]:
        if value is None:
            return pool_config.default_pools()
        if not isinstance(value, dict):
            raise ValueError("pools: expected a mapping of pool name -> settings")
        if value and all(isinstance(v, Pool) for v in value.values()):
            return value
        return pool_config.merge(value)


ENV_KEYS = {
    "VIDEOJOB_STORAGE_ROOT": "storage_root",
    "VIDEOJOB_WORKER_IMAGE": "worker_image",
    "VIDEOJOB_REDIS_URL": "redis_url",
    "VIDEOJOB_PROGRESS_KEY": "progress_key",
    "VIDEOJOB_RESYNC_SECONDS": "resync_seconds",
    "VIDEOJOB_CONFIGMAP": "configmap",
    "VIDEOJOB_CONFIGMAP_KEY": "configmap_key",
    "VIDEOJOB_POOL_OWNER_CLUSTERROLE": "pool_owner_clusterrole",
}


def load(path: str | None = None, environ: dict[str, str] | None = None,
         text: str | None = None) -> OperatorConfig:
    """The configuration from `text` (a ConfigMap's document), else the file at `path` or
    $VIDEOJOB_CONFIG, with $VIDEOJOB_* overrides."""
    env = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    path = path or env.get("VIDEOJOB_CONFIG")
    if text is None and path:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ConfigError(f"cannot read operator configuration {path}: {e}") from e
    if text is not None:
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"operator configuration is not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError("operator configuration must be a mapping")
    for var, key in ENV_KEYS.items():
        if env.get(var):
            data[key] = env[var]
    if env.get("VIDEOJOB_ARCHIVE_DSN"):  # a Secret's, never in the ConfigMap
        archive = data.get("archive")
        data["archive"] = {**(archive if isinstance(archive, dict) else {}),
                           "dsn": env["VIDEOJOB_ARCHIVE_DSN"]}
    try:
        return OperatorConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            str(err["ctx"]["error"]) if err["type"] == "value_error" and "ctx" in err
            else f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"invalid operator configuration: {problems}") from e


class LiveConfig:
    """The configuration in force: built once at start (`load`, in __main__), passed to
    everything that reads it, and with new pools when the ConfigMap changes (config_watch.py).
    Readers take `current` when they need it, so a change reaches them at their next look."""

    def __init__(self, config: OperatorConfig) -> None:
        self.current = config
        self.listeners: list[Callable[[OperatorConfig], None]] = []

    def subscribe(self, listener: Callable[[OperatorConfig], None]) -> None:
        self.listeners.append(listener)

    def replace_pools(self, pools: dict[str, Pool]) -> bool:
        """Puts `pools` in force; False if they are the pools in force already."""
        if pools == self.current.pools:
            return False
        self.current = self.current.model_copy(update={"pools": pools})
        for listener in self.listeners:
            listener(self.current)
        return True


def artifact_root(config: OperatorConfig) -> str:
    return config.storage_root.rstrip("/")


def effective(spec: VideoJobSpec, config: OperatorConfig, namespace: str, name: str,
              uid: str) -> EffectiveSpec:
    d = config.defaults
    retry, timeouts, gpu = spec.retry, spec.timeouts, spec.gpu

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    root = artifact_root(config)
    output = spec.output.uri if spec.output and spec.output.uri else None
    # The administrator's labels win (a conflicting spec is refused: limits.widened_placement).
    node_selector = {**((gpu.node_selector if gpu else None) or {}), **d.gpu_node_selector}
    tolerations = list(d.gpu_tolerations)
    for t in (gpu.tolerations if gpu and gpu.tolerations else []):
        if t not in tolerations:
            tolerations.append(t)
    scenes = spec.scenes or (len(spec.images) if spec.images else DEFAULT_SCENES)
    return EffectiveSpec(
        scenes=scenes,
        backend=spec.backend or d.backend,
        output_uri=output or f"{root}/{namespace}/{name}/{uid}/output.mp4",
        artifact_root=root,
        retry_limit=pick(retry and retry.limit, d.retry_limit),
        retry_backoff_seconds=pick(retry and retry.backoff_seconds, d.retry_backoff_seconds),
        total_seconds=pick(timeouts and timeouts.total_seconds, d.total_seconds),
        stage_seconds=pick(timeouts and timeouts.stage_seconds, d.stage_seconds),
        pending_seconds=pick(timeouts and timeouts.pending_seconds, d.pending_seconds),
        gpu_count=pick(gpu and gpu.count, d.gpu_count),
        gpu_resource_name=pick(gpu and gpu.resource_name, d.gpu_resource_name),
        gpu_node_selector=node_selector,
        gpu_tolerations=tolerations,
        worker_image=config.worker_image,
    )
