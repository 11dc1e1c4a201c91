"""Writing the cache entries of a stage's outputs (issue #25, docs/reuse.md).

After the stage succeeded (its artifacts are in the VideoJob's prefix), each output that the
operator gave a key in VIDEOJOB_CACHE is copied from the local file the stage rendered into a
writer folder of this pod's own inside the entry, checked against the bytes rendered, and only
then announced by the entry's manifest, written last. The layout and the manifest are
`videojob_common.cache_entries`'s, which the operator reads with.

The manifest is replaced atomically (`Storage.write_bytes`: a rename locally, a finalized upload
on GCS), so a reader sees the previous manifest or this one, each naming one writer's complete,
verified artifact: two writers of one key never leave an entry whose manifest and bytes
disagree, and a pod killed before the manifest leaves only a writer folder the sweep removes.

Best effort: the VideoJob already has its artifacts, so an entry that cannot be written costs a
later render, never this stage. Every failure is a warning; only cancellation stops the pod.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from videojob_common.cache_entries import (
    ARTIFACTS,
    CONTENT_TYPES,
    Artifact,
    Instruction,
    Manifest,
    artifact_path,
    entry,
    manifest_uri,
)
from videojob_common.pipeline import Stage
from videojob_worker.context import StageContext
from videojob_worker.errors import Cancelled
from videojob_worker.storage import Checksums, Storage, join


class ArtifactMismatch(Exception):
    """Storage reports other bytes than the stage rendered: the entry must not be announced."""


def writer_name(uid: str) -> str:
    """This pod attempt's writer folder: the VideoJob's uid and a random suffix, so that no two
    pods (a retry, another VideoJob with the same key) ever write into one folder."""
    return f"{uid}-{secrets.token_hex(6)}"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_entries(ctx: StageContext, instruction: Instruction, writer: str,
                  now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> int:
    """Write the entry of every output in `ctx.outputs` that `instruction` has a key for;
    returns how many were written. Failures are logged; `Cancelled` propagates."""
    if ctx.stage not in ARTIFACTS:  # publish: its bytes are stitch's
        return 0
    written = 0
    for scene, path in sorted(ctx.outputs.items(), key=lambda item: item[0] or 0):
        key = instruction.key_of(scene)
        if key is None:
            continue
        where = str(ctx.stage) if scene is None else f"{ctx.stage} scene {scene}"
        ctx.cancellation.check()
        try:
            manifest = write_entry(
                ctx.storage, instruction.scope, ctx.stage, scene, key, path, writer,
                written_by={"namespace": ctx.identity.namespace, "name": ctx.identity.name,
                            "uid": ctx.identity.uid},
                written_at=rfc3339(now()), workspace=ctx.workspace)
        except Cancelled:
            raise
        except Exception as err:
            ctx.log.warning("no cache entry for %s (key %s): %s", where, key, err,
                            extra={"key": key, "scene": scene})
            continue
        written += 1
        ctx.log.info("cache entry for %s written (key %s)", where, key,
                     extra={"key": key, "scene": scene, "bytes": manifest.artifact.bytes})
    return written


def write_entry(storage: Storage, scope: str, stage: Stage, scene: int | None, key: str,
                path: Path, writer: str, *, written_by: dict[str, str], written_at: str,
                workspace: Path) -> Manifest:
    """One output's entry: its artifact into `writer`'s folder, verified, then the manifest.
    Raises (and writes no manifest) when any step fails."""
    entry_uri = entry(scope, stage, key)
    relative = artifact_path(writer, stage)
    rendered = Checksums.of_file(path)
    uri = join(entry_uri, relative)
    storage.upload(path, uri, CONTENT_TYPES[stage])
    # What storage holds now (GCS: the server's md5 and crc32c; file://: the stored file read
    # back), not what the upload meant to send.
    stored = storage.info(uri)
    artifact = Artifact(path=relative, bytes=rendered.size, md5=rendered.md5,
                        crc32c=rendered.crc32c)
    if not (artifact.matches(stored.size, stored.md5) and stored.crc32c == artifact.crc32c):
        raise ArtifactMismatch(
            f"{uri} holds {stored.size} bytes (md5 {stored.md5}, crc32c {stored.crc32c}), the "
            f"stage rendered {artifact.bytes} (md5 {artifact.md5}, crc32c {artifact.crc32c})")
    manifest = Manifest(key=key, stage=stage, scene=scene, artifact=artifact,
                        written_by=written_by, written_at=written_at)
    storage.write_bytes(manifest_uri(entry_uri), manifest.to_json().encode(), workspace,
                        "application/json")
    return manifest
