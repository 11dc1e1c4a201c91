"""The VideoJob API as the plugin uses it: create, read, list, patch, delete, and follow changes.

`changes()` is how `watch` and `cancel --wait` learn about a VideoJob: one read, then a watch
on the collection narrowed to that object (`fieldSelector=metadata.name=NAME`) from the read's
resourceVersion, so no change in between is missed and nothing polls. The server ends a watch
after `timeoutSeconds`; the generator then watches again from the last resourceVersion seen
(bookmarks keep it fresh). A resourceVersion too old to resume from (410 Gone) is answered with
a fresh read, as client-go's reflector does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

from kubernetes import client, watch

from videojob_common.pipeline import Obj

from .cluster import Target
from .resource import GROUP, PLURAL, VERSION

# The longest single watch request; the server closes it after this and it is re-opened.
WATCH_SECONDS = 300
# The client gives up on a silent connection this long after the server should have closed it
# (a proxy that drops the connection without a FIN would otherwise hang the watch forever).
WATCH_GRACE_SECONDS = 30
MERGE_PATCH = "application/merge-patch+json"


def _obj(value: object) -> Obj:
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object from the API server, got {type(value).__name__}")
    return value


def create(target: Target, namespace: str, body: Obj) -> Obj:
    return _obj(target.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body))


def get(target: Target, name: str) -> Obj:
    return _obj(target.custom.get_namespaced_custom_object(
        GROUP, VERSION, target.namespace, PLURAL, name))


def list_all(target: Target, all_namespaces: bool = False) -> list[Obj]:
    if all_namespaces:
        listing = _obj(target.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL))
    else:
        listing = _obj(target.custom.list_namespaced_custom_object(
            GROUP, VERSION, target.namespace, PLURAL))
    return [_obj(item) for item in listing.get("items") or []]


def patch_spec(target: Target, name: str, spec: Obj) -> Obj:
    # A JSON merge patch touches only the fields named (here spec.suspend), whoever owns the rest.
    return _obj(target.custom.patch_namespaced_custom_object(
        GROUP, VERSION, target.namespace, PLURAL, name, {"spec": spec},
        _content_type=MERGE_PATCH))


def delete(target: Target, name: str) -> None:
    target.custom.delete_namespaced_custom_object(GROUP, VERSION, target.namespace, PLURAL, name)


def _remaining(deadline: float | None) -> float:
    return math.inf if deadline is None else deadline - time.monotonic()


def changes(target: Target, name: str, deadline: float | None) -> Iterator[tuple[str, Obj]]:
    """("CURRENT", the VideoJob now), then ("ADDED"|"MODIFIED"|"DELETED", it) on each change.

    Stops after a DELETED event, or when `deadline` (time.monotonic()) passes. A VideoJob that
    does not exist raises the API server's 404 at once.
    """
    current = get(target, name)
    yield "CURRENT", current
    version = str(current["metadata"]["resourceVersion"])
    while (remaining := _remaining(deadline)) > 0:
        seconds = WATCH_SECONDS if remaining >= WATCH_SECONDS else max(1, math.ceil(remaining))
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            for event in stream.stream(  # type: ignore[no-untyped-call]
                    target.custom.list_namespaced_custom_object, GROUP, VERSION,
                    target.namespace, PLURAL, field_selector=f"metadata.name={name}",
                    resource_version=version, allow_watch_bookmarks=True,
                    timeout_seconds=seconds,
                    _request_timeout=(10, seconds + WATCH_GRACE_SECONDS)):
                if not isinstance(event, dict):  # a blank keep-alive line
                    continue
                obj = _obj(event["raw_object"])
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if event["type"] == "BOOKMARK":
                    continue
                yield str(event["type"]), obj
                if event["type"] == "DELETED":
                    return
                if _remaining(deadline) <= 0:
                    return
        except client.ApiException as e:
            if e.status != 410:
                raise
            try:
                current = get(target, name)
            except client.ApiException as gone:
                if gone.status == 404:
                    yield "DELETED", current
                    return
                raise
            version = str(current["metadata"]["resourceVersion"])
            yield "MODIFIED", current
        finally:
            stream.stop()  # type: ignore[no-untyped-call]
