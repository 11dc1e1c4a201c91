"""The VideoJob API (`videojob.dev/v1alpha1`): one source for the operator's models and the CRD.

The pydantic models below are what the operator validates and works with; `crd.py` turns the same
models into the CRD's structural OpenAPI schema (descriptions, defaults, bounds, enums and the CEL
rules attached here), so the two cannot drift. `tests/operator/test_crd.py` checks that the
committed CRD in `crds/` is exactly what `crd.py` generates.

Fields the operator's configuration can default (retry, timeouts, GPU placement, backend, output)
carry no CRD default: the API server would otherwise fill them in and the operator's defaults
could never apply (precedence: VideoJob spec > operator defaults > built-in defaults). The
effective values a VideoJob ran with are recorded in `status.effective`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from videojob_common import triggers
from videojob_common.pipeline import Phase, Stage, StagePhase
from videojob_common.triggers import Signature

GROUP = "videojob.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "VideoJob"
PLURAL = "videojobs"
FINALIZER = "videojob.dev/cancel"
POOL_KIND = "VideoJobPool"
POOL_PLURAL = "videojobpools"

URI_PATTERN = r"^(gs|file|https?)://.+"


ImageURI = Annotated[str, Field(pattern=URI_PATTERN, max_length=2048,
                                description="URI of one input image.")]


def immutable(field: str) -> dict[str, Any]:
    return {"x-kubernetes-validations": [
        {"rule": "self == oldSelf", "message": f"spec.{field} is immutable"}]}


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True)


class Output(Model):
    """Where the finished video goes."""

    uri: str | None = Field(
        None, pattern=URI_PATTERN, max_length=2048,
        description="Destination of the final video, e.g. gs://bucket/videos/name.mp4 or "
                    "file:///data/out.mp4. Default: <storage root>/<namespace>/<name>/<uid>/"
                    "output.mp4 under the operator's storage root.")


class Retry(Model):
    """How often a failing stage is retried."""

    limit: int | None = Field(
        None, ge=0, le=20,
        description="Retries of a stage's pods after transient failures (the Job's backoffLimit;"
                    " per scene for segments). Permanent worker errors are never retried. "
                    "Default from the operator configuration, built-in 3.")
    backoff_seconds: int | None = Field(
        None, ge=0, le=3600,
        description="Delay before the operator re-creates a stage Job that was lost (deleted by "
                    "hand, evicted). Pod retries inside a Job use the Job controller's own "
                    "back-off (10 s doubling). Default from the operator configuration, built-in "
                    "5.")


class Timeouts(Model):
    """Time limits; each failure carries its own reason."""

    total_seconds: int | None = Field(
        None, ge=1, le=7 * 86400,
        description="Bound on the whole VideoJob, from its start (reason TotalTimeout). Default "
                    "from the operator configuration, built-in 3600.")
    stage_seconds: int | None = Field(
        None, ge=1, le=7 * 86400,
        description="Bound on each stage attempt (the Job's activeDeadlineSeconds; reason "
                    "StageTimeout). Default from the operator configuration, built-in 900.")
    pending_seconds: int | None = Field(
        None, ge=1, le=7 * 86400,
        description="How long a stage pod may stay unschedulable (e.g. waiting for a GPU) "
                    "before the stage fails (reason Unschedulable). Default from the operator "
                    "configuration, built-in 600.")


class Toleration(Model):
    """A Kubernetes toleration (core/v1 Toleration)."""

    key: str | None = Field(None, max_length=317, description="Taint key to tolerate.")
    operator: Literal["Exists", "Equal"] | None = Field(
        None, description="Exists or Equal (default Equal).")
    value: str | None = Field(None, max_length=63, description="Taint value (with Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to tolerate; empty means all effects.")
    toleration_seconds: int | None = Field(
        None, description="With NoExecute: how long the pod stays bound after the taint appears.")


class Gpu(Model):
    """GPU needs of the GPU stages (keyframes and segments)."""

    count: int | None = Field(
        None, ge=0, le=16,
        description="GPUs per GPU-stage pod, requested as a limit of resourceName. 0 runs the "
                    "GPU stages on CPU. Default from the operator configuration, built-in 1.")
    resource_name: str | None = Field(
        None, max_length=253, pattern=r"^[a-z0-9.\-]+/[a-z0-9.\-_]+$",
        description="Extended resource that counts GPUs. Default nvidia.com/gpu.")
    node_selector: dict[str, str] | None = Field(
        None, description="Node labels GPU-stage pods must match, added to the operator's "
                          "placement: they may only narrow it (a label the operator sets keeps "
                          "its value).")
    tolerations: list[Toleration] | None = Field(
        None, max_length=32,
        description="Tolerations of GPU-stage pods, added to the operator's defaults; only for "
                    "taint keys the operator configuration lets VideoJobs tolerate.")


class NotifyEvent(StrEnum):
    """What a webhook notification tells (spec.notify[].events; the payload's `type`)."""

    QUEUED = "Queued"  # accepted, and again whenever it waits in a queue
    RUNNING = "Running"  # a stage started (the first, or one after a wait or a resume)
    STAGE_SUCCEEDED = "StageSucceeded"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"  # deleted before it finished
    PROGRESS = "Progress"  # the overall progress moved (at most one every 2 s)


NOTIFY_MAX = 4  # destinations per VideoJob
NOTIFY_PENDING_MAX = 16  # undelivered notifications kept per destination (status.notifications)


class SecretKeySelector(Model):
    """One key of a Secret in the VideoJob's namespace."""

    name: str = Field(
        max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Name of the Secret, in the VideoJob's namespace. The operator reads it only "
                    "where the namespace grants its ServiceAccount `get` on this Secret by name "
                    "(a Role and RoleBinding: docs/tenancy.md).")
    key: str = Field(
        max_length=253, pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key in the Secret holding the signing secret: `whsec_` followed by base64 "
                    "of 24 to 64 random bytes (Standard Webhooks).")


class Notify(Model):
    """A webhook the operator calls on the VideoJob's transitions (Standard Webhooks, signed)."""

    url: str = Field(
        max_length=2048, pattern=r"^https?://[^/?#@\s]+([/?][^\s]*)?$",
        json_schema_extra={"x-kubernetes-validations": [
            {"rule": "isURL(self) && url(self).getHostname() != ''",
             "message": "spec.notify[].url must be an http(s) URL with a host and no user "
                        "information"}]},
        description="Where to POST notifications: an http(s) URL (no user information). Its "
                    "host must resolve only to public addresses unless the operator "
                    "configuration allows the network (notify.allow_networks); redirects are "
                    "not followed.")
    events: list[NotifyEvent] = Field(
        min_length=1, max_length=len(NotifyEvent),
        json_schema_extra={"x-kubernetes-validations": [
            {"rule": "self.all(e, self.exists_one(f, f == e))",
             "message": "spec.notify[].events must not repeat an event"}]},
        description="Which transitions to tell: Queued, Running, StageSucceeded, Succeeded, "
                    "Failed, Cancelled, Progress (at most one every 2 seconds).")
    secret_ref: SecretKeySelector = Field(
        description="The signing secret. Every notification is signed with it (headers "
                    "webhook-id, webhook-timestamp, webhook-signature); none is sent unsigned.")


class SceneOverride(Model):
    """One scene drawn otherwise than the plan would: its own seed, its own description
    (docs/reuse.md: only that scene's keyframe and segment render again)."""

    index: int = Field(ge=0, le=31, description="The scene, 0-based (as in plan.json).")
    seed: int | None = Field(None, ge=0, le=2**31 - 1,
                             description="This scene's random seed instead of spec.seed.")
    description: str | None = Field(
        None, min_length=1, max_length=500,
        description="What this scene shows, instead of the planner's description.")


VOICE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_+/.-]*$"  # never an option to a TTS program
Line = Annotated[str, Field(max_length=1000, description="One scene's line.")]


