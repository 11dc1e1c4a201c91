"""Inbound webhooks: `POST /api/v1/namespaces/{namespace}/triggers/{name}` turns a signed
delivery into a VideoJob, as the VideoJobTrigger's ServiceAccount (docs/http-api.md,
"Triggers").

The route is a thin adapter; what it decides is pure (webhook_auth, mapping, ratelimit,
trigger_objects). The order of the checks:

1. the trigger, from the watch-fed cache (404), and the body (415, 413);
2. the signature headers (401: missing, malformed, a stale Standard Webhooks timestamp), before
   anything costs the API server a request;
3. the signing secret, read **as the trigger's ServiceAccount** (impersonated), cached a few
   seconds (503 if it cannot be read; the trigger's Ready condition says why), then the
   signature itself (401);
4. a replay (409): a delivery this process remembers, or whose VideoJob (its name derives from
   the delivery) exists;
5. the JSON (400), the trigger's filter (200, ignored), its rate limit (429), the mapping (422);
6. the create, impersonating the ServiceAccount: the API server authorises, admits and audits
   it as that account (its 403 or 422 comes back as is), and a second create of the same
   delivery, by any replica, is AlreadyExists (409).

The gateway itself may read no Secret and create no VideoJob; it writes only the triggers'
status (as itself), and only for verified deliveries or when the Ready condition changes, so a
flood of unsigned requests costs the API server nothing but a cached Secret read.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import AsyncIterable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter

from videojob_common.pipeline import Obj

from . import bodies, mapping, problems, webhook_auth
from .api import PREFIX
from .auth import TtlCache
from .cache import ObjectStore, VideoJobs
from .config import Settings
from .kube import FIELD_MANAGER, MERGE_PATCH, Acting, ApiError, ApiServer, ApiUnavailable
from .ratelimit import RateLimiter, retry_after
from .trigger_objects import (
    IMPERSONATION_REFUSED,
    INVALID_TRIGGER,
    SECRET_KEY_INVALID,
    SECRET_KEY_MISSING,
    SECRET_READABLE,
    SECRET_UNREADABLE,
    Accepted,
    Ignored,
    InvalidTrigger,
    Trigger,
    delivered,
    from_object,
    manifest,
    readiness,
    refused,
    trigger_path,
)
from .views import collection_path, links

TRIGGER = f"{PREFIX}/namespaces/{{namespace}}/triggers/{{name}}"
log = logging.getLogger(__name__)

# (namespace, ServiceAccount, Secret, key, scheme): a change of any is another key.
KeyRef = tuple[str, str, str, str, str]


@dataclass(frozen=True)
class KeyProblem:
    """Why a trigger's signing secret could not be had (for its Ready condition)."""

    reason: str
    message: str


def unverified(e: webhook_auth.Rejected) -> problems.Problem:
    slug, title = ("stale-timestamp", "Stale delivery") if e.stale else (
        "invalid-signature", "Invalid signature")
    # RFC 9110 §11.6.1: a 401 names a scheme; this one is the trigger's signature.
    return problems.Problem(401, slug, title, str(e),
                            headers={"WWW-Authenticate": 'Signature realm="videojob-triggers"'})


def not_ready() -> problems.Problem:
    # Told to whoever calls, signed or not: nothing about the Secret, only where to look.
    return problems.Problem(503, "trigger-not-ready", "Trigger not ready",
                            "the trigger cannot verify deliveries now; its status (the Ready "
                            "condition) says why", headers={"Retry-After": "30"})


