"""The FastAPI app: its parts built once (`Gateway`), and the routes, each a thin adapter:
authenticate → authorise (or act as the caller) → a pure function of the cache → a document.

Order of the checks, so that an answer never tells a caller what they may not read: 401
(credentials) before 403 (RBAC, the key's namespace) before 404 (no such namespace or VideoJob).
A caller who may not read a namespace gets 403 whether or not what they asked for exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from videojob_common import rerun as reruns
from videojob_common.pipeline import Obj, Phase

from . import __version__, bodies, console, pages, problems, queues, stream
from .api import (
    PREFIX,
    Cancelled,
    Created,
    CreateVideoJob,
    KubeEvents,
    NamespaceList,
    Queues,
    RerunVideoJob,
    VideoJob,
    VideoJobList,
    VisibleNamespace,
)
from .auth import (
    Access,
    Authenticator,
    Authorizer,
    Caller,
    Credential,
    TtlCache,
    confine,
)
from .cache import KeySecrets, Namespaces, ObjectStore, Reflector, VideoJobs
from .callers import Callers, Who
from .config import Settings
from .files import Files
from .files import router as files_router
from .history import History
from .history import router as history_router
from .kube import FIELD_MANAGER, MERGE_PATCH, ApiError, ApiServer, ApiUnavailable, Connection
from .metrics import Metrics, RequestMetrics
from .ratelimit import RateLimiter
from .trigger_objects import ALL_TRIGGERS
from .triggers import TriggerDesk
from .triggers import router as trigger_router
from .views import (
    GROUP,
    PLURAL,
    VERSION,
    collection_path,
    kube_event_items,
    links,
    manifest,
    object_path,
    view,
)

VIDEOJOBS = f"{PREFIX}/namespaces/{{namespace}}/videojobs"
VIDEOJOB = VIDEOJOBS + "/{name}"


@dataclass
class Gateway:
    """What the routes use, built once from the settings."""

    settings: Settings
    api: ApiServer
    metrics: Metrics
    videojobs: VideoJobs
    pools: ObjectStore
    namespaces: Namespaces
    keys: KeySecrets
    authn: Authenticator
    authz: Authorizer
    reflectors: list[Reflector]
    limiter: RateLimiter
    triggers: TriggerDesk

    @classmethod
    def build(cls, settings: Settings, connection: Connection) -> Gateway:
        metrics = Metrics()
        api = ApiServer(connection, observe=metrics.api_request,
                        timeout=settings.api_timeout_seconds)
        videojobs, pools, namespaces, keys = VideoJobs(), ObjectStore(), Namespaces(), KeySecrets()

        def reflector(path: str, sink: ObjectStore, what: str,
                      params: dict[str, str] | None = None) -> Reflector:
            return Reflector(api, path, sink, what=what, params=params,
                             watch_seconds=settings.watch_seconds, restarted=metrics.restarted)

        reflectors = [
            reflector(f"/apis/{GROUP}/{VERSION}/{PLURAL}", videojobs, "videojobs"),
            reflector(f"/apis/{GROUP}/{VERSION}/videojobpools", pools, "videojobpools"),
            # Only names are needed; a namespace's name is no secret from a caller who has
            # passed the review for it.
            reflector("/api/v1/namespaces", namespaces, "namespaces"),
        ]
        triggers = TriggerDesk(settings, api, videojobs, metrics.registry)
        if settings.triggers:
            reflectors.append(reflector(ALL_TRIGGERS, triggers.store, "videojobtriggers"))
        if "key" in settings.auth_modes and settings.key_namespace:
            reflectors.append(reflector(
                f"/api/v1/namespaces/{settings.key_namespace}/secrets", keys, "secrets",
                {"labelSelector": "videojob.dev/api-key=true"}))
        entries = settings.auth_cache_entries
        authn = Authenticator(api, settings.auth_modes, lambda: keys.ring,
                              TtlCache(settings.token_cache_seconds, entries), metrics.counted)
        authz = Authorizer(api, TtlCache(settings.access_cache_seconds, entries),
                           metrics.counted)
        metrics.watch_sizes(lambda: [("videojobs", len(videojobs)), ("videojobpools", len(pools)),
                                     ("namespaces", len(namespaces)), ("apikeys", len(keys.ring)),
                                     ("videojobtriggers", len(triggers.store))],
                            videojobs.readers)
        limiter = RateLimiter(entries)
        return cls(settings, api, metrics, videojobs, pools, namespaces, keys, authn, authz,
                   reflectors, limiter, triggers)

    def synced(self) -> list[str]:
        """The caches not listed yet."""
        return [r.what for r in self.reflectors if not r.synced.is_set()]


def create_app(settings: Settings, connection: Connection) -> FastAPI:
    gw = Gateway.build(settings, connection)
    history = History.build(settings, gw.authz)

    async def freeze_after_sync() -> None:
        """Once the caches hold their first listings (most of what this process keeps), those
        objects leave the collector's generations: a full collection then walks what came since
        instead of every cached VideoJob, a pause that lands in the tail of the requests it
        holds up."""
        await asyncio.gather(*(r.synced.wait() for r in gw.reflectors))
        gc.collect()
        gc.freeze()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(r.run(), name=f"reflector-{r.what}")
                 for r in gw.reflectors]
        tasks.append(asyncio.create_task(freeze_after_sync(), name="gc-freeze"))
        await history.start()
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await gw.api.close()
            await history.close()

    app = FastAPI(title="VideoJob API", version=__version__, lifespan=lifespan,
                  openapi_url=f"{PREFIX}/openapi.json", docs_url=None, redoc_url=None,
                  description="VideoJobs over HTTP; Kubernetes RBAC decides who may do what "
                              "(docs/http-api.md). Errors are application/problem+json.")
    app.state.gateway = gw
    app.state.callers = Callers(gw.authn, gw.limiter, settings.rate_limit, settings.rate_burst,
                                gw.metrics.rate_limited.inc)
    app.state.files = Files.build(settings, gw.authn, gw.authz, gw.videojobs, gw.namespaces)
    app.state.history = history
    problems.install(app)
    app.add_middleware(RequestMetrics, metrics=gw.metrics)
    app.include_router(router)
    app.include_router(files_router)
    app.include_router(trigger_router)
    app.include_router(console.router)
    app.include_router(history_router)
    return app


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


GW = Annotated[Gateway, Depends(gateway)]
router = APIRouter()


def namespace_known(gw: Gateway, namespace: str) -> None:
    if not gw.namespaces.exists(namespace):
        raise problems.not_found(f"namespace {namespace} not found")


async def found(gw: Gateway, namespace: str, name: str) -> Obj:
    """The VideoJob (waiting a moment for one this gateway just created), else 404."""
    obj = await gw.videojobs.get_fresh(namespace, name)
    if obj is None:
        namespace_known(gw, namespace)
        raise problems.not_found(f"VideoJob {namespace}/{name} not found")
    return obj


def json_response(doc: BaseModel, status: int = 200, **dump: Any) -> Response:
    # Served straight from the model: FastAPI would validate a returned model a second time,
    # which a page of 500 VideoJobs notices.
    return Response(doc.model_dump_json(**dump), status_code=status,
                    media_type="application/json")


CREATE_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": CreateVideoJob.model_json_schema()}}}}


@router.post(VIDEOJOBS, status_code=201, response_model=Created, openapi_extra=CREATE_BODY,
             summary="Create a VideoJob", tags=["videojobs"])
async def create(namespace: str, request: Request, who: Who, gw: GW) -> Response:
    confine(who, namespace)
    bodies.check_media_type(request.headers.get("content-type"))
    raw = await bodies.read_limited(request.stream(), request.headers.get("content-length"),
                                    gw.settings.max_body_bytes)
    wanted = bodies.parse_create(bodies.parse_json(raw))
    made = await gw.api.request(
        "POST", collection_path(namespace), body=manifest(namespace, wanted),
        params={"fieldValidation": "Strict", "fieldManager": FIELD_MANAGER},
        acting=who.acting)
    return created(gw, namespace, made)


RERUN_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": RerunVideoJob.model_json_schema()}}}}


@router.post(VIDEOJOB + ":rerun", status_code=201, response_model=Created,
             openapi_extra=RERUN_BODY, summary="Re-render one scene of a VideoJob (a derived "
             "VideoJob)", tags=["videojobs"])
async def rerun(namespace: str, name: str, request: Request, who: Who, gw: GW) -> Response:
    confine(who, namespace)
    bodies.check_media_type(request.headers.get("content-type"))
    raw = await bodies.read_limited(request.stream(), request.headers.get("content-length"),
                                    gw.settings.max_body_bytes)
    wanted = bodies.parse_rerun(bodies.parse_json(raw))
    # Read and create as the caller: the API server says 403 (may not read it, or may not
    # create) and 404, in RBAC's order, and the origin is the stored one, not the cache's.
    origin = await gw.api.request("GET", object_path(namespace, name), acting=who.acting)
    new_name = wanted.name or reruns.rerun_name(name, reruns.random_suffix())
    try:
        body = reruns.derive(origin, reruns.override(wanted.scene, wanted.seed,
                                                     wanted.description), new_name)
    except reruns.RerunError as e:
        raise problems.invalid_request(f"refused: {e.field} ({e.message})",
                                       [problems.FieldError(e.field, e.message)]) from None
    made = await gw.api.request(
        "POST", collection_path(namespace), body=body,
        params={"fieldValidation": "Strict", "fieldManager": FIELD_MANAGER},
        acting=who.acting)
    return created(gw, namespace, made)


def created(gw: Gateway, namespace: str, made: Obj) -> Response:
    """201 with where the new VideoJob is, told to the cache so a read at once finds it."""
    meta = made.get("metadata") or {}
    name = str(meta.get("name", ""))
    gw.videojobs.expect(namespace, name)
    out = Created(namespace=namespace, name=name, uid=str(meta.get("uid", "")),
                  links=links(namespace, name))
    response = json_response(out, 201)
    response.headers["Location"] = out.links.self
    return response


@router.get(VIDEOJOB, response_model=VideoJob, summary="Read a VideoJob", tags=["videojobs"])
async def read(namespace: str, name: str, who: Who, gw: GW) -> Response:
    await gw.authz.require(who, Access("get", namespace, name))
    return json_response(view(await found(gw, namespace, name)))


@router.get(VIDEOJOBS, response_model=VideoJobList, summary="List VideoJobs, newest first",
            tags=["videojobs"])
async def listing(
    namespace: str, who: Who, gw: GW,
    phase: Annotated[list[Phase] | None, Query(description="Only these phases")] = None,
    limit: Annotated[int | None, Query(ge=1, description="Page size (default 50)")] = None,
    continue_: Annotated[str | None, Query(alias="continue",
                                           description="From the page before")] = None,
) -> Response:
    await gw.authz.require(who, Access("list", namespace))
    namespace_known(gw, namespace)
    size = limit or gw.settings.list_default
    if size > gw.settings.list_max:
        raise problems.bad_request(
            "invalid-parameter", "Invalid parameter",
            f"limit must be at most {gw.settings.list_max}",
            [problems.FieldError("limit", f"at most {gw.settings.list_max}")])
    query = pages.Query(namespace, frozenset(str(p) for p in phase or ()))
    key = gw.settings.continue_key.get_secret_value()
    try:
        after = pages.decode(continue_, query, key) if continue_ is not None else None
    except pages.InvalidContinue as e:
        raise problems.bad_request("invalid-continue", "Invalid continue token", str(e),
                                   [problems.FieldError("continue", str(e))]) from None
    page = pages.page(gw.videojobs.index(namespace), gw.videojobs.by_sort_key, query, size,
                      after)
    token = pages.encode(page.next_after, query, key) if page.next_after else None
    return json_response(VideoJobList(items=[view(o) for o in page.items], continue_=token),
                         by_alias=True)


@router.get(VIDEOJOB + "/events", summary="Follow a VideoJob (Server-Sent Events)",
            tags=["videojobs"], response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`status` events, then the end"},
                       204: {"description": "The client already has the final state"}})
async def events(namespace: str, name: str, request: Request, who: Who, gw: GW) -> Response:
    access = Access("get", namespace, name)
    await gw.authz.require(who, access)
    obj = await found(gw, namespace, name)
    last = request.headers.get("last-event-id")
    if stream.already_seen_end(obj, last):
        return Response(status_code=204)
    cred: Credential = request.state.credential

    async def still_allowed() -> bool:
        # Otherwise a stream outlives the token or the binding that let it start; the caches
        # keep this cheap. An API server that does not answer ends no stream.
        try:
            current = await gw.authn.authenticate(cred)
            return await gw.authz.allowed(current, access)
        except problems.Problem:
            return False
        except (ApiError, ApiUnavailable):
            return True

    async def body() -> AsyncIterator[bytes]:
        with gw.videojobs.reading(namespace, name) as mailbox:
            async for chunk in stream.events(mailbox, last, gw.settings.keepalive_seconds,
                                             still_allowed):
                yield chunk

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.delete(VIDEOJOB, status_code=202, response_model=Cancelled,
               summary="Cancel a VideoJob (delete it)", tags=["videojobs"])
async def cancel(namespace: str, name: str, who: Who, gw: GW) -> Response:
    confine(who, namespace)
    await gw.api.request("DELETE", object_path(namespace, name), acting=who.acting)
    return json_response(Cancelled(namespace=namespace, name=name), 202)


async def set_suspend(gw: Gateway, namespace: str, name: str, who: Caller,
                      suspend: bool) -> Response:
    confine(who, namespace)
    obj = await gw.api.request(
        "PATCH", object_path(namespace, name), body={"spec": {"suspend": suspend}},
        content_type=MERGE_PATCH,
        params={"fieldValidation": "Strict", "fieldManager": FIELD_MANAGER},
        acting=who.acting)
    return json_response(view(obj))


@router.post(VIDEOJOB + "/suspend", response_model=VideoJob, summary="Suspend a VideoJob",
             tags=["videojobs"])
async def suspend(namespace: str, name: str, who: Who, gw: GW) -> Response:
    return await set_suspend(gw, namespace, name, who, True)


@router.post(VIDEOJOB + "/resume", response_model=VideoJob, summary="Resume a VideoJob",
             tags=["videojobs"])
async def resume(namespace: str, name: str, who: Who, gw: GW) -> Response:
    return await set_suspend(gw, namespace, name, who, False)


@router.get(f"{PREFIX}/queues", response_model=Queues, tags=["queues"],
            summary="Queued and running VideoJobs per pool, in the namespaces you may list")
async def queue_counts(who: Who, gw: GW) -> Response:
    visible = await visible_namespaces(gw, who)
    figures = await gw.authz.allowed(who, Access("list", resource="videojobpools"))
    return json_response(queues.report(gw.videojobs.values(), gw.pools.values(), visible,
                                       figures))


async def visible_namespaces(gw: Gateway, who: Caller,
                             candidates: list[str] | None = None) -> Callable[[str], bool]:
    """The namespaces whose VideoJobs the caller may list: all, with a cluster-wide grant;
    else those of `candidates` (default: the namespaces that have VideoJobs) RBAC allows."""
    if await gw.authz.allowed(who, Access("list")):
        return lambda ns: True
    if candidates is None:
        candidates = gw.videojobs.namespaces()
    answers = await asyncio.gather(*(gw.authz.allowed(who, Access("list", ns))
                                     for ns in candidates))
    allowed = {ns for ns, ok in zip(candidates, answers, strict=True) if ok}
    return allowed.__contains__


@router.get(f"{PREFIX}/namespaces", response_model=NamespaceList, tags=["namespaces"],
            summary="The namespaces whose VideoJobs you may list (an API key: its own)")
async def namespace_list(who: Who, gw: GW) -> Response:
    if who.key is not None:
        candidates = [who.key.namespace]
    else:
        candidates = sorted(str((o.get("metadata") or {}).get("name") or "")
                            for o in gw.namespaces.values())
    visible = await visible_namespaces(gw, who, candidates)
    return json_response(NamespaceList(
        namespaces=[VisibleNamespace(name=ns) for ns in candidates if visible(ns)]))


@router.get(VIDEOJOB + "/kube-events", response_model=KubeEvents, tags=["videojobs"],
            summary="The Kubernetes Events of a VideoJob, read as the caller")
async def kube_events(namespace: str, name: str, who: Who, gw: GW) -> Response:
    await gw.authz.require(who, Access("get", namespace, name))
    obj = await found(gw, namespace, name)
    uid = str((obj.get("metadata") or {}).get("uid") or "")
    # As the caller: reading Events is RBAC's to allow (`list events`), not the gateway's.
    listed = await gw.api.request(
        "GET", f"/api/v1/namespaces/{quote(namespace, safe='')}/events",
        params={"fieldSelector": f"involvedObject.kind=VideoJob,involvedObject.name={name}"},
        acting=who.acting)
    return json_response(KubeEvents(items=kube_event_items(listed.get("items") or [], uid)))


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(gw: GW) -> dict[str, str]:
    waiting = gw.synced()
    if waiting:
        raise problems.Problem(503, "not-ready", "Not ready",
                               f"the cache has not listed {', '.join(waiting)} yet")
    try:
        await gw.api.request("GET", "/version")
    except (ApiError, ApiUnavailable) as e:
        raise problems.Problem(503, "not-ready", "Not ready",
                               f"the API server does not answer: {e}") from None
    return {"status": "ready"}


@router.get("/metrics", include_in_schema=False)
async def metrics(gw: GW) -> Response:
    return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)