class Narration(Model):
    """A voice reading one line per scene over the video (docs/narration.md). The worker reads
    it (videojob_worker.spec.Narration holds the same bounds)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "has(self.lines) != (has(self.fromPlan) && self.fromPlan)",
         "message": "spec.narration: give lines (one per scene) or fromPlan: true, not both"},
    ]})

    lines: list[Line] | None = Field(
        None, max_length=32,
        description="The line read over each scene, one per scene; an empty line is a silent "
                    "scene.")
    from_plan: bool | None = Field(
        None, description="true: the plan stage writes each scene's line from its description.")
    backend: str = Field("espeak-ng", max_length=64, pattern=VOICE_PATTERN,
                         description="The text-to-speech plug-in (built in: espeak-ng).")
    voice: str = Field("en", max_length=64, pattern=VOICE_PATTERN,
                       description="The voice, as the plug-in names it (espeak-ng --voices).")
    language: str | None = Field(None, max_length=35,
                                 pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
                                 description="Language tag of the captions (BCP 47).")
    rate: int = Field(175, ge=80, le=450, description="Words per minute, 80..450.")
    volume: float = Field(1.0, ge=0, le=2, description="Gain on the voice, 0..2.")
    music_duck: float = Field(12, ge=0, le=40,
                              description="How many dB the music is lowered under speech, 0..40.")
    captions: Literal["none", "track", "burned"] = Field(
        "none", description="none; track: a subtitle track in the MP4 and a WebVTT file next "
                            "to it; burned: drawn into the frames.")
    fit: Literal["speedup", "fail"] = Field(
        "speedup", description="A line longer than its scene: speedup (up to 1.25x, then the "
                               "scene is extended and the video grows) or fail (naming the "
                               "scene).")


class CacheSpec(Model):
    """Whether this VideoJob reuses cached stage outputs (docs/reuse.md)."""

    policy: Literal["Use", "Refresh", "Off"] = Field(
        "Use", description="Use: reuse what is cached, render the rest and cache it. Refresh: "
                           "reuse nothing, render everything and replace the cache's entries. "
                           "Off: neither read nor write the cache.")


class VideoJobSpec(Model):
    """What video to make, and how to run the pipeline that makes it."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "(has(self.prompt) && size(self.prompt) > 0) || "
                 "(has(self.images) && size(self.images) > 0)",
         "message": "spec.prompt is required unless spec.images is given",
         "fieldPath": ".prompt", "reason": "FieldValueRequired"},
        {"rule": "!has(self.images) || size(self.images) == 0 || !has(self.scenes) || "
                 "self.scenes == size(self.images)",
         "message": "spec.scenes must equal the number of spec.images (slideshow mode makes one "
                    "scene per image)",
         "fieldPath": ".scenes"},
        {"rule": " && ".join(f"has(self.{f}) == has(oldSelf.{f})" for f in (
            "prompt", "images", "audio", "scenes", "backend", "output", "retry", "timeouts",
            "gpu", "notify", "cache", "sceneOverrides", "narration")),
         "message": "spec fields other than suspend, priority and ttlSecondsAfterFinished are "
                    "immutable"},
    ]})

    prompt: str | None = Field(
        None, max_length=4000, json_schema_extra=immutable("prompt"),
        description="What the video shows. Required unless images are given.")
    images: list[ImageURI] | None = Field(
        None, max_length=32, json_schema_extra=immutable("images"),
        description="Input image URIs (gs://, file://, https://) for slideshow mode: one scene "
                    "per image, in order.")
    audio: str | None = Field(
        None, pattern=URI_PATTERN, max_length=2048, json_schema_extra=immutable("audio"),
        description="Audio URI muxed into the output, trimmed or padded to the video's length.")
    scenes: int | None = Field(
        None, ge=1, le=32, json_schema_extra=immutable("scenes"),
        description="Number of scenes, 1..32. Default 4, or the number of images in slideshow "
                    "mode (where it must equal it).")
    duration_seconds: int = Field(
        12, ge=1, le=600, json_schema_extra=immutable("durationSeconds"),
        description="Length of the video in seconds, 1..600.")
    fps: int = Field(24, ge=1, le=60, json_schema_extra=immutable("fps"),
                     description="Frames per second, 1..60.")
    resolution: str = Field(
        "1280x720", pattern=r"^[0-9]{2,4}x[0-9]{2,4}$", max_length=9,
        json_schema_extra={"x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": "spec.resolution is immutable"},
            {"rule": "int(self.split('x')[0]) >= 64 && int(self.split('x')[0]) <= 3840 && "
                     "int(self.split('x')[0]) % 2 == 0",
             "message": "spec.resolution width must be an even number from 64 to 3840"},
            {"rule": "int(self.split('x')[1]) >= 64 && int(self.split('x')[1]) <= 2160 && "
                     "int(self.split('x')[1]) % 2 == 0",
             "message": "spec.resolution height must be an even number from 64 to 2160"},
        ]},
        description="Frame size as WIDTHxHEIGHT: even numbers, width 64..3840, height 64..2160.")
    transition: Literal["none", "crossfade", "fade"] = Field(
        "crossfade", json_schema_extra=immutable("transition"),
        description="How one scene turns into the next: none, crossfade or fade.")
    backend: str | None = Field(
        None, max_length=63, pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
        json_schema_extra=immutable("backend"),
        description="Generator backend for keyframes and segments. Default from the operator "
                    "configuration, built-in procedural.")
    seed: int = Field(0, ge=0, le=2**31 - 1, json_schema_extra=immutable("seed"),
                      description="Random seed; the same spec and seed give the same video.")
    priority: int = Field(
        0, ge=-100, le=100,
        description="Queue priority, -100..100; higher runs first. May be changed at any time "
                    "without disturbing a running stage.")
    output: Output | None = Field(None, json_schema_extra=immutable("output"),
                                  description="Where the finished video goes.")
    retry: Retry | None = Field(None, json_schema_extra=immutable("retry"),
                                description="Retries of failing stages.")
    timeouts: Timeouts | None = Field(None, json_schema_extra=immutable("timeouts"),
                                      description="Time limits of the VideoJob and its stages.")
    gpu: Gpu | None = Field(None, json_schema_extra=immutable("gpu"),
                            description="GPU needs and placement of the GPU stages.")
    notify: list[Notify] | None = Field(
        None, max_length=NOTIFY_MAX, json_schema_extra=immutable("notify"),
        description="Webhooks to notify of this VideoJob's transitions, at most 4; delivery is "
                    "at least once, retried with backoff, and shown in status.notifications.")
    scene_overrides: list[SceneOverride] | None = Field(
        None, max_length=32, json_schema_extra={"x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": "spec.sceneOverrides is immutable"},
            {"rule": "self.all(o, self.exists_one(p, p.index == o.index))",
             "message": "spec.sceneOverrides: each scene at most once"},
            {"rule": "self.all(o, has(o.seed) || has(o.description))",
             "message": "spec.sceneOverrides: each entry sets seed or description"}]},
        description="Scenes drawn otherwise than the plan would (their own seed or "
                    "description), at most 32, each scene once. kubectl videojob rerun writes "
                    "them.")
    narration: Narration | None = Field(
        None, json_schema_extra=immutable("narration"),
        description="A voice reading one line per scene over the video, with captions: the "
                    "narrate stage runs beside keyframes and segments.")
    cache: CacheSpec | None = Field(None, json_schema_extra=immutable("cache"),
                                    description="Reuse of cached stage outputs.")
    suspend: bool = Field(
        False,
        description="true suspends the running stage and starts no new one; false resumes where "
                    "it stopped. May be changed at any time.")
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0,
        description="Delete the VideoJob (and everything it owns) this many seconds after it "
                    "succeeded or failed. Unset: keep it.")


