"""keyframes: one image per scene, `keyframes/scene-NNN.png`.

Drawn by the backend from the scene description, or, in slideshow mode, the user's image
fetched, checked and fitted to the resolution. With VIDEOJOB_SCENES, only the scenes listed
(the others come from the cache).
"""

from __future__ import annotations

import cv2

from videojob_worker import backends, inputs
from videojob_worker.artifacts import scene_file
from videojob_worker.context import StageContext, StageResult
from videojob_worker.ffmpeg import Frame


def run(ctx: StageContext) -> StageResult:
    plan = ctx.read_plan()
    scenes = [scene for scene in plan.scenes if ctx.renders(scene.index)]
    total = len(scenes)
    backend = None if ctx.spec.images else backends.load(plan.backend)
    for done, scene in enumerate(scenes):
        ctx.cancellation.check()
        ctx.progress.update(done, total, f"scene {scene.index + 1}/{len(plan.scenes)}")
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
        local = ctx.workspace / scene_file(scene.index, "png")
        local.write_bytes(png.tobytes())
        ctx.storage.upload(local, ctx.layout.keyframe(scene.index), "image/png")
        ctx.outputs[scene.index] = local
    ctx.progress.finish(total, f"{total} keyframes")
    return None
