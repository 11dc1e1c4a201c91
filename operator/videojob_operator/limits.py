"""What an administrator lets a namespace ask for, and where GPU stage pods may run.

**Ceilings** (`limits` in the operator configuration): by namespace, "*" for the default; a
namespace's entry overrides the default field by field, and an unset field is no limit. A spec
over a limit is refused (phase `Failed`, reason `InvalidSpec`) with the field, the value and the
limit named. Priority is a band (`min_priority`..`max_priority`): a tenant's priority orders only
within what the administrator allows it, so no namespace can push ahead of the others by asking
for more (docs/tenancy.md, "Fairness"). Priority may change at any time; a change out of the
band fails the VideoJob like any spec over a limit.

**Pod resources** (`limits.<namespace>.pod_resources`, `scratch_size_limit`): each stage pod's
requests and limits, and its /scratch size limit, set by the administrator; a VideoJob has no
field for them, so a tenant can neither raise nor drop them.

**Placement** (`placement`): the administrator's GPU node selector and tolerations always apply.
A tenant's `spec.gpu.nodeSelector` may only add labels (a key the administrator sets must keep
the administrator's value), so it can only narrow where pods go; a tenant's toleration widens it,
so one is allowed only for a taint key the administrator lists in
`placement.tenant_toleration_keys`, and never a key-less one (which tolerates every taint).

Pure: the planner refuses a spec that breaks a rule before any stage runs.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from videojob_common.pipeline import Stage

from .api import VideoJobSpec

LIMIT_FIELDS = ("max_pixel_frames", "max_scenes", "max_gpus_per_pod", "max_gpus_per_videojob",
                "max_total_seconds", "max_stage_seconds", "max_pending_seconds", "min_priority",
                "max_priority")


class Limits(BaseModel):
    """Ceilings of one namespace (or of all, "*"); None: no limit."""

    model_config = ConfigDict(extra="forbid")

    # width x height x frames of the video (1920x1080 x 30 s x 30 fps = 1.87e9)
    max_pixel_frames: int | None = Field(None, ge=1)
    max_scenes: int | None = Field(None, ge=1)
    max_gpus_per_pod: int | None = Field(None, ge=0)
    # GPUs the VideoJob may hold at once: per pod x the scenes its segments stage runs together
    max_gpus_per_videojob: int | None = Field(None, ge=0)
    max_total_seconds: int | None = Field(None, ge=1)
    max_stage_seconds: int | None = Field(None, ge=1)
    max_pending_seconds: int | None = Field(None, ge=1)
    min_priority: int | None = Field(None, ge=-100, le=100)
    max_priority: int | None = Field(None, ge=-100, le=100)
    # Each stage pod's requests and limits, by stage (the chart's are measured: docs/tenancy.md),
    # and the size limit of its /scratch.
    pod_resources: dict[Stage, PodResources] | None = None
    scratch_size_limit: str | None = None

    @field_validator("scratch_size_limit")
    @classmethod
    def _scratch(cls, value: str | None) -> str | None:
        if value is not None:
            quantity(value)
        return value


QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
UNITS = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20,
         "Gi": 2**30, "Ti": 2**40}
RESOURCES = ("cpu", "memory", "ephemeral-storage")


def quantity(text: str) -> float:
    """A Kubernetes quantity ("500m", "2Gi", "1.5") as a number; ValueError if it is not one."""
    m = QUANTITY.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 2Gi)")
    return float(m.group(1)) * UNITS[m.group(2) or ""]


class PodResources(BaseModel):
    """A stage pod's container requests and limits (Kubernetes quantities)."""

    model_config = ConfigDict(extra="forbid")

    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid(self) -> PodResources:
        for part in (self.requests, self.limits):
            for name, value in part.items():
                if name not in RESOURCES:
                    raise ValueError(f"{name!r}: one of {', '.join(RESOURCES)}")
                quantity(value)
        for name, limit in self.limits.items():
            request = self.requests.get(name)
            if request is not None and quantity(request) > quantity(limit):
                raise ValueError(f"{name}: the request {request} is over the limit {limit}")
        return self

    def manifest(self) -> dict[str, dict[str, str]]:
        return {k: dict(v) for k, v in (("requests", self.requests), ("limits", self.limits))
                if v}


class Placement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Taint keys a tenant may tolerate in spec.gpu.tolerations (besides the administrator's own
    # default tolerations, which always apply).
    tenant_toleration_keys: list[str] = Field(default_factory=list)


def for_namespace(limits: dict[str, Limits], namespace: str) -> Limits:
    """The namespace's ceilings: its entry over the "*" one, field by field."""
    base = limits.get("*", Limits())
    own = limits.get(namespace)
    if own is None:
        return base
    return base.model_copy(update=own.model_dump(exclude_unset=True))


def over_limits(spec: VideoJobSpec, scenes: int, gpus_per_pod: int, total: int, stage: int,
                pending: int, limits: Limits) -> list[str]:
    """The spec's values over the namespace's ceilings, one line per field. `scenes`,
    `gpus_per_pod` and the timeouts are the effective values (defaults filled in)."""
    width, _, height = spec.resolution.partition("x")
    pixel_frames = int(width) * int(height) * spec.duration_seconds * spec.fps
    checks = [
        ("spec.resolution x durationSeconds x fps", pixel_frames, limits.max_pixel_frames,
         "max_pixel_frames"),
        ("spec.scenes", scenes, limits.max_scenes, "max_scenes"),
        ("spec.gpu.count", gpus_per_pod, limits.max_gpus_per_pod, "max_gpus_per_pod"),
        ("spec.gpu.count x scenes", gpus_per_pod * scenes, limits.max_gpus_per_videojob,
         "max_gpus_per_videojob"),
        ("spec.timeouts.totalSeconds", total, limits.max_total_seconds, "max_total_seconds"),
        ("spec.timeouts.stageSeconds", stage, limits.max_stage_seconds, "max_stage_seconds"),
        ("spec.timeouts.pendingSeconds", pending, limits.max_pending_seconds,
         "max_pending_seconds"),
        ("spec.priority", spec.priority, limits.max_priority, "max_priority"),
    ]
    out = [f"{field}: {value} is over this namespace's limit of {limit} "
           f"(operator configuration limits.{name})"
           for field, value, limit, name in checks if limit is not None and value > limit]
    if limits.min_priority is not None and spec.priority < limits.min_priority:
        out.append(f"spec.priority: {spec.priority} is under this namespace's limit of "
                   f"{limits.min_priority} (operator configuration limits.min_priority)")
    return out


def widened_placement(spec: VideoJobSpec, admin_selector: dict[str, str],
                      placement: Placement) -> list[str]:
    """Where the tenant's placement would widen the administrator's, one line per field."""
    gpu = spec.gpu
    out = []
    for key, value in sorted(((gpu.node_selector if gpu else None) or {}).items()):
        if key in admin_selector and admin_selector[key] != value:
            out.append(f"spec.gpu.nodeSelector.{key}: the administrator's placement sets "
                       f"{key}={admin_selector[key]}; a VideoJob may only add labels")
    for i, t in enumerate((gpu.tolerations if gpu else None) or []):
        if not t.key:
            out.append(f"spec.gpu.tolerations[{i}]: a toleration without a key tolerates every "
                       "taint; name the taint's key")
        elif t.key not in placement.tenant_toleration_keys:
            allowed = ", ".join(placement.tenant_toleration_keys) or "none"
            out.append(f"spec.gpu.tolerations[{i}].key: {t.key!r} is not a taint VideoJobs may "
                       f"tolerate here (operator configuration "
                       f"placement.tenant_toleration_keys: {allowed})")
    return out
