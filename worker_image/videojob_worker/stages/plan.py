"""plan: the spec → `plan/plan.json` (scene descriptions, camera moves, palettes, frames).

`make_plan` lives here, not in `plan.py`: it is the one step that needs both the render backend
and the plan document, and `backends.py` already imports the document.
"""

from __future__ import annotations

from videojob_worker import backends
from videojob_worker.backends import RenderBackend
from videojob_worker.context import StageContext, StageResult
from videojob_worker.errors import PermanentError
from videojob_worker.plan import Plan, Scene, frame_ranges, transition_frames
from videojob_worker.spec import VideoSpec


def make_plan(spec: VideoSpec, backend: RenderBackend) -> Plan:
    """The plan for `spec`: the backend's scene drafts, with the spec's per-scene overrides,
    placed on the frame grid."""
    count = spec.scene_count
    drafts = backend.describe_scenes(spec)
    if len(drafts) != count:
        raise RuntimeError(f"backend {backend.name} planned {len(drafts)} scenes, not {count}")
    for override in spec.scene_overrides:
        if override.description is not None:
            drafts[override.index] = backend.redescribe(spec, override.index,
                                                        drafts[override.index],
                                                        override.description)
    ranges = frame_ranges(spec.total_frames, count)
    shortest = min(end - start for start, end in ranges)
    if shortest < 1:
        raise PermanentError(f"{spec.total_frames} frames cannot hold {count} scenes")
    width, height = spec.size
    seeds = {o.index: o.seed for o in spec.scene_overrides if o.seed is not None}
    scenes = [
        Scene(index=i, description=d.description, camera=d.camera, palette=d.palette,
              frame_start=start, frame_end=end,
              image=spec.images[i] if spec.images else None, seed=seeds.get(i),
              narration=_line(spec, d.description))
        for i, (d, (start, end)) in enumerate(zip(drafts, ranges, strict=True))
    ]
    return Plan(backend=backend.name, backend_version=backend.version, prompt=spec.prompt,
                seed=spec.seed, width=width, height=height, fps=spec.fps,
                total_frames=spec.total_frames, transition=spec.transition,
                transition_frames=transition_frames(spec, shortest), scenes=scenes)


def _line(spec: VideoSpec, description: str) -> str | None:
    """The scene's narration when the spec asks the plan for it (narration.fromPlan, #28)."""
    return description if spec.narration is not None and spec.narration.from_plan else None


def run(ctx: StageContext) -> StageResult:
    ctx.progress.update(0, 1, "planning scenes")
    backend = backends.load(ctx.spec.backend)
    plan = make_plan(ctx.spec, backend)
    local = ctx.workspace / "plan.json"
    local.write_text(plan.to_json())
    ctx.storage.upload(local, ctx.layout.plan, "application/json")
    ctx.outputs[None] = local
    ctx.log.info("planned %d scenes, %d frames", len(plan.scenes), plan.total_frames,
                 extra={"scenes": len(plan.scenes), "frames": plan.total_frames})
    ctx.progress.finish(1, f"{len(plan.scenes)} scenes planned")
    return None
