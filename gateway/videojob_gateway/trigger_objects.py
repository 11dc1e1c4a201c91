"""A VideoJobTrigger object → the gateway's record of it (`Trigger`); a mapped delivery → the
VideoJob to create; what happened → the trigger's status to write. Pure: the routes
(triggers.py) hand in objects from the cache and the clock's reading.

The CRD (crds/videojob.dev_videojobtriggers.yaml) has already refused a malformed trigger; a
field checked here too (a parameter's target, a path) is checked because the payload that meets
it comes from outside, and a trigger written before a stricter CRD must not slip through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import BaseModel, Field

from videojob_common.pipeline import Obj
from videojob_common.triggers import (
    DEFAULT_BURST,
    DEFAULT_PER_MINUTE,
    DELIVERY_ANNOTATION,
    PLURAL,
    SIGNATURES,
    TRIGGER_LABEL,
    Signature,
)

from .api import Links
from .mapping import Filter, Match, Parameter, parameter, parse_path
from .views import API_VERSION, GROUP, VERSION

READY = "Ready"
# Reasons of the Ready condition.
SECRET_READABLE = "SecretReadable"
SECRET_UNREADABLE = "SecretUnreadable"  # the ServiceAccount may not get it, or it is not there
IMPERSONATION_REFUSED = "ImpersonationRefused"  # the gateway may not act as the ServiceAccount
SECRET_KEY_MISSING = "SecretKeyMissing"
SECRET_KEY_INVALID = "SecretKeyInvalid"
INVALID_TRIGGER = "InvalidTrigger"


class InvalidTrigger(ValueError):
    pass


@dataclass(frozen=True)
class Trigger:
    namespace: str
    name: str
    uid: str
    resource_version: str
    signature: Signature
    secret_name: str
    secret_key: str
    service_account: str
    name_prefix: str
    template_spec: Mapping[str, Any]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    parameters: tuple[Parameter, ...] = ()
    filter: Filter = field(default_factory=Filter)
    uri_prefixes: tuple[str, ...] = ()
    per_minute: int = DEFAULT_PER_MINUTE
    burst: int = DEFAULT_BURST
    status: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def user(self) -> str:
        """Whom the gateway acts as for this trigger (an impersonated ServiceAccount)."""
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def from_object(obj: Obj) -> Trigger:
    """The record of a VideoJobTrigger object; InvalidTrigger naming what is wrong."""
    try:
        return _parse(obj)
    except (KeyError, TypeError, AttributeError) as e:
        raise InvalidTrigger(f"the trigger is malformed ({type(e).__name__}: {e})") from None
    except ValueError as e:
        raise InvalidTrigger(str(e)) from None


def _parse(obj: Obj) -> Trigger:
    meta, spec = obj["metadata"], obj["spec"]
    signature = spec["signature"]
    if signature not in SIGNATURES:
        raise ValueError(f"spec.signature {signature!r} is not one of {', '.join(SIGNATURES)}")
    template = spec.get("template") or {}
    tmeta = template.get("metadata") or {}
    prefixes = tuple(str(p) for p in spec.get("uriPrefixes") or ())
    if any(not p.endswith("/") for p in prefixes):
        raise ValueError("each of spec.uriPrefixes must end with /")
    params = tuple(parameter(str(p["from"]), str(p["to"]), bool(p.get("required", True)),
                             prefixes) for p in spec.get("parameters") or ())
    flt = spec.get("filter") or {}
    rate = spec.get("rateLimit") or {}
    name = str(meta["name"])
    return Trigger(
        namespace=str(meta["namespace"]), name=name, uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        signature=cast(Signature, signature),
        secret_name=str(spec["secretRef"]["name"]), secret_key=str(spec["secretRef"]["key"]),
        service_account=str(spec["serviceAccountName"]),
        name_prefix=str(tmeta.get("generateName") or f"{name}-"),
        template_spec=dict(template.get("spec") or {}),
        labels=dict(tmeta.get("labels") or {}), annotations=dict(tmeta.get("annotations") or {}),
        parameters=params,
        filter=Filter(
            headers=tuple(Match(str(h["name"]), frozenset(map(str, h["values"])))
                          for h in flt.get("headers") or ()),
            payload=tuple(Match(str(m["path"]), frozenset(map(str, m["values"])),
                                parse_path(str(m["path"])))
                          for m in flt.get("payload") or ())),
        uri_prefixes=prefixes,
        per_minute=int(rate.get("perMinute", DEFAULT_PER_MINUTE)),
        burst=int(rate.get("burst", DEFAULT_BURST)),
        status=dict(obj.get("status") or {}),
    )


ALL_TRIGGERS = f"/apis/{GROUP}/{VERSION}/{PLURAL}"  # every namespace's, for the cache


def trigger_path(namespace: str, name: str = "") -> str:
    """A trigger on the API server (its collection when `name` is empty)."""
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    return f"{base}/{name}" if name else base


def manifest(trigger: Trigger, name: str, spec: Mapping[str, Any], delivery_id: str) -> Obj:
    """The VideoJob a delivery creates. The trigger's label and the delivery's annotation are
    set last, so a template cannot hide where a VideoJob came from."""
    return {"apiVersion": API_VERSION, "kind": "VideoJob",
            "metadata": {"name": name, "namespace": trigger.namespace,
                         "labels": {**trigger.labels, TRIGGER_LABEL: trigger.name},
                         "annotations": {**trigger.annotations,
                                         DELIVERY_ANNOTATION: delivery_id}},
            "spec": dict(spec)}


def delivered(status: Mapping[str, Any], delivery_id: str, videojob: str, now: str) -> Obj:
    """The status fields to write once a delivery made `videojob`."""
    return {"lastDeliveryID": delivery_id, "lastDeliveryTime": now, "lastVideoJob": videojob,
            "created": int(status.get("created") or 0) + 1}


def refused(status: Mapping[str, Any]) -> Obj:
    """The status fields to write once a verified delivery made nothing."""
    return {"refused": int(status.get("refused") or 0) + 1}


def readiness(status: Mapping[str, Any], ready: bool, reason: str, message: str,
              now: str) -> Obj | None:
    """The status fields that record whether the trigger can verify deliveries; None when the
    status says so already (written only when it changes)."""
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    old = next((c for c in conditions if c.get("type") == READY), None)
    value = "True" if ready else "False"
    if old and (old.get("status"), old.get("reason"), old.get("message")) == (
            value, reason, message):
        return None
    since = old.get("lastTransitionTime") if old and old.get("status") == value else None
    condition = {"type": READY, "status": value, "reason": reason, "message": message,
                 "lastTransitionTime": since or now}
    return {"conditions": [c for c in conditions if c.get("type") != READY] + [condition]}


class Accepted(BaseModel):
    """What a delivery that made a VideoJob is answered (202)."""

    namespace: str
    name: str = Field(description="The VideoJob created.")
    uid: str
    trigger: str
    deliveryId: str = Field(description="X-GitHub-Delivery or webhook-id, as sent.")
    links: Links


class Ignored(BaseModel):
    """What a delivery the trigger's filter turns down is answered (200): nothing was made."""

    status: str = "ignored"
    reason: str