class Condition(Model):
    """A status condition, as in metav1.Condition."""

    type: str = Field(description="Condition type: Ready, Progressing, Failed, Suspended, Queued.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="Machine-readable reason, CamelCase.")
    message: str = Field("", description="Human-readable explanation.")
    last_transition_time: str = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        None, description="metadata.generation the condition was computed from.")


class StageStatus(Model):
    """One pipeline stage."""

    name: Stage = Field(description="plan, keyframes, segments, stitch or publish.")
    phase: StagePhase = Field(description="Pending, Queued, Running, Suspended, Succeeded, "
                                          "Cached (every output from the cache, no Job) or "
                                          "Failed.")
    attempts: int = Field(0, description="Pods started for this stage (all scenes for "
                                         "segments); at least 1 once it runs.")
    progress: int = Field(0, ge=0, le=100, description="Progress of the stage, 0..100.")
    completed: int | None = Field(None, description="Scenes rendered (segments).")
    total: int | None = Field(None, description="Scenes to render (segments).")
    message: str | None = Field(None, description="Latest progress message or failure reason.")
    job_name: str | None = Field(None, description="The stage's batch/v1 Job.")
    start_time: str | None = Field(None, description="When the stage started.")
    completion_time: str | None = Field(None, description="When the stage finished.")
    job_lost_time: str | None = Field(
        None, description="When the operator found the stage's Job gone while the stage ran; "
                          "it is re-created retry.backoffSeconds later.")
    gpu_seconds: float | None = Field(
        None, ge=0, description="GPU-seconds of the stage's pods that have ended: each pod's "
                                "run (start to its last container's end) times the GPUs it "
                                "held, every attempt included.")
    cached_scenes: str | None = Field(
        None, description="Outputs taken from the cache, of all (keyframes and segments: "
                          "scenes), e.g. 7/8.")


