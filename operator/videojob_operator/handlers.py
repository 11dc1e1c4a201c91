"""kopf handlers: thin adapters that feed the store and start the operator's parts.

kopf watches the VideoJobs, the nodes and the namespaces and calls these for every event
(including the initial listing after a start, which is how a restarted operator resumes); the
stage Jobs and pods have watches of the operator's own (child_watches.py). The configuration
comes in kopf's memo, built once by __main__. All decisions are the planner's; these handlers
only route events. No kopf `on.delete` handler, daemon or timer is registered, so kopf
adds no finalizer of its own (see nolar/kopf#1305 and #882 for what those get wrong on
deletion): the VideoJob's `videojob.dev/cancel` finalizer is the controller's, added and removed
by the planner's decisions.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import kopf

from videojob_common.redact import redact_url

from . import config_watch, metrics, progress_feed
from .api import GROUP, PLURAL, VERSION
from .config import LiveConfig
from .controller import Controller
from .kube import api_client
from .redis_queue import RedisQueue

log = logging.getLogger("videojob.handlers")


class NoDiffBase(kopf.DiffBaseStorage):
    """No "last handled state": only `on.event` handlers are registered, and kopf needs a diff
    base for change handlers alone. Its default still deep-copies every object of every event
    (status included) to build one, the operator's largest CPU cost under load."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


class NoProgress(kopf.ProgressStorage):
    """No handler progress: `on.event` handlers are not retried by kopf, so there is none to
    keep (and nothing is written into the objects' annotations or status)."""

    def fetch(self, *, key: Any, body: kopf.Body) -> Any:
        return None

    def store(self, *, key: Any, record: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        pass

    def purge(self, *, key: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        pass

    def touch(self, *, body: kopf.Body, patch: kopf.Patch, value: str | None) -> None:
        pass

    def clear(self, *, essence: kopf.BodyEssence) -> kopf.BodyEssence:
        return essence


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Long-lived watches, re-established before the server's idle timeout; a stuck watch is
    # noticed by the client timeout instead of hanging forever (kopf#585, kopf#698).
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    # Events are the controller's to write (with reasons users can filter on).
    settings.posting.level = logging.WARNING
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.progress_storage = NoProgress()
    live: LiveConfig = memo["config"]
    cfg = live.current
    api = api_client()
    if cfg.progress_key is None:
        log.warning("no progress key ($VIDEOJOB_PROGRESS_KEY): using one made up for this "
                    "process; progress signed before a restart is dropped after it")
    progress_key = (cfg.progress_key.get_secret_value().encode() if cfg.progress_key
                    else secrets.token_bytes(32))
    controller = Controller(live, api, progress_key=progress_key)
    metrics.watch_phases(lambda: list(controller.store.videojobs.values()))
    await controller.start_watches(cfg.namespaces)  # Jobs, pods: child_watches.py
    controller.start()
    memo["controller"] = controller
    stop = asyncio.Event()
    memo["stop"] = stop
    tasks = [asyncio.create_task(controller.admitter.run(stop), name="admission"),
             asyncio.create_task(controller.store.resync(cfg.namespaces, stop,
                                                         cfg.resync_seconds), name="resync")]
    if cfg.redis_url:
        await controller.store.list_namespaces()  # whose token signs which report
        tasks.append(asyncio.create_task(
            progress_feed.follow(cfg.redis_url, controller.progress_tokens,
                                 controller.store.observe_progress, stop)))
        mirror = RedisQueue(cfg.redis_url)
        controller.admitter.publish.append(mirror.publish)
        tasks.append(asyncio.create_task(mirror.run(stop), name="redis-queue"))
    if cfg.configmap:
        tasks.append(asyncio.create_task(config_watch.follow(live, api, stop)))
    if controller.archiver is not None:
        tasks.append(asyncio.create_task(controller.archiver.run(stop), name="archive"))
    if controller.cache_sweeper is not None:
        tasks.append(asyncio.create_task(controller.cache_sweeper.run(stop), name="cache-sweep"))
    memo["tasks"] = tasks
    log.info("operator started: storage root %s, worker image %s, redis %s, archive %s",
             cfg.storage_root, cfg.worker_image,
             redact_url(cfg.redis_url) if cfg.redis_url else "off",
             "on" if cfg.archive.enabled else "off")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo["stop"].set()
    for task in memo.get("tasks", []):
        task.cancel()
    await memo["controller"].stop()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def videojob_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    memo["controller"].store.observe_videojob(event["type"], dict(event["object"]))


@kopf.on.event("", "v1", "nodes")
async def node_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    # GPU capacity of `maxConcurrency: auto` pools follows the nodes.
    memo["controller"].admitter.observe_node(event["type"], dict(event["object"]))


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    # A namespace's uid names its progress token (videojob_common.progress_auth).
    memo["controller"].store.observe_namespace(event["type"], dict(event["object"]))
