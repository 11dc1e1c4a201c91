"""The file routes: uploads (images and audio for a spec) and a finished VideoJob's download.
Thin adapters, like app.py's: authenticate → authorise → the pure parts (layout, uploads,
ranges) → storage.py, whose blocking calls run in a thread.

Unlike a VideoJob write, which the API server authorises as the caller, the files are written
and read with the gateway's own storage credentials: the SubjectAccessReview here is the check
(`create videojobs` to upload into a namespace, `get` the VideoJob to download its video), and
layout.py keeps every path inside the namespace's lane.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.requests import ClientDisconnect

from videojob_common.pipeline import Obj, Phase

from . import download_links, layout, problems, ranges, uploads
from .api import PREFIX, DownloadLink
from .auth import Access, Authenticator, Authorizer
from .cache import Namespaces, VideoJobs
from .callers import Who
from .config import Settings
from .problems import Problem
from .storage import ObjectMissing, Reader, StorageFailed, StorageRefused, Store, store_for
from .views import phase_of, view

UPLOADS = f"{PREFIX}/namespaces/{{namespace}}/uploads"
DOWNLOAD = f"{PREFIX}/namespaces/{{namespace}}/videojobs/{{name}}/download"
LINKED = f"{PREFIX}/namespaces/{{namespace}}/videojobs/{{name}}/linked-download"
READ_CHUNK = 1024 * 1024  # a download is sent in pieces of this size
log = logging.getLogger(__name__)


@dataclass
class Files:
    """What the file routes use of the gateway, built once in create_app."""

    authn: Authenticator
    authz: Authorizer
    videojobs: VideoJobs
    namespaces: Namespaces
    limits: uploads.Limits
    store: Store | None  # None: no --storage-root
    link_key: bytes  # signs download links
    link_seconds: int

    @classmethod
    def build(cls, settings: Settings, authn: Authenticator, authz: Authorizer,
              videojobs: VideoJobs, namespaces: Namespaces) -> Files:
        root = settings.storage_root
        return cls(authn, authz, videojobs, namespaces, limits(settings),
                   store_for(layout.StorageRoot.parse(root)) if root else None,
                   settings.download_link_key.get_secret_value(), settings.download_link_seconds)

    def storage(self) -> Store:
        if self.store is None:
            raise Problem(501, "storage-not-configured", "No storage",
                          "this gateway has no --storage-root: it stores and serves no files")
        return self.store


def limits(settings: Settings) -> uploads.Limits:
    return uploads.Limits(max_files=settings.upload_max_files,
                          max_image_bytes=settings.upload_max_image_bytes,
                          max_audio_bytes=settings.upload_max_audio_bytes,
                          max_total_bytes=settings.upload_max_total_bytes)


def files_of(request: Request) -> Files:
    built: Files = request.app.state.files
    return built


FilesOf = Annotated[Files, Depends(files_of)]
router = APIRouter()


def storage_problem(e: Exception) -> Problem:
    if isinstance(e, StorageRefused):
        return Problem(409, "storage-conflict", "Storage conflict",
                       f"{e}; an administrator must look at the storage")
    return Problem(502, "storage-error", "Storage error",
                   "the storage failed or refused the gateway; its log says why")


# --- uploads

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "properties": {
        "images": {"type": "array", "items": {"type": "string", "format": "binary"},
                   "description": "PNG, JPEG or WebP; in the order of spec.images"},
        "audio": {"type": "string", "format": "binary",
                  "description": "WAV, MP3, Ogg, FLAC or M4A; at most one"}}}}}}}


@router.post(UPLOADS, status_code=201, response_model=uploads.Upload,
             openapi_extra=UPLOAD_BODY, tags=["files"],
             summary="Upload images and audio for a VideoJob's spec")
async def upload(namespace: str, request: Request, who: Who, f: FilesOf) -> Response:
    await f.authz.require(who, Access("create", namespace))
    store = f.storage()
    if not f.namespaces.exists(namespace):
        raise problems.not_found(f"namespace {namespace} not found")
    form = uploads.Form(uploads.boundary_of(request.headers.get("content-type")))
    uploads.check_declared_length(request.headers.get("content-length"), f.limits)
    upload_id = layout.new_upload_id(datetime.now(UTC))
    prefix = store.root.upload(namespace, upload_id)
    try:
        staging = await asyncio.to_thread(store.stage, namespace, upload_id)
    except (StorageRefused, StorageFailed, ObjectMissing) as e:
        log.error("cannot write under %s: %s", prefix, e)
        raise storage_problem(e) from None
    try:
        stored = await uploads.receive(request.stream(), form, f.limits, staging, prefix)
    except (StorageRefused, StorageFailed, ObjectMissing) as e:
        raise storage_problem(e) from None
    except ClientDisconnect:
        log.info("upload %s in %s: the client went away; nothing kept", upload_id, namespace)
        return Response(status_code=400)
    log.info("upload %s in %s by %s: %d files, %d bytes", upload_id, namespace, who.user,
             len(stored), sum(s.bytes for s in stored))
    doc = uploads.Upload(namespace=namespace, id=upload_id, prefix=prefix,
                         images=[s.uri for s in stored if s.field.startswith("images")],
                         audio=next((s.uri for s in stored if s.field == "audio"), None),
                         files=stored)
    return Response(doc.model_dump_json(), status_code=201, media_type="application/json")


# --- downloads


def not_finished(namespace: str, name: str, phase: str) -> Problem:
    return Problem(409, "not-finished", "Not finished",
                   f"VideoJob {namespace}/{name} is {phase}: only a Succeeded VideoJob has a "
                   "video to download")


async def found(f: Files, namespace: str, name: str) -> Obj:
    obj = await f.videojobs.get_fresh(namespace, name)
    if obj is None:
        if not f.namespaces.exists(namespace):
            raise problems.not_found(f"namespace {namespace} not found")
        raise problems.not_found(f"VideoJob {namespace}/{name} not found")
    return obj


async def open_output(f: Files, namespace: str, name: str) -> Reader:
    obj = await found(f, namespace, name)
    phase = phase_of(obj)
    result = view(obj).result
    if phase != Phase.SUCCEEDED:
        raise not_finished(namespace, name, phase)
    if result is None:
        raise Problem(409, "no-output", "No output",
                      f"VideoJob {namespace}/{name} succeeded without an output URI")
    store = f.storage()
    why = store.root.outside(result.outputURI, namespace)
    if why:
        # The operator writes only there; a status that says otherwise was written by someone
        # else (status patch rights), and the gateway's credentials must not serve it.
        log.warning("refused to serve %s/%s: %s", namespace, name, why)
        raise Problem(403, "output-outside-namespace", "Output outside the namespace",
                      f"the VideoJob's output is not served: {why}")
    try:
        return await asyncio.to_thread(store.open, result.outputURI)
    except ObjectMissing:
        raise problems.not_found(f"the output of VideoJob {namespace}/{name} "
                                 f"({result.outputURI}) no longer exists") from None
    except StorageRefused as e:
        log.warning("refused to serve %s/%s: %s", namespace, name, e)
        raise Problem(403, "output-outside-namespace", "Output outside the namespace",
                      f"the VideoJob's output is not served: {e}") from None
    except StorageFailed as e:
        raise storage_problem(e) from None


@router.get(DOWNLOAD, tags=["files"], response_class=StreamingResponse,
            summary="The MP4 of a Succeeded VideoJob (Range requests supported; HEAD too)",
            responses={200: {"content": {"video/mp4": {}}, "description": "The video"},
                       206: {"content": {"video/mp4": {}}, "description": "A range"},
                       409: {"description": "Not Succeeded (yet)"},
                       416: {"description": "The range is outside the file"}})
@router.head(DOWNLOAD, include_in_schema=False)
async def download(namespace: str, name: str, request: Request, who: Who,
                   f: FilesOf) -> Response:
    await f.authz.require(who, Access("get", namespace, name))
    return await serve(f, namespace, name, request)


@router.post(DOWNLOAD + "-link", tags=["files"], response_model=DownloadLink,
             summary="A short-lived URL of the MP4, for a <video src> (which sends no header)")
async def download_link(namespace: str, name: str, who: Who, f: FilesOf) -> Response:
    await f.authz.require(who, Access("get", namespace, name))
    obj = await found(f, namespace, name)
    phase = phase_of(obj)
    if phase != Phase.SUCCEEDED:
        raise not_finished(namespace, name, phase)
    uid = str((obj.get("metadata") or {}).get("uid") or "")
    link = download_links.issue(f.link_key, namespace, name, uid, time.time(), f.link_seconds)
    url = (f"{PREFIX}/namespaces/{quote(namespace, safe='')}/videojobs/{quote(name, safe='')}"
           f"/linked-download?token={quote(link.token, safe='')}")
    doc = DownloadLink(url=url, expiresAt=datetime.fromtimestamp(link.expires_at, UTC)
                       .strftime("%Y-%m-%dT%H:%M:%SZ"))
    return Response(doc.model_dump_json(), media_type="application/json",
                    headers={"Cache-Control": "no-store"})


@router.get(LINKED, tags=["files"], response_class=StreamingResponse,
            summary="The MP4 through a download link (no credentials: the token is one)",
            responses={401: {"description": "The link is malformed, forged, for another "
                                            "VideoJob, or expired"}})
@router.head(LINKED, include_in_schema=False)
async def linked_download(namespace: str, name: str, request: Request, f: FilesOf,
                          token: Annotated[str | None, Query(max_length=64)] = None
                          ) -> Response:
    obj = f.videojobs.get(namespace, name)
    uid = str((obj.get("metadata") or {}).get("uid") or "") if obj is not None else None
    try:
        download_links.check(f.link_key, token or "", namespace, name, uid or None, time.time())
    except download_links.LinkRefused as e:
        raise Problem(401, "invalid-download-link", "Invalid download link", str(e),
                      headers={"WWW-Authenticate": 'Bearer realm="videojob"'}) from None
    return await serve(f, namespace, name, request)


async def serve(f: Files, namespace: str, name: str, request: Request) -> Response:
    """The video, whole or the range asked for, to a request already authorised."""
    reader = await open_output(f, namespace, name)
    version = reader.version
    headers = {"Accept-Ranges": "bytes", "ETag": version.etag,
               "Content-Disposition": f'inline; filename="{name}.mp4"',
               # Served to one caller after their review: no shared cache may keep it.
               "Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"}
    if version.modified is not None:
        headers["Last-Modified"] = ranges.http_date(version.modified)
    try:
        wanted = ranges.parse(request.headers.get("range"), version.size) if \
            ranges.if_range_holds(request.headers.get("if-range"), version.etag,
                                  version.modified) else None
    except ranges.Unsatisfiable as e:
        reader.close()
        raise Problem(416, "range-not-satisfiable", "Range not satisfiable", str(e),
                      headers={"Content-Range": e.content_range, **headers}) from None
    if wanted is None:
        start, length, status = 0, version.size, 200
    else:
        start, length, status = wanted.start, wanted.length, 206
        headers["Content-Range"] = wanted.content_range(version.size)
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        reader.close()
        return Response(status_code=status, headers=headers, media_type="video/mp4")
    return StreamingResponse(send(reader, start, length), status_code=status, headers=headers,
                             media_type="video/mp4")


async def send(reader: Reader, start: int, length: int) -> AsyncIterator[bytes]:
    try:
        end = start + length
        while start < end:
            try:
                data = await asyncio.to_thread(reader.read, start,
                                               min(READ_CHUNK, end - start))
            except (StorageFailed, ObjectMissing) as e:  # the headers are sent: end short
                log.error("a download stopped at byte %d: %s", start, e)
                return
            if not data:
                # The file shrank since it was opened: end short, and the client sees the
                # length it was promised was not met.
                log.warning("a download ended %d bytes short", end - start)
                return
            start += len(data)
            yield data
    finally:
        reader.close()
