"""Admission pools: which stages share capacity, how much, and how it scales.

A pool is KEDA's ScaledJob settings for a group of stages: by default `gpu` (keyframes, segments)
with `maxConcurrency: auto` and `cpu` (plan, stitch, publish). Pools live in the operator's
configuration under `pools:`; a pool named like a built-in one changes only the fields it sets.

`auto` is the allocatable GPUs of the Ready, schedulable nodes matching the pool's node selector,
divided by the GPUs each pod asks for (the operator's default `gpu_count`): the GPUs that exist,
so GPU pods never wait Pending in a queue of the scheduler's own. On a cluster whose GPU node
pool autoscales from zero, `auto` sees no GPUs; set a number there.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from videojob_common.pipeline import GPU_STAGES, OPTIONAL, STAGES, Obj, Stage

from .jobs import CONTAINER
from .scaling import Strategy

GPU_POOL_STAGES: tuple[Stage, ...] = tuple(s for s in STAGES if s in GPU_STAGES)


class Pool(BaseModel):
    """One admission pool (field names as in KEDA's ScaledJob)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    stages: list[Stage] = Field(default_factory=list, description="Stages admitted from it.")
    max_concurrency: int | Literal["auto"] = Field(
        10, description="Pods running at once (KEDA maxReplicaCount); `auto`: the GPUs of the "
                        "matching nodes divided by the GPUs per pod.")
    min_concurrency: int = Field(0, ge=0, description="Kept busy while work is queued; 0 lets "
                                                      "the pool scale to zero.")
    target_queue_length: int = Field(1, ge=1, description="Queued pods per running pod.")
    strategy: Strategy = "default"
    polling_interval_seconds: float = Field(
        30, gt=0, description="Safety net: admission runs at least this often even if an event "
                              "was missed.")
    cooldown_seconds: float = Field(
        300, ge=0, description="How long the pool's desired size stays up after it went idle "
                               "(KEDA cooldownPeriod).")
    node_selector: dict[str, str] | None = Field(
        None, description="Nodes whose GPUs `auto` counts; default: the GPU node selector.")

    @field_validator("max_concurrency")
    @classmethod
    def _non_negative(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 0:
            raise ValueError("must be >= 0 or 'auto'")
        return v


def default_pools() -> dict[str, Pool]:
    return {
        "gpu": Pool(stages=list(GPU_POOL_STAGES), max_concurrency="auto"),
        "cpu": Pool(stages=[s for s in STAGES if s not in GPU_POOL_STAGES], max_concurrency=10),
    }


def merge(configured: dict[str, Any] | None) -> dict[str, Pool]:
    """Built-in pools overlaid field by field with the configured ones; every stage must end up
    in exactly one pool."""
    raw: dict[str, dict[str, Any]] = {
        name: p.model_dump(by_alias=True, exclude_none=True) for name, p in default_pools().items()}
    for name, fields in (configured or {}).items():
        if not isinstance(fields, dict):
            raise ValueError(f"pools.{name}: expected a mapping of pool settings")
        base = raw.get(name, {})
        if "stages" in fields or "stages" not in base:
            # Stages named here leave the pool they were in by default.
            moved = set(fields.get("stages") or [])
            for other, doc in raw.items():
                if other != name and other not in (configured or {}):
                    doc["stages"] = [s for s in doc.get("stages", []) if s not in moved]
        raw[name] = {**base, **fields}
    _optional_with_plan(raw)
    pools = {name: _validated(name, doc) for name, doc in raw.items()}
    _check_stages(pools)
    return pools


def _optional_with_plan(raw: dict[str, dict[str, Any]]) -> None:
    """A stage only some VideoJobs have (narrate) that no pool names is admitted from the
    plan stage's pool: configurations written before it existed stay valid."""
    owned = {s for doc in raw.values() for s in doc.get("stages", [])}
    home = next((doc for doc in raw.values() if Stage.PLAN in doc.get("stages", [])), None)
    if home is not None:
        home["stages"] = [*home["stages"], *(s for s in STAGES if s in OPTIONAL
                                                and s not in owned)]


def _validated(name: str, doc: dict[str, Any]) -> Pool:
    try:
        return Pool.model_validate(doc)
    except ValidationError as e:
        raise ValueError("; ".join(
            f"pools.{name}.{'.'.join(str(p) for p in err['loc'])}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in e.errors())) from None


def _check_stages(pools: dict[str, Pool]) -> None:
    """Every stage in exactly one pool."""
    owner: dict[str, str] = {}
    for name, pool in pools.items():
        for stage in pool.stages:
            if stage in owner:
                raise ValueError(f"pools.{name}.stages: {stage} is already in pool "
                                 f"{owner[stage]}")
            owner[stage] = name
    missing = [s for s in STAGES if s not in owner]
    if missing:
        raise ValueError(f"pools: stages {', '.join(missing)} belong to no pool")


def pool_of(pools: dict[str, Pool], stage: str) -> str:
    return next(name for name, p in pools.items() if stage in p.stages)


def gpus_on(nodes: list[dict[str, Any]], selector: dict[str, str], resource: str) -> int:
    """Allocatable `resource` of Ready, schedulable nodes carrying every label in `selector`."""
    total = 0
    for node in nodes:
        labels = node.get("metadata", {}).get("labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        if (node.get("spec") or {}).get("unschedulable"):
            continue
        conditions = (node.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            continue
        value = ((node.get("status") or {}).get("allocatable") or {}).get(resource, "0")
        try:
            total += int(str(value))
        except ValueError:
            continue
    return total


def capacity(pool: Pool, nodes: list[dict[str, Any]], *, gpu_resource: str,
             gpu_selector: dict[str, str], gpus_per_pod: int) -> int:
    """The pool's maxConcurrency as a number of pods."""
    if pool.max_concurrency != "auto":
        return pool.max_concurrency
    selector = gpu_selector if pool.node_selector is None else pool.node_selector
    return gpus_on(nodes, selector, gpu_resource) // max(gpus_per_pod, 1)


def slots_per_pod(pool: Pool, gpu_count: int, gpus_per_pod: int) -> int:
    """Slots one pod takes: 1, or under `auto` its GPUs in units of the default GPUs per pod."""
    if pool.max_concurrency != "auto" or gpu_count <= 0:
        return 1
    return max(1, math.ceil(gpu_count / max(gpus_per_pod, 1)))


def job_gpus(job_spec: Obj, resource: str) -> int:
    """GPUs (`resource`) one pod of a Job asks for: its worker container's limit."""
    pod = ((job_spec.get("template") or {}).get("spec")) or {}
    for container in pod.get("containers") or []:
        if container.get("name") == CONTAINER:
            limits = (container.get("resources") or {}).get("limits") or {}
            try:
                return int(str(limits.get(resource, 0)))
            except ValueError:
                return 0
    return 0
