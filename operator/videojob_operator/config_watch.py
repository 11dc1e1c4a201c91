"""Pools changed at run time: the operator watches its own ConfigMap.

The configuration file is read once at start (`VIDEOJOB_CONFIG`, mounted from the ConfigMap the
chart renders). A mounted ConfigMap only changes on disk a minute or so after an edit, so the
operator also watches the ConfigMap itself (`configmap`: `VIDEOJOB_CONFIGMAP=<namespace>/<name>`,
key `VIDEOJOB_CONFIGMAP_KEY`, default `config.yaml`) and puts a changed `pools:` section in force
at once (config.LiveConfig; admission makes a pass). Other settings need a restart (they shape
Jobs already created); an edit that does not validate is reported and ignored, keeping the pools
in force.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from kubernetes import client, watch

from . import config as operator_config

log = logging.getLogger("videojob.config")


def apply(live: operator_config.LiveConfig, text: str) -> bool:
    """Puts the pools of a new configuration document in force; False if it is invalid."""
    try:
        new = operator_config.load(text=text)
    except operator_config.ConfigError as e:
        log.warning("configuration change ignored: %s", e)
        return False
    if live.replace_pools(new.pools):
        log.info("pools changed: %s", ", ".join(
            f"{name} max={p.max_concurrency} strategy={p.strategy}"
            for name, p in new.pools.items()))
    return True


async def follow(live: operator_config.LiveConfig, api: client.ApiClient,
                 stop: asyncio.Event) -> None:
    """Follows the ConfigMap `live.current.configmap` until `stop`."""
    configmap, key = live.current.configmap, live.current.configmap_key
    namespace, _, name = configmap.partition("/")
    loop = asyncio.get_running_loop()
    core = client.CoreV1Api(api)
    done = threading.Event()

    def changed(obj: Any) -> None:
        text = (obj.data or {}).get(key)
        if text is not None:
            apply(live, text)

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
                log.warning("watching ConfigMap %s failed (%s); retrying", configmap, e)
                done.wait(2.0)

    thread = threading.Thread(target=watch_loop, name="config-watch", daemon=True)
    thread.start()
    try:
        await stop.wait()
    finally:
        done.set()
