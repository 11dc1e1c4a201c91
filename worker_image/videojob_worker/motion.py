"""Ken Burns motion: a slow zoom and pan over a still image.

One affine warp per frame (OpenCV, bilinear) from the keyframe to the output size; no
intermediate crops. The move is eased (smoothstep), so each scene starts and ends at rest: cuts
and crossfades between scenes do not jolt.
"""

from __future__ import annotations

import cv2
import numpy as np

from videojob_worker.ffmpeg import Frame, as_frame
from videojob_worker.plan import Camera


def ease(t: float) -> float:
    """Smoothstep: zero speed at both ends."""
    t = min(1.0, max(0.0, t))
    return t * t * (3 - 2 * t)


def progress(frame: int, frames: int) -> float:
    return frame / (frames - 1) if frames > 1 else 0.0


def camera_at(camera: Camera, t: float) -> tuple[float, float, float]:
    """(zoom, x, y) at eased time `t` in [0, 1]."""
    e = ease(t)
    return (camera.zoom_from + (camera.zoom_to - camera.zoom_from) * e,
            camera.x_from + (camera.x_to - camera.x_from) * e,
            camera.y_from + (camera.y_to - camera.y_from) * e)


def affine(camera: Camera, t: float, source: tuple[int, int],
           target: tuple[int, int]) -> np.ndarray:
    """The 2x3 matrix mapping source pixels to output pixels at time `t`.

    `source` and `target` are (width, height). The window is the source scaled to cover the
    target, then zoomed; x, y move its centre across the room the zoom leaves.
    """
    zoom, x, y = camera_at(camera, t)
    sw, sh = source
    tw, th = target
    scale = max(tw / sw, th / sh) * zoom  # output pixels per source pixel
    window_w, window_h = tw / scale, th / scale  # the visible part, in source pixels
    cx = sw / 2 + x * (sw - window_w) / 2
    cy = sh / 2 + y * (sh - window_h) / 2
    return np.array([[scale, 0.0, tw / 2 - scale * cx],
                     [0.0, scale, th / 2 - scale * cy]], dtype=np.float64)


def render(image: Frame, camera: Camera, t: float, size: tuple[int, int]) -> Frame:
    """The output frame (`size` = (width, height)) at time `t` of the move over `image`."""
    h, w = image.shape[:2]
    matrix = affine(camera, t, (w, h), size)
    # INTER_AREA would be sharper when shrinking, but warpAffine does not support it; the
    # keyframes are drawn at the output size, so the warp only ever enlarges.
    return as_frame(cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT101))