class OutputStatus(Model):
    """The published video."""

    uri: str = Field(description="Where the video is.")
    bytes: int | None = Field(None, description="Size in bytes.")
    md5: str | None = Field(None, description="MD5 of the content, base64.")
    crc32c: str | None = Field(None, description="CRC32C of the content, base64.")


class ReusedFrom(Model):
    """Where a reused video came from."""

    key: str = Field(description="The cache key of the video (stitch's).")
    entry: str = Field(description="The cache entry's URI.")
    namespace: str | None = Field(None, description="The VideoJob that rendered it.")
    name: str | None = Field(None, description="The VideoJob that rendered it.")
    uid: str | None = Field(None, description="The VideoJob that rendered it.")


class EffectiveSpec(Model):
    """The values a VideoJob ran with, after operator and built-in defaults."""

    scenes: int = Field(description="Scenes rendered.")
    backend: str = Field(description="Generator backend.")
    output_uri: str = Field(description="Destination of the final video.")
    artifact_root: str = Field(description="Where intermediate artifacts are kept.")
    retry_limit: int = Field(description="Pod retries per stage (per scene for segments).")
    retry_backoff_seconds: int = Field(description="Delay before re-creating a lost stage Job.")
    total_seconds: int = Field(description="Bound on the whole VideoJob.")
    stage_seconds: int = Field(description="Bound on each stage attempt.")
    pending_seconds: int = Field(description="Bound on a stage pod staying unschedulable.")
    gpu_count: int = Field(description="GPUs per GPU-stage pod.")
    gpu_resource_name: str = Field(description="Extended resource counting GPUs.")
    gpu_node_selector: dict[str, str] = Field(description="Node selector of GPU-stage pods.")
    gpu_tolerations: list[Toleration] = Field(description="Tolerations of GPU-stage pods.")
    worker_image: str = Field(description="Image the stage pods run.")


