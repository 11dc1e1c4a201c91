"""keyframes: one image per scene, `keyframes/scene-NNN.png`.

Drawn by the backend from the scene description, or, in slideshow mode, the user's image
fetched, checked and fitted to the resolution.
"""

from __future__ import annotations

import cv2

from videojob_worker import backends, inputs
from videojob_worker.context import StageContext, StageResult
from videojob_worker.ffmpeg import Frame


def run(ctx: StageContext) -> StageResult:
    plan = ctx.read_plan()
    total = len(plan.scenes)
    backend = None if ctx.spec.images else backends.load(plan.backend)
    for scene in plan.scenes:
        ctx.cancellation.check()
        ctx.progress.update(scene.index, total, f"scene {scene.index + 1}/{total}")
        keyframe: Frame
        if scene.image is not None:
            image = inputs.fetch_image(ctx.storage, scene.image, f"images[{scene.index}]")
            keyframe = inputs.fit(image, plan.width, plan.height)
        else:
            assert backend is not None
            keyframe = backend.render_keyframe(scene, plan)
        if keyframe.shape != (plan.height, plan.width, 3):
            raise RuntimeError(f"keyframe of scene {scene.index} is {keyframe.shape}, "
                               f"not ({plan.height}, {plan.width}, 3)")
        ok, png = cv2.imencode(".png", keyframe)
        if not ok:
            raise RuntimeError(f"cannot encode keyframe of scene {scene.index}")
        ctx.storage.write_bytes(ctx.layout.keyframe(scene.index), png.tobytes(), ctx.workspace,
                                "image/png")
    ctx.progress.finish(total, f"{total} keyframes")
    return None
