"""Kubernetes Events about VideoJobs, posted in the background, in order for each VideoJob.

A reconcile does not wait for its Events: they are best-effort records (client-go's recorder is
asynchronous too), and awaiting three of them made every stage hand-off three round trips longer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from kubernetes.client import ApiException

from videojob_common.pipeline import Obj

from . import metrics
from .actions import Event
from .api import GROUP, VERSION
from .kube import Api
from .logs import ctx

Key = tuple[str, str]
log = logging.getLogger("videojob.events")


class EventRecorder:
    def __init__(self, api: Api) -> None:
        self.api = api
        # The last Event posting of each VideoJob still under way (the next one waits for it).
        self.tails: dict[Key, asyncio.Task[None]] = {}

    def post(self, key: Key, vj: Obj, event: Event, at: dt.datetime) -> None:
        previous = self.tails.get(key)

        async def post() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await self._create(vj, event, at)

        task = asyncio.get_running_loop().create_task(post())
        self.tails[key] = task

        def done(t: asyncio.Task[None]) -> None:
            if self.tails.get(key) is t:
                del self.tails[key]

        task.add_done_callback(done)

    async def drain(self, timeout: float) -> None:
        """The Events already decided, given a moment to be posted."""
        if self.tails:
            await asyncio.wait(list(self.tails.values()), timeout=timeout)

    async def _create(self, vj: Obj, event: Event, at: dt.datetime) -> None:
        meta = vj["metadata"]
        try:
            await self.api.call(self.api.kube.create_event, meta["namespace"],
                                body(vj, event, at), executor=self.api.event_executor)
            metrics.EVENTS.labels(event.type).inc()
        except ApiException as e:
            log.warning("event %s not recorded: %s", event.reason, e.reason,
                        extra=ctx(meta["namespace"], meta["name"]))
        except Exception as e:  # in the background: nobody else would see it
            log.warning("event %s not recorded: %s", event.reason, e,
                        extra=ctx(meta["namespace"], meta["name"]))


def body(vj: Obj, event: Event, at: dt.datetime) -> Obj:
    """The core/v1 Event about `vj`."""
    meta = vj["metadata"]
    now = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob",
                           "name": meta["name"], "namespace": meta["namespace"],
                           "uid": meta["uid"], "resourceVersion": meta.get("resourceVersion")},
        "type": event.type, "reason": event.reason, "message": event.message[:1024],
        "source": {"component": "videojob-operator"},
        "reportingComponent": "videojob.dev/operator",
        "reportingInstance": "videojob-operator",
        "firstTimestamp": now[:19] + "Z", "lastTimestamp": now[:19] + "Z", "count": 1,
        "action": event.reason,
    }