class PendingNotification(Model):
    """A notification not delivered yet: what it tells, frozen when the transition happened."""

    id: str = Field(max_length=64, description="Its webhook-id: the same on every attempt, so "
                                               "a receiver can drop a duplicate.")
    type: NotifyEvent = Field(description="The event: Queued, Running, StageSucceeded, "
                                          "Succeeded, Failed, Cancelled or Progress.")
    time: str = Field(description="When the transition happened (RFC 3339, microseconds).")
    phase: Phase | None = Field(None, description="The VideoJob's phase then.")
    stage: str | None = Field(None, pattern=r"^[a-z]+(\+[a-z]+)*$",
                              description="The stage it is about (current stage, or the one "
                                          "that succeeded; side by side: segments+narrate).")
    progress: int | None = Field(None, ge=0, le=100, description="Overall progress then.")
    message: str | None = Field(None, max_length=512, description="status.message then.")
    output_uri: str | None = Field(None, alias="outputURI",
                                   description="The video (Succeeded).")
    reason: str | None = Field(None, description="Why it failed (Failed).")
    attempts: int = Field(0, ge=0, description="Attempts made so far.")
    next_attempt_time: str | None = Field(
        None, description="Not before this (after a failed attempt); unset: at once.")
    last_error: str | None = Field(None, max_length=512,
                                   description="Why the last attempt failed.")


class NotificationStatus(Model):
    """Delivery state of one spec.notify entry."""

    index: int = Field(ge=0, description="The entry of spec.notify this is about.")
    state: Literal["Ready", "Retrying", "SecretUnavailable", "AddressRefused", "GaveUp"] = Field(
        description="Ready (the last attempt was delivered, or none was due), Retrying (the "
                    "receiver failed; backing off), SecretUnavailable (the secretRef cannot be "
                    "read; backing off), AddressRefused (the URL's host is at an address the "
                    "operator may not send to; nothing was sent), GaveUp (the last notification "
                    "was given up).")
    message: str | None = Field(None, description="What went wrong, naming the field.")
    queued: int = Field(0, ge=0, description="Notifications queued so far.")
    delivered: int = Field(0, ge=0, description="Notifications delivered.")
    gave_up: int = Field(0, ge=0, description="Notifications given up (attempts exhausted, "
                                              "address refused, or dropped from a full list).")
    last_delivery_time: str | None = Field(None, description="When the last one was "
                                                             "delivered.")
    pending: list[PendingNotification] | None = Field(
        None, max_length=NOTIFY_PENDING_MAX,
        description="Notifications not delivered yet, oldest first (at most 16; a Progress "
                    "one is replaced by the latest).")


