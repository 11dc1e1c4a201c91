"""Scene changes, drawn into the segments' own frames.

Each segment pod renders the change into the next scene at the end of its clip (`crossfade`: the
last `transitionFrames` frames dissolve into the next scene's first frame; `fade`: the clip fades
to black and the next one fades in from black). So the segments already hold every frame of the
final video, stitch only joins them (no re-encode), and the pods stay independent: a pod needs
the next scene's keyframe, not its clip.
"""

from __future__ import annotations

import cv2

from videojob_worker.ffmpeg import Frame, as_frame
from videojob_worker.plan import Plan, Scene


def fade_frames(plan: Plan) -> tuple[int, int]:
    """(fade-out frames at the end of a scene, fade-in frames at the start of the next)."""
    t = plan.transition_frames
    return t - t // 2, t // 2


def needs_next_scene(plan: Plan, scene: Scene) -> bool:
    return (plan.transition == "crossfade" and plan.transition_frames > 0
            and scene.index < len(plan.scenes) - 1)


def apply(frame: Frame, k: int, scene: Scene, plan: Plan, incoming: Frame | None) -> Frame:
    """Frame `k` of `scene` with the transition applied (`incoming`: the next scene's first
    frame, for crossfades)."""
    n = scene.frames
    t = plan.transition_frames
    last = scene.index == len(plan.scenes) - 1
    if t == 0:
        return frame
    if plan.transition == "crossfade":
        start = n - t
        if not last and k >= start and incoming is not None:
            # (k - start + 1) / (t + 1): never fully the next scene; its own first frame is.
            alpha = (k - start + 1) / (t + 1)
            return as_frame(cv2.addWeighted(frame, 1 - alpha, incoming, alpha, 0))
        return frame
    if plan.transition == "fade":
        fade_out, fade_in = fade_frames(plan)
        if not last and fade_out and k >= n - fade_out:
            level = 1 - (k - (n - fade_out) + 1) / fade_out  # reaches black on the last frame
            return scale(frame, level)
        if scene.index > 0 and fade_in and k < fade_in:
            return scale(frame, (k + 1) / (fade_in + 1))
    return frame


def scale(frame: Frame, level: float) -> Frame:
    return as_frame(cv2.convertScaleAbs(frame, alpha=max(0.0, min(1.0, level))))
