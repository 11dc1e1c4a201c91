"""The API's documents: what a client sends and what it gets back (pydantic models; the OpenAPI
document at /api/v1/openapi.json is generated from them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

PREFIX = "/api/v1"


class CreateVideoJob(BaseModel):
    """`POST /api/v1/namespaces/{ns}/videojobs`. The spec is the VideoJob's, as in
    docs/videojob.md; the API server validates it and names what it refuses."""

    # A typo in a top-level field must not be dropped silently: it is refused, named.
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="The VideoJob's name (a DNS subdomain).")
    generateName: str | None = Field(
        None, description="A prefix for a name the API server makes up; used when `name` is "
                          "absent (default `videojob-`).")
    spec: dict[str, Any] = Field(description="The VideoJob's spec (docs/videojob.md).")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels of the VideoJob.")

    @model_validator(mode="after")
    def one_name(self) -> CreateVideoJob:
        if self.name is not None and self.generateName is not None:
            raise ValueError("give name or generateName, not both")
        return self


class RerunVideoJob(BaseModel):
    """`POST /api/v1/namespaces/{ns}/videojobs/{name}:rerun`: a VideoJob like `{name}` that draws
    one scene otherwise (docs/reuse.md). Without `seed` or `description`, a new random seed."""

    model_config = ConfigDict(extra="forbid")

    scene: int = Field(ge=0, le=31, description="The scene, 0-based; below the origin's scene "
                                                "count.")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="The scene's seed.")
    description: str | None = Field(None, min_length=1, max_length=500,
                                    description="What the scene shows, instead of the plan's.")
    name: str | None = Field(None, description="The new VideoJob's name (default: "
                                               "`<name>-rerun-<5 random characters>`).")


class Links(BaseModel):
    self: str
    events: str


class Created(BaseModel):
    """What a create answers (201)."""

    namespace: str
    name: str
    uid: str
    links: Links


class Condition(BaseModel):
    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    lastTransitionTime: str | None = None


class StageState(BaseModel):
    """One stage of the pipeline, as the operator reports it in `status.stages[]`."""

    name: str
    phase: str
    attempts: int = 0
    progress: int = 0
    completed: int | None = None
    total: int | None = None
    message: str | None = None
    startTime: str | None = None
    completionTime: str | None = None


class Result(BaseModel):
    """The published video (once Succeeded)."""

    outputURI: str
    bytes: int | None = None
    md5: str | None = None
    crc32c: str | None = None


class VideoJob(BaseModel):
    """A VideoJob as the API shows it: where it is, not how it is built."""

    namespace: str
    name: str
    uid: str
    resourceVersion: str
    createdAt: str
    labels: dict[str, str] = Field(default_factory=dict)
    phase: str = Field(description="Pending, Queued, Running, Suspended, Succeeded, Failed or "
                                   "Cancelling; Pending until the operator has seen it.")
    stage: str | None = Field(None, description="The stage running now (or last).")
    progress: int = 0
    message: str | None = None
    reason: str | None = Field(None, description="Why it failed.")
    queuePosition: int | None = Field(None, description="While Queued: 1 = next.")
    suspended: bool = False
    deleting: bool = Field(False, description="Deleted, its stages being stopped.")
    conditions: list[Condition] = Field(default_factory=list)
    stages: list[StageState] = Field(default_factory=list)
    result: Result | None = None
    startTime: str | None = None
    completionTime: str | None = None
    links: Links


class VideoJobList(BaseModel):
    items: list[VideoJob]
    # Opaque; pass it back as `continue` for the next page. Absent on the last page.
    continue_: str | None = Field(None, alias="continue")

    model_config = ConfigDict(populate_by_name=True)


class Cancelled(BaseModel):
    """What a delete answers (202): the operator stops the stages, then the VideoJob goes."""

    namespace: str
    name: str
    status: str = "Cancelling"


class DownloadLink(BaseModel):
    """A URL of a Succeeded VideoJob's MP4 that needs no header, for a few minutes."""

    url: str = Field(description="Relative to the gateway; Range requests work through it.")
    expiresAt: str


class VisibleNamespace(BaseModel):
    name: str


class NamespaceList(BaseModel):
    """The namespaces whose VideoJobs the caller may list."""

    namespaces: list[VisibleNamespace]


class KubeEvent(BaseModel):
    """A Kubernetes Event about a VideoJob (the operator's record of what it did)."""

    type: str
    reason: str
    message: str
    count: int = 1
    firstTime: str | None = None
    lastTime: str | None = None


class KubeEvents(BaseModel):
    items: list[KubeEvent]


class NamespaceCounts(BaseModel):
    queued: int = 0
    running: int = 0


class PoolQueue(BaseModel):
    name: str
    stages: list[str] = Field(default_factory=list)
    # Counts of VideoJobs in the namespaces the caller may list (their current stage's pool).
    queued: int = 0
    running: int = 0
    namespaces: dict[str, NamespaceCounts] = Field(default_factory=dict)
    # The pool's own figures (VideoJobPool status, all namespaces together): only for callers
    # who may list videojobpools.
    maxConcurrency: int | None = None
    poolRunningPods: int | None = None
    poolPendingPods: int | None = None
    poolQueuedJobs: int | None = None


class Queues(BaseModel):
    pools: list[PoolQueue]