class VideoJobStatus(Model):
    """Observed state, written by the operator."""

    model_config = ConfigDict(extra="ignore")

    phase: Phase | None = Field(None, description="Pending, Queued, Running, Suspended, "
                                                  "Succeeded, Failed or Cancelling.")
    progress: int | None = Field(None, ge=0, le=100, description="Overall progress, 0..100.")
    current_stage: str | None = Field(
        None, pattern=r"^[a-z]+(\+[a-z]+)*$",
        description="The stage running now (or last); stages running side by side joined by "
                    "+, e.g. segments+narrate.")
    message: str | None = Field(None, description="What is happening, in words.")
    reason: str | None = Field(None, description="Why the VideoJob failed, CamelCase.")
    stages: list[StageStatus] | None = Field(None, description="Every stage, in order.")
    output_uri: str | None = Field(None, alias="outputURI",
                                   description="Where the finished video is.")
    output: OutputStatus | None = Field(None, description="The published video's size and "
                                                          "checksums.")
    duration_seconds: float | None = Field(
        None, ge=0, description="The video's length when narration made it longer than "
                                "spec.durationSeconds (a line longer than its scene at 1.25x "
                                "extends the scene).")
    reused_from: ReusedFrom | None = Field(
        None, description="The cache entry whose video this VideoJob copied instead of rendering "
                          "(reason Reused).")
    start_time: str | None = Field(None, description="When the first stage started.")
    completion_time: str | None = Field(None, description="When the VideoJob succeeded or "
                                                          "failed.")
    gpu_seconds: float | None = Field(None, ge=0, description="GPU-seconds of every stage, "
                                                              "added up (stages[].gpuSeconds).")
    observed_generation: int | None = Field(None, description="metadata.generation last acted "
                                                              "on.")
    queue_position: int | None = Field(None, description="Place in the admission queue while "
                                                         "Queued (1 = next).")
    effective: EffectiveSpec | None = Field(None, description="The values this VideoJob runs "
                                                              "with, after defaults.")
    conditions: list[Condition] | None = Field(None, description="Ready, Progressing, Failed, "
                                                                 "Suspended, Queued.")
    notifications: list[NotificationStatus] | None = Field(
        None, max_length=NOTIFY_MAX,
        description="Delivery of the webhook notifications of spec.notify, one entry each.")


class PoolStatus(Model):
    """An admission pool as the operator sees it now (written by the operator; configure pools in
    the operator's configuration, not here)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              frozen=True)

    stages: list[Stage] = Field(description="Stages admitted from this pool.")
    strategy: Literal["default", "accurate", "eager"] = Field(
        description="KEDA scaling strategy: default, accurate or eager.")
    max_concurrency_setting: str = Field(description="maxConcurrency as configured (a number "
                                                     "or auto).")
    max_concurrency: int = Field(description="maxConcurrency in pods now (auto resolved from the "
                                             "GPUs of the matching nodes).")
    min_concurrency: int = Field(description="Pods kept busy while work is queued.")
    target_queue_length: int = Field(description="Queued pods per running pod.")
    queued: int = Field(description="Stage Jobs waiting for admission.")
    queued_pods: int = Field(description="Pods the queued work still needs.")
    running: int = Field(description="Admitted pods Running.")
    pending: int = Field(description="Admitted pods not Running yet (they hold their slot).")
    held: int = Field(description="Stage Jobs held by a suspended VideoJob.")
    desired: int = Field(description="Scale target after cooldown (KEDA-style).")
    admitted_total: int = Field(description="Stage Jobs admitted since the operator started.")
    last_scale_decision: str = Field(description="The last admission decision, in words.")
    last_scale_time: str | None = Field(None, description="When it was made.")
    head: list[str] = Field(default_factory=list, description="The first queued stage Jobs, "
                                                             "as namespace/videojob:stage.")


# VideoJobTrigger: an inbound webhook that creates VideoJobs (docs/http-api.md, "Triggers"). The
# gateway serves it; the operator never reads it. Its vocabulary (which spec fields a payload
# may set) is videojob_common.triggers, shared with the gateway.

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
# `$.head_commit.message`, `head_commit.message`, `$.commits[0].id`: keys and list indices,
# nothing else (no wildcards, filters or expressions).
PAYLOAD_PATH = r"^(\$\.)?[^.\[\]$][^.\[\]]*(\.[^.\[\]]+|\[[0-9]{1,4}\])*$"


class SecretKeyRef(Model):
    """One key of a Secret in the trigger's own namespace."""

    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN,
                      description="The Secret's name, in the trigger's namespace (there is no "
                                  "namespace field: a trigger never uses another namespace's "
                                  "Secret).")
    key: str = Field(max_length=253, pattern=r"^[-._a-zA-Z0-9]+$",
                     description="The key in the Secret's data that holds the signing secret.")