def replayed(delivery_id: str) -> problems.Problem:
    shown = f" {delivery_id}" if delivery_id else ""
    return problems.Problem(409, "replayed-delivery", "Delivery already received",
                            f"delivery{shown} was received before and made its VideoJob")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TriggerDesk:
    """What the trigger route needs, built once (`Gateway.build`): the triggers' cache, the
    signing secrets read, the deliveries seen, the rate limits, and the outcome counter."""

    def __init__(self, settings: Settings, api: ApiServer, videojobs: VideoJobs,
                 registry: CollectorRegistry, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = ObjectStore()
        self.api = api
        self.videojobs = videojobs
        self.max_body_bytes = settings.max_body_bytes
        self.tolerance = settings.trigger_timestamp_tolerance_seconds
        self.keys: TtlCache[KeyRef, bytes | KeyProblem] = TtlCache(
            settings.trigger_key_cache_seconds, settings.auth_cache_entries)
        self.seen = webhook_auth.SeenDeliveries(settings.trigger_replay_entries)
        self.limiter = RateLimiter(settings.auth_cache_entries)
        self.clock = clock
        self.monotonic = monotonic
        self.results = Counter("videojob_gateway_trigger_deliveries", "Webhook deliveries to "
                               "triggers, by result (created, ignored, or the problem's type).",
                               ["result"], registry=registry)

    async def deliver(self, namespace: str, name: str, headers: Mapping[str, str],
                      body: AsyncIterable[bytes]) -> Response:
        try:
            response = await self._deliver(namespace, name, headers, body)
        except problems.Problem as p:
            self.results.labels(p.slug).inc()
            raise
        except ApiError as e:
            self.results.labels(problems.from_api_error(e).slug).inc()
            raise
        except ApiUnavailable:
            self.results.labels("api-unavailable").inc()
            raise
        self.results.labels("created" if response.status_code == 202 else "ignored").inc()
        return response

    async def _deliver(self, namespace: str, name: str, headers: Mapping[str, str],
                       body: AsyncIterable[bytes]) -> Response:
        obj = self.store.get(namespace, name)
        if obj is None:
            raise problems.not_found(f"no trigger {name} in namespace {namespace}")
        try:
            trigger = from_object(obj)
        except InvalidTrigger as e:
            await self._set_ready(obj, KeyProblem(INVALID_TRIGGER, str(e)))
            raise not_ready() from None
        bodies.check_media_type(headers.get("content-type"))
        raw = await bodies.read_limited(body, headers.get("content-length"), self.max_body_bytes)
        try:
            claims = webhook_auth.presented(trigger.signature, headers, self.clock(),
                                            self.tolerance)
            webhook_auth.check(claims, await self.signing_key(trigger, obj), raw)
        except webhook_auth.Rejected as e:
            raise unverified(e) from None

        replay = claims.replay_keys(raw)
        delivery_id = claims.delivery_id or replay[0]
        videojob = mapping.videojob_name(trigger.name_prefix, trigger.name, replay[0])
        if (self.seen.seen(trigger.key, replay)
                or self.videojobs.get(namespace, videojob) is not None):
            raise replayed(claims.delivery_id)
        payload = bodies.parse_json(raw)
        reason = (mapping.ignored_by_headers(trigger.filter, headers)
                  or mapping.ignored_by_payload(trigger.filter, payload))
        if reason:
            return Response(Ignored(reason=reason).model_dump_json(),
                            media_type="application/json")
        wait = self.limiter.take(trigger.key, trigger.per_minute, trigger.burst,
                                 self.monotonic())
        if wait > 0:
            raise problems.Problem(
                429, "too-many-requests", "Too many requests",
                f"trigger {name} takes {trigger.per_minute} deliveries a minute",
                headers={"Retry-After": retry_after(wait)})
        try:
            spec = mapping.mapped_spec(trigger.template_spec, trigger.parameters, payload,
                                       trigger.uri_prefixes)
        except mapping.MappingError as e:
            await self._write_status(trigger, refused)
            raise problems.Problem(422, "invalid-payload", "Payload not mappable", str(e),
                                   [problems.FieldError(e.field, str(e))]) from None
        return await self._create(trigger, videojob, spec, delivery_id, replay)

    async def _create(self, trigger: Trigger, videojob: str, spec: Obj, delivery_id: str,
                      replay: tuple[str, ...]) -> Response:
        try:
            made = await self.api.request(
                "POST", collection_path(trigger.namespace),
                body=manifest(trigger, videojob, spec, delivery_id),
                params={"fieldValidation": "Strict", "fieldManager": FIELD_MANAGER},
                acting=Acting(impersonate=trigger.user))
        except ApiError as e:
            if e.status == 409 and e.reason == "AlreadyExists":
                self.seen.remember(trigger.key, replay)
                raise replayed(delivery_id) from None
            if e.status < 500 and e.status != 429:
                await self._write_status(trigger, refused)
            raise
        self.seen.remember(trigger.key, replay)
        self.videojobs.expect(trigger.namespace, videojob)
        now = utc_now()
        await self._write_status(
            trigger, lambda status: delivered(status, delivery_id, videojob, now))
        meta = made.get("metadata") or {}
        out = Accepted(namespace=trigger.namespace, name=videojob, uid=str(meta.get("uid", "")),
                       trigger=trigger.name, deliveryId=delivery_id,
                       links=links(trigger.namespace, videojob))
        return Response(out.model_dump_json(), status_code=202, media_type="application/json",
                        headers={"Location": out.links.self})

    async def signing_key(self, trigger: Trigger, obj: Obj) -> bytes:
        """The trigger's HMAC key, read as its ServiceAccount and kept a few seconds (a failure
        too, so unsigned requests cannot make the gateway read the Secret each time)."""
        ref = (trigger.namespace, trigger.service_account, trigger.secret_name,
               trigger.secret_key, trigger.signature)
        hit = self.keys.get(ref)
        if hit is not None:
            found = hit.value
        else:
            found = await self._read_key(trigger)
            self.keys.put(ref, found)
        if isinstance(found, KeyProblem):
            await self._set_ready(obj, found)
            raise not_ready()
        await self._set_ready(obj, KeyProblem(
            SECRET_READABLE, f"{trigger.user} reads the signing secret from Secret "
                             f"{trigger.secret_name}"))
        return found

    async def _read_key(self, trigger: Trigger) -> bytes | KeyProblem:
        path = f"/api/v1/namespaces/{trigger.namespace}/secrets/{trigger.secret_name}"
        try:
            secret = await self.api.request("GET", path,
                                            acting=Acting(impersonate=trigger.user))
        except ApiError as e:
            if e.status == 403 and "impersonate" in e.message:
                return KeyProblem(IMPERSONATION_REFUSED,
                                  f"the gateway may not act as {trigger.user}: {e.message}")
            if e.status in (403, 404):
                return KeyProblem(SECRET_UNREADABLE, f"{trigger.user} cannot get Secret "
                                                     f"{trigger.secret_name}: {e.message}")
            log.warning("trigger %s/%s: reading its Secret: %s", trigger.namespace,
                        trigger.name, e)
            raise problems.api_unavailable(f"the API server answered {e.status}") from None
        data = (secret.get("data") or {}).get(trigger.secret_key)
        if not data:
            return KeyProblem(SECRET_KEY_MISSING, f"Secret {trigger.secret_name} has no key "
                                                  f"{trigger.secret_key}")
        try:
            return webhook_auth.signing_key(trigger.signature, base64.b64decode(data))
        except (webhook_auth.InvalidSecret, binascii.Error) as e:
            return KeyProblem(SECRET_KEY_INVALID, f"Secret {trigger.secret_name}, key "
                                                  f"{trigger.secret_key}: {e}")

    async def _set_ready(self, obj: Obj, state: KeyProblem) -> None:
        meta = obj.get("metadata") or {}
        fields = readiness(obj.get("status") or {}, state.reason == SECRET_READABLE,
                           state.reason, state.message, utc_now())
        if fields is not None:
            await self._patch_status(str(meta.get("namespace")), str(meta.get("name")),
                                     {"status": fields})

    async def _write_status(self, trigger: Trigger,
                            change: Callable[[Mapping[str, Any]], Obj]) -> None:
        """Counts and the last delivery, on the status the API server has: the patch carries
        the resourceVersion it was computed from, and a conflict (another replica, another
        delivery) reads the trigger again. A status that cannot be written is logged; the
        delivery's answer does not depend on it."""
        status, version = trigger.status, trigger.resource_version
        for _ in range(5):
            body = {"metadata": {"resourceVersion": version}, "status": change(status)}
            if await self._patch_status(trigger.namespace, trigger.name, body):
                return
            try:
                fresh = await self.api.request("GET", trigger_path(trigger.namespace,
                                                                   trigger.name))
            except (ApiError, ApiUnavailable) as e:
                log.warning("trigger %s/%s: status not written: %s", trigger.namespace,
                            trigger.name, e)
                return
            status = fresh.get("status") or {}
            version = str((fresh.get("metadata") or {}).get("resourceVersion") or "")
        log.warning("trigger %s/%s: status not written: conflicts", trigger.namespace,
                    trigger.name)

    async def _patch_status(self, namespace: str, name: str, body: Obj) -> bool:
        """False only on a conflict (409): the caller may compute the patch again."""
        try:
            await self.api.request("PATCH", trigger_path(namespace, name) + "/status",
                                   body=body, content_type=MERGE_PATCH,
                                   params={"fieldManager": FIELD_MANAGER})
        except ApiError as e:
            if e.status == 409:
                return False
            log.warning("trigger %s/%s: status not written: %s", namespace, name, e)
        except ApiUnavailable as e:
            log.warning("trigger %s/%s: status not written: %s", namespace, name, e)
        return True


def desk(request: Request) -> TriggerDesk:
    found: TriggerDesk = request.app.state.gateway.triggers
    return found


router = APIRouter()
DELIVERY_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"description": "The webhook's payload, any JSON; signed as sent."}}}}}


@router.post(TRIGGER, status_code=202, response_model=Accepted, openapi_extra=DELIVERY_BODY,
             responses={200: {"model": Ignored, "description": "The trigger's filter turned the "
                                                               "delivery down"}},
             summary="Deliver a webhook to a VideoJobTrigger (signed; no Kubernetes credential)",
             tags=["triggers"])
async def deliver(namespace: str, name: str, request: Request,
                  triggers: Annotated[TriggerDesk, Depends(desk)]) -> Response:
    return await triggers.deliver(namespace, name, request.headers, request.stream())
