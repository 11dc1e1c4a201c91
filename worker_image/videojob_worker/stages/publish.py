"""publish: `stitch/video.mp4` → VIDEOJOB_OUTPUT_URI, reporting its size and checksums.

The result (`{"uri", "bytes", "md5", "crc32c"}`, checksums base64 as GCS reports them) goes to
the termination message; the operator records it in `status.output`.
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
    ctx.progress.finish(2, f"published {info.size} bytes")
    return {"uri": info.uri, "bytes": info.size, "md5": info.md5, "crc32c": info.crc32c}