class TemplateMetadata(Model):
    """Metadata of the VideoJobs a trigger creates."""

    generate_name: str | None = Field(
        None, max_length=200, pattern=r"^[a-z0-9][-a-z0-9.]*$",
        description="Prefix of the VideoJobs' names. The gateway appends 16 hex digits derived "
                    "from the delivery (not random ones), so the same delivery twice names the "
                    "same VideoJob and the second is refused. Default: the trigger's name and "
                    "a dash.")
    labels: dict[str, str] | None = Field(
        None, json_schema_extra={"maxProperties": 32},
        description="Labels of the VideoJobs. videojob.dev/trigger is set to the trigger's name "
                    "whatever this says.")
    annotations: dict[str, str] | None = Field(
        None, json_schema_extra={"maxProperties": 32},
        description="Annotations of the VideoJobs. videojob.dev/delivery is set to the delivery "
                    "id whatever this says.")


class VideoJobTemplate(Model):
    """The VideoJob each delivery creates, before the payload's parameters are set in it."""

    metadata: TemplateMetadata | None = Field(
        None, description="Name prefix, labels and annotations of the VideoJobs.")
    spec: dict[str, Any] = Field(
        description="A VideoJob spec (kubectl explain videojob.spec), checked against the "
                    "VideoJob's schema when the trigger is written. A field a parameter sets "
                    "may be left out here; prompt must be here or mapped.")


class Parameter(Model):
    """One payload field copied into the VideoJob's spec."""

    from_: str = Field(
        alias="from", max_length=256, pattern=PAYLOAD_PATH,
        description="Where in the JSON payload: keys separated by dots and list indices in "
                    "brackets, with or without a leading $. (e.g. $.head_commit.message, "
                    "pull_request.title, $.commits[0].id). Nothing else of JSONPath.")
    to: str = Field(
        json_schema_extra={"enum": list(triggers.MAPPABLE)},
        description="The spec field it sets: " + ", ".join(triggers.MAPPABLE) + ". Numbers "
                    "given as text are converted; URIs (images, audio, output.uri) need "
                    "uriPrefixes. Nothing else of the spec can come from a payload.")
    required: bool = Field(
        True, description="true: a delivery whose payload lacks the field (or has null) is "
                          "refused (422). false: the template's value stays.")

    @field_validator("to")
    @classmethod
    def mappable(cls, value: str) -> str:
        if value not in triggers.MAPPABLE:
            raise ValueError(f"{value!r} cannot be mapped; one of {', '.join(triggers.MAPPABLE)}")
        return value


class HeaderMatch(Model):
    """A request header that must have one of the given values."""

    name: str = Field(max_length=128, pattern=r"^[A-Za-z0-9-]+$",
                      description="Header name, any case (e.g. X-GitHub-Event).")
    values: list[Annotated[str, Field(max_length=256, description="A value, exactly as sent.")]
                 ] = Field(min_length=1, max_length=32, description="Accepted values.")


class PayloadMatch(Model):
    """A payload field that must have one of the given values."""

    path: str = Field(max_length=256, pattern=PAYLOAD_PATH,
                      description="Where in the JSON payload, as in parameters[].from.")
    values: list[Annotated[str, Field(max_length=256, description="A value.")]] = Field(
        min_length=1, max_length=32,
        description="Accepted values: text as is, numbers and true/false as JSON writes them.")


class TriggerFilter(Model):
    """Which deliveries make a VideoJob; the others are answered 200 and make nothing."""

    headers: list[HeaderMatch] | None = Field(
        None, max_length=8, description="Every one must match (e.g. X-GitHub-Event in [push]).")
    payload: list[PayloadMatch] | None = Field(
        None, max_length=8, description="Every one must match (e.g. $.ref in "
                                        "[refs/heads/main]).")


