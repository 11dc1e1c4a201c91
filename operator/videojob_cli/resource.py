"""The parts of a VideoJob the plugin reads, validated leniently.

The operator's own models (`videojob_operator.api`) are strict: unknown fields are errors and
phases are a closed set, which is right for the side that writes the status. A kubectl plugin is
often older or newer than the operator of the cluster it talks to, so these views accept unknown
fields and phases, default what is missing (a VideoJob the operator has not seen yet has no
status at all), and keep only what the plugin shows. Field names and aliases follow the CRD.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from videojob_common.pipeline import OPTIONAL, STAGES, TERMINAL
from videojob_operator.api import API_VERSION, GROUP, KIND, PLURAL, VERSION

__all__ = ["API_VERSION", "GROUP", "KIND", "PLURAL", "STAGES", "VERSION", "VideoJobView"]

RESOURCE = f"videojob.{GROUP}"  # how kubectl names the kind in its messages
FINISHED = TERMINAL


class View(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              frozen=True)


class StageView(View):
    name: str
    phase: str = "Pending"
    progress: int = 0
    attempts: int = 0
    completed: int | None = None
    total: int | None = None
    message: str | None = None


class OutputView(View):
    uri: str | None = None
    bytes: int | None = None
    md5: str | None = None


class StatusView(View):
    phase: str | None = None
    progress: int | None = None
    current_stage: str | None = None
    message: str | None = None
    reason: str | None = None
    stages: list[StageView] = Field(default_factory=list)
    output_uri: str | None = Field(None, alias="outputURI")
    output: OutputView | None = None
    queue_position: int | None = None


class MetadataView(View):
    name: str = ""
    namespace: str = ""
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None


class SpecView(View):
    suspend: bool = False


class VideoJobView(View):
    metadata: MetadataView = Field(default_factory=MetadataView)
    spec: SpecView = Field(default_factory=SpecView)
    status: StatusView = Field(default_factory=StatusView)

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> VideoJobView:
        # `status: null` and `spec: null` are possible on the wire; treat them as absent.
        return cls.model_validate({k: v for k, v in obj.items() if v is not None})

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def phase(self) -> str:
        """The phase, `Pending` before the operator has written any status."""
        return self.status.phase or "Pending"

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED

    @property
    def output_uri(self) -> str | None:
        return self.status.output_uri or (self.status.output.uri if self.status.output else None)

    def stage(self, name: str) -> StageView:
        """A stage's status; a stage not reported yet is Pending at 0 %."""
        found = next((s for s in self.status.stages if s.name == name), None)
        return found or StageView(name=name)

    def stages(self) -> list[StageView]:
        """Every stage in pipeline order, then any the plugin does not know (a newer operator)."""
        reported = {s.name for s in self.status.stages}
        known = [self.stage(name) for name in STAGES if name not in OPTIONAL or name in reported]
        return known + [s for s in self.status.stages if s.name not in STAGES]


def display_name(name: str) -> str:
    """`videojob.videojob.dev/NAME`, as kubectl names an object in `created`/`deleted` lines."""
    return f"{RESOURCE}/{name}"
