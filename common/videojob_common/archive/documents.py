"""The archive's rows as documents (JSON): one page of a history list, and one archived run with
its stages and pods. The gateway serves these (and its OpenAPI document describes them) and
`kubectl videojob history -o json` prints the same, so a script reads one shape from either.

Pure: rows (rows.py) in, pydantic models out. Times are RFC 3339 in UTC, as the API server
writes them; names are camelCase, as the rest of the HTTP API's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .rows import ArchiveRow, PodRecord, StageRecord, Summary


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class ArchivedVideoJob(BaseModel):
    """One finished VideoJob as a history list shows it (the archive's summary row)."""

    namespace: str
    name: str
    uid: str
    phase: str = Field(description="Succeeded or Failed.")
    reason: str | None = Field(None, description="Why it failed.")
    failedStage: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    createdAt: str
    startedAt: str | None = None
    finishedAt: str
    gpuSeconds: float = Field(description="Every pod of every stage, every attempt: "
                                          "(end - start) x GPUs held.")
    outputURI: str | None = None
    outputBytes: int | None = None


class ArchivedPod(BaseModel):
    """One pod of a stage: one attempt at one scene (or at the whole stage)."""

    name: str
    index: int | None = Field(None, description="The completion index (the scene, for "
                                                "segments).")
    attempt: int | None = Field(None, description="Failures of that index before this pod.")
    phase: str
    node: str | None = None
    startedAt: str | None = Field(None, description="Absent: never started (no GPU-seconds).")
    finishedAt: str | None = Field(None, description="Absent: still running when archived.")
    gpus: int = 0
    gpuSeconds: float = 0.0
    exitCode: int | None = None
    reason: str | None = None


class ArchivedStage(BaseModel):
    name: str
    phase: str | None = None
    attempts: int = 0
    startedAt: str | None = None
    finishedAt: str | None = None
    jobName: str | None = None
    message: str | None = None
    gpuSeconds: float = 0.0
    pods: list[ArchivedPod] = Field(default_factory=list)


class ArchivedRun(ArchivedVideoJob):
    """One archived VideoJob whole: the summary, then what only a single read shows."""

    message: str | None = None
    outputMD5: str | None = None
    outputCRC32C: str | None = None
    stages: list[ArchivedStage] = Field(default_factory=list)
    conditions: list[dict[str, Any]] = Field(default_factory=list)
    spec: dict[str, Any] = Field(default_factory=dict,
                                 description="As submitted, URLs' secrets redacted.")
    effective: dict[str, Any] | None = Field(
        None, description="The values it ran with, defaults filled in (status.effective).")


class HistoryPage(BaseModel):
    """One page of a history list, newest first."""

    items: list[ArchivedVideoJob]
    # Opaque; pass it back as `continue` for the next page. Absent on the last page.
    continue_: str | None = Field(None, alias="continue")
    estimatedTotal: int = Field(
        description="About how many archived VideoJobs the namespace (and phase) holds, from "
                    "PostgreSQL's statistics, never counted: the label selector and `since` are "
                    "not in it, and it lags writes until the next ANALYZE.")

    model_config = ConfigDict(populate_by_name=True)


def item(s: Summary) -> ArchivedVideoJob:
    return ArchivedVideoJob(
        namespace=s.namespace, name=s.name, uid=s.uid, phase=s.phase, reason=s.reason,
        failedStage=s.failed_stage, labels=dict(s.labels), createdAt=_iso(s.created) or "",
        startedAt=_iso(s.started), finishedAt=_iso(s.finished) or "",
        gpuSeconds=round(s.gpu_seconds, 3), outputURI=s.output_uri, outputBytes=s.output_bytes)


def page(rows: Sequence[Summary], next_cursor: str | None, estimated: int) -> HistoryPage:
    return HistoryPage(items=[item(r) for r in rows], continue_=next_cursor,
                       estimatedTotal=estimated)


def pod(p: PodRecord) -> ArchivedPod:
    return ArchivedPod(name=p.name, index=p.index, attempt=p.attempt, phase=p.phase,
                       node=p.node, startedAt=_iso(p.started), finishedAt=_iso(p.finished),
                       gpus=p.gpus, gpuSeconds=p.gpu_seconds, exitCode=p.exit_code,
                       reason=p.reason)


def stage(s: StageRecord) -> ArchivedStage:
    return ArchivedStage(name=s.name, phase=s.phase, attempts=s.attempts,
                         startedAt=_iso(s.started), finishedAt=_iso(s.finished),
                         jobName=s.job_name, message=s.message,
                         gpuSeconds=round(s.gpu_seconds, 3), pods=[pod(p) for p in s.pods])


def run(r: ArchiveRow) -> ArchivedRun:
    d = r.detail
    return ArchivedRun(
        **item(r.summary).model_dump(), message=d.message, outputMD5=d.output_md5,
        outputCRC32C=d.output_crc32c, stages=[stage(s) for s in d.stages],
        conditions=[dict(c) for c in d.conditions], spec=dict(d.spec),
        effective=dict(d.effective) if d.effective is not None else None)