class RateLimit(Model):
    """A token bucket per trigger and gateway replica; a delivery over it is answered 429."""

    per_minute: int = Field(triggers.DEFAULT_PER_MINUTE, ge=1, le=6000,
                            description="Deliveries per minute, sustained.")
    burst: int = Field(triggers.DEFAULT_BURST, ge=1, le=1000,
                       description="Deliveries accepted at once after a quiet period.")


class VideoJobTriggerSpec(Model):
    """An inbound webhook: each signed delivery to the gateway's URL of this trigger creates a
    VideoJob from the template, as serviceAccountName."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "has(self.template.spec.prompt) || has(self.template.spec.images) || "
                 "(has(self.parameters) && self.parameters.exists(p, p.to == 'prompt' || "
                 "p.to == 'images'))",
         "message": "the VideoJobs need a prompt: set template.spec.prompt (or images), or map "
                    "one from the payload",
         "fieldPath": ".template.spec"},
        {"rule": "!has(self.parameters) || self.parameters.all(p, !(p.to in "
                 f"{sorted(triggers.URI_TARGETS)}) || "
                 "(has(self.uriPrefixes) && size(self.uriPrefixes) > 0))",
         "message": "a parameter that sets images, audio or output.uri needs uriPrefixes: a "
                    "payload's URIs must stay under prefixes the trigger names",
         "fieldPath": ".parameters"},
        {"rule": "!has(self.parameters) || "
                 "self.parameters.all(p, size(self.parameters.filter(q, q.to == p.to)) == 1)",
         "message": "each spec field is set by one parameter at most",
         "fieldPath": ".parameters"},
    ]})

    signature: Signature = Field(
        description="How deliveries are signed: github (X-Hub-Signature-256: sha256=<hex "
                    "HMAC-SHA256 of the body>) or standard-webhooks (webhook-id, "
                    "webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256>).")
    secret_ref: SecretKeyRef = Field(
        description="The signing secret: for github the text as entered at GitHub; for "
                    "standard-webhooks whsec_<base64>. The gateway reads it as "
                    "serviceAccountName, which needs get on this Secret.")
    service_account_name: str = Field(
        max_length=253, pattern=DNS_SUBDOMAIN,
        description="A ServiceAccount of the trigger's namespace. The gateway impersonates it "
                    "to read the Secret and to create the VideoJobs, so its RBAC decides; the "
                    "gateway must be allowed to impersonate it (chart value "
                    "gateway.triggers.serviceAccounts).")
    template: VideoJobTemplate = Field(description="The VideoJob each delivery creates.")
    parameters: list[Parameter] | None = Field(
        None, max_length=16, description="Payload fields copied into the VideoJob's spec.")
    filter: TriggerFilter | None = Field(
        None, description="Deliveries that make no VideoJob (answered 200, ignored).")
    uri_prefixes: list[Annotated[str, Field(max_length=2048, pattern=r"^(gs|file|https?)://.+/$",
                                            description="A URI prefix ending in /.")]
                       ] | None = Field(
        None, max_length=8,
        description="Prefixes (each ending in /) a URI from the payload must start with, for "
                    "parameters that set images, audio or output.uri; without them those "
                    "fields cannot be mapped.")
    rate_limit: RateLimit | None = Field(
        None, description=f"Deliveries accepted per minute (default {triggers.DEFAULT_PER_MINUTE}"
                          f", bursts of {triggers.DEFAULT_BURST}).")


class TriggerStatus(Model):
    """What the gateway saw, written by the gateway."""

    model_config = ConfigDict(extra="ignore")

    last_delivery_id: str | None = Field(
        None, alias="lastDeliveryID",
        description="Id of the last delivery that made a VideoJob (X-GitHub-Delivery or "
                    "webhook-id).")
    last_delivery_time: str | None = Field(None, description="When it came (RFC 3339).")
    last_video_job: str | None = Field(None, description="The VideoJob it created.")
    created: int | None = Field(None, description="VideoJobs created.")
    refused: int | None = Field(
        None, description="Verified deliveries that made no VideoJob: a payload the parameters "
                          "could not map, or a VideoJob the API server refused.")
    conditions: list[Condition] | None = Field(
        None, description="Ready: whether the gateway can read the signing secret "
                          "(reasons SecretReadable, SecretUnreadable, SecretKeyMissing, "
                          "SecretKeyInvalid, InvalidTrigger).")
