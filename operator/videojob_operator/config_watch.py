"""Pools changed at run time: the operator watches its own ConfigMap.

The configuration file is read once at start (`VIDEOJOB_CONFIG`, mounted from the ConfigMap the
chart renders). A mounted ConfigMap only changes on disk a minute or so after an edit, so the
operator also watches the ConfigMap itself (`VIDEOJOB_CONFIGMAP=<namespace>/<name>`, key
`VIDEOJOB_CONFIGMAP_KEY`, default `config.yaml`) and applies a changed `pools:` section at once,
with an admission pass. Other settings need a restart (they shape Jobs already created); an
edit that does not validate is reported and ignored, keeping the pools in force.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from kubernetes import client, watch

from . import config as operator_config

if TYPE_CHECKING:
    from .controller import Controller

log = logging.getLogger("videojob.config")
CONFIGMAP = os.environ.get("VIDEOJOB_CONFIGMAP", "")
KEY = os.environ.get("VIDEOJOB_CONFIGMAP_KEY", "config.yaml")


def apply(controller: Controller, text: str) -> bool:
    """Applies the pools of a new configuration document; False if it is invalid."""
    try:
        new = operator_config.load(text=text)
    except operator_config.ConfigError as e:
        log.warning("configuration change ignored: %s", e)
        return False
    if new.pools == controller.config.pools:
        return True
    controller.config = controller.config.model_copy(update={"pools": new.pools})
    log.info("pools changed: %s", ", ".join(
        f"{name} max={p.max_concurrency} strategy={p.strategy}" for name, p in new.pools.items()))
    controller.admitter.trigger()
    return True


async def follow(controller: Controller, stop: asyncio.Event) -> None:
    namespace, _, name = CONFIGMAP.partition("/")
    loop = asyncio.get_running_loop()
    core = client.CoreV1Api(controller.api)
    done = threading.Event()

    def changed(obj: Any) -> None:
        text = (obj.data or {}).get(KEY)
        if text is not None:
            apply(controller, text)

    def watch_loop() -> None:
        while not done.is_set():
            try:
                w = watch.Watch()  # type: ignore[no-untyped-call]
                for event in w.stream(  # type: ignore[no-untyped-call]
                        core.list_namespaced_config_map, namespace,
                        field_selector=f"metadata.name={name}", timeout_seconds=60):
                    if done.is_set():
                        w.stop()  # type: ignore[no-untyped-call]
                        break
                    if event["type"] in ("ADDED", "MODIFIED"):
                        loop.call_soon_threadsafe(changed, event["object"])
            except Exception as e:
                log.warning("watching ConfigMap %s failed (%s); retrying", CONFIGMAP, e)
                done.wait(2.0)

    thread = threading.Thread(target=watch_loop, name="config-watch", daemon=True)
    thread.start()
    try:
        await stop.wait()
    finally:
        done.set()
