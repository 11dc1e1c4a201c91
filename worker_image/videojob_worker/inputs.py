"""The user's inputs: slideshow images and the audio track, fetched, checked and prepared.

Anything wrong with an input the user named is a permanent error whose message names it
(`images[2] (file:///in/3.png) is not a decodable image`): retrying cannot fix a bad URL or a
corrupt file. Only a slow or failing service (HTTP 5xx, timeouts) is transient.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from videojob_worker import ffmpeg
from videojob_worker.cancellation import Cancellation
from videojob_worker.errors import PermanentError, TransientError
from videojob_worker.fetch_policy import Unreachable
from videojob_worker.ffmpeg import Frame, as_frame
from videojob_worker.storage import AccessDenied, ObjectNotFound, Storage, is_connection_failure

MAX_IMAGE_BYTES = 64 * 2**20
# An hour of 320 kbit/s audio is 144 MB; more is not a soundtrack (and would fill /scratch).
MAX_AUDIO_BYTES = 256 * 2**20
MIN_IMAGE_SIDE = 8


def _fetch_failure(what: str, uri: str, err: Exception) -> Exception:
    """Turn a storage failure on a user input into the error the contract wants."""
    if isinstance(err, Unreachable):
        # No detail: a refused address and a refused connection must read the same.
        return PermanentError(f"{what} ({uri}) is unreachable")
    if isinstance(err, ObjectNotFound):
        return PermanentError(f"{what} ({uri}) does not exist")
    if isinstance(err, AccessDenied):
        return PermanentError(f"{what} ({uri}) cannot be read: access denied")
    if isinstance(err, ValueError):
        return PermanentError(f"{what} ({uri}): {err}")
    if isinstance(err, TransientError) and is_connection_failure(err):
        return PermanentError(f"{what} ({uri}) is unreachable: {err.__cause__ or err}")
    return err


def fetch_image(storage: Storage, uri: str, what: str) -> Frame:
    """Download and decode an image (PNG, JPEG, WebP, …) into BGR; EXIF rotation applied."""
    try:
        data = storage.read_bytes(uri, max_bytes=MAX_IMAGE_BYTES)
    except (ObjectNotFound, AccessDenied, ValueError, TransientError, Unreachable) as err:
        raise _fetch_failure(what, uri, err) from err
    return decode_image(data, uri, what)


def decode_image(data: bytes, uri: str, what: str) -> Frame:
    # OpenCV refuses images over CV_IO_MAX_IMAGE_PIXELS (2^30) itself: no decompression bomb.
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise PermanentError(f"{what} ({uri}) is not a decodable image")
    h, w = image.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise PermanentError(f"{what} ({uri}) is {w}x{h}, smaller than "
                             f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}")
    return as_frame(image)


def fit(image: Frame, width: int, height: int) -> Frame:
    """The whole image inside widthxheight, over a blurred, darkened fill of itself.

    No part of the picture is cropped away (a portrait photo keeps its faces) and there are no
    black bars.
    """
    h, w = image.shape[:2]
    cover = max(width / w, height / h)
    background = cv2.resize(image, (max(width, round(w * cover)), max(height, round(h * cover))),
                            interpolation=cv2.INTER_AREA if cover < 1 else cv2.INTER_LINEAR)
    by, bx = (background.shape[0] - height) // 2, (background.shape[1] - width) // 2
    background = background[by:by + height, bx:bx + width]
    background = cv2.GaussianBlur(background, (0, 0), max(2.0, width / 60))
    canvas = as_frame(background.astype(np.uint16) * 3 // 5)
    contain = min(width / w, height / h)
    fw, fh = max(1, round(w * contain)), max(1, round(h * contain))
    fitted = cv2.resize(image, (fw, fh),
                        interpolation=cv2.INTER_AREA if contain < 1 else cv2.INTER_CUBIC)
    y, x = (height - fh) // 2, (width - fw) // 2
    canvas[y:y + fh, x:x + fw] = fitted
    return np.ascontiguousarray(canvas)


def fetch_audio(storage: Storage, uri: str, path: Path, cancellation: Cancellation) -> float:
    """Download the audio track to `path` and check it decodes; returns its duration (s)."""
    what = "audio"
    try:
        if not uri.startswith(("http://", "https://")):  # the fetch policy caps http(s) itself
            size = storage.info(uri).size
            if size > MAX_AUDIO_BYTES:
                raise ValueError(f"is {size} bytes, over the {MAX_AUDIO_BYTES} bytes an audio "
                                 "track may have")
        storage.download(uri, path)
    except (ObjectNotFound, AccessDenied, ValueError, TransientError, Unreachable) as err:
        raise _fetch_failure(what, uri, err) from err
    try:
        info = ffmpeg.probe(path)
    except ffmpeg.EncoderError as err:
        raise PermanentError(f"{what} ({uri}) is not a readable audio file: {err}") from None
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    if not streams:
        raise PermanentError(f"{what} ({uri}) has no audio stream")
    # A readable header does not make a readable file: decode it all (audio decodes in a
    # fraction of its length) so a truncated track fails here, permanently, not in the mux.
    if not ffmpeg.decodes(path, "0:a:0", cancellation):
        raise PermanentError(f"{what} ({uri}) is not a readable audio file (decoding failed)")
    return float(streams[0].get("duration") or info.get("format", {}).get("duration") or 0)
