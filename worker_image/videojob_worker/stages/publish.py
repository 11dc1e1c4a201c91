"""publish: `stitch/video.mp4` → VIDEOJOB_OUTPUT_URI, reporting its size and checksums.

The result (`{"uri", "bytes", "md5", "crc32c"}`, checksums base64 as GCS reports them) goes to
the termination message; the operator records it in `status.output`.

With narration captions as a track (#28), the WebVTT file goes next to the video: the output URI
with `.mp4` replaced by `.vtt` (`.vtt` added when it has no `.mp4`), as `captions` in the result.
"""

from __future__ import annotations

from videojob_worker.context import StageContext, StageResult
from videojob_worker.storage import ObjectNotFound


def run(ctx: StageContext) -> StageResult:
    assert ctx.output_uri is not None, "publish needs VIDEOJOB_OUTPUT_URI"
    ctx.progress.update(0, 2, "downloading video")
    local = ctx.workspace / "video.mp4"
    try:
        ctx.storage.download(ctx.layout.video, local)
    except ObjectNotFound:
        raise RuntimeError(f"{ctx.layout.video} is missing: has stitch run?") from None
    ctx.progress.update(1, 2, f"uploading to {ctx.output_uri}")
    info = ctx.storage.upload(local, ctx.output_uri, "video/mp4")
    ctx.log.info("published %s (%d bytes)", info.uri, info.size,
                 extra={"uri": info.uri, "bytes": info.size, "md5": info.md5,
                        "crc32c": info.crc32c})
    result = {"uri": info.uri, "bytes": info.size, "md5": info.md5, "crc32c": info.crc32c}
    narration = ctx.spec.narration
    if narration is not None and narration.captions == "track":
        result["captions"] = publish_captions(ctx, ctx.output_uri)
    ctx.progress.finish(2, f"published {info.size} bytes")
    return result


def captions_uri(output_uri: str) -> str:
    """Where the WebVTT captions go: next to the video, named after it."""
    return output_uri.removesuffix(".mp4") + ".vtt"


def publish_captions(ctx: StageContext, output_uri: str) -> str:
    local = ctx.workspace / "video.vtt"
    try:
        ctx.storage.download(ctx.layout.captions, local)
    except ObjectNotFound:
        raise RuntimeError(f"{ctx.layout.captions} is missing: has stitch run?") from None
    uri = captions_uri(output_uri)
    ctx.storage.upload(local, uri, "text/vtt")
    return uri
