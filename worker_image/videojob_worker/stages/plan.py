"""plan: the spec → `plan/plan.json` (scene descriptions, camera moves, palettes, frames)."""

from __future__ import annotations

from typing import Any

from videojob_worker import backends
from videojob_worker.context import StageContext
from videojob_worker.plan import make_plan


def run(ctx: StageContext) -> dict[str, Any] | None:
    ctx.progress.update(0, 1, "planning scenes")
    backend = backends.load(ctx.spec.backend)
    plan = make_plan(ctx.spec, backend)
    ctx.storage.write_bytes(ctx.layout.plan, plan.to_json().encode(), ctx.workspace,
                            "application/json")
    ctx.log.info("planned %d scenes, %d frames", len(plan.scenes), plan.total_frames,
                 extra={"scenes": len(plan.scenes), "frames": plan.total_frames})
    ctx.progress.finish(1, f"{len(plan.scenes)} scenes planned")
    return None
