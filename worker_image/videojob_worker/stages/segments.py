"""segments: the clip of one scene, `segments/scene-NNN.mp4`: scene JOB_COMPLETION_INDEX, or
with VIDEOJOB_SCENES (a Job for the scenes the cache lacks) the index-th scene listed.

Exactly the scene's frames of the plan: its motion over the keyframe, ending in the transition
into the next scene. Frames go straight from the renderer into the encoder's stdin.
"""

from __future__ import annotations

from videojob_worker import backends, transitions
from videojob_worker.artifacts import scene_file
from videojob_worker.context import StageContext, StageResult
from videojob_worker.ffmpeg import FrameEncoder

RENDER_SHARE = 99.0  # percent of the pod's work that is rendering; the upload is the rest


def run(ctx: StageContext, threads: int | None = None) -> StageResult:
    plan = ctx.read_plan()
    scene = plan.scenes[ctx.scene]
    backend = backends.load(plan.backend)
    keyframe = ctx.read_keyframe(scene.index, plan)
    incoming = None
    if transitions.needs_next_scene(plan, scene):
        following = plan.scenes[scene.index + 1]
        incoming = backend.first_frame(following, ctx.read_keyframe(following.index, plan), plan)
    total = scene.frames
    path = ctx.workspace / scene_file(scene.index, "mp4")
    ctx.progress.update(0, total, f"frame 0/{total}", percent=0.0)
    with FrameEncoder(path, plan.width, plan.height, plan.fps, ctx.cancellation,
                      threads=threads) as encoder:
        for k, frame in enumerate(backend.render_clip(scene, keyframe, plan, total)):
            if k == total:
                break
            encoder.write(transitions.apply(frame, k, scene, plan, incoming))
            ctx.progress.update(k + 1, total, f"frame {k + 1}/{total}",
                                percent=RENDER_SHARE * (k + 1) / total)
    if encoder.frames != total:
        raise RuntimeError(f"backend {plan.backend} rendered {encoder.frames} frames of scene "
                           f"{scene.index}, not {total}")
    ctx.storage.upload(path, ctx.layout.segment(scene.index), "video/mp4")
    ctx.outputs[scene.index] = path
    ctx.log.info("scene %d: %d frames", scene.index, total, extra={"frames": total})
    ctx.progress.finish(total, f"frame {total}/{total}, uploaded")
    return None
