"""The feed of live progress from the workers, read from Redis (contract: docs/contract.md,
"Progress"); the figures made of it are progress.py's.

Subscribes to the `videojob:progress` channel and, on every (re)connect, reads the latest-value
keys, so an operator that restarts mid-stage picks up where the workers are. Only reports
signed with their namespace's token count (videojob_common.progress_auth); the rest are dropped.
Redis being down only means no fine-grained progress: stage-level progress still comes from the
Jobs, and this loop keeps trying to reconnect with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis

from videojob_common.pipeline import STAGES
from videojob_common.progress_auth import opened
from videojob_common.redact import redact_url

from . import metrics
from .jobs import MAX_INDEX
from .views import ProgressView

CHANNEL = "videojob:progress"
KEY_PATTERN = "videojob:progress:*"
log = logging.getLogger("videojob.progress")

Sink = Callable[[str, str, ProgressView], None]  # (uid, namespace, view)
Tokens = Callable[[dict[str, Any]], Iterable[str]]  # a report -> the tokens it may be signed with


def parse(raw: bytes | str, tokens: Tokens) -> tuple[str, str, ProgressView] | None:
    """(uid, namespace, view) from one message, or None if it is not a valid report signed
    with one of the tokens `tokens` gives for it (videojob_common.progress_auth)."""
    doc = opened(raw, tokens)
    if doc is None:
        metrics.PROGRESS_DROPPED.labels("unverified").inc()
        return None
    try:
        index = doc.get("index")
        stage = str(doc["stage"])
        if stage not in STAGES or (index is not None and not 0 <= int(index) <= MAX_INDEX):
            metrics.PROGRESS_DROPPED.labels("invalid").inc()
            return None  # no such stage or scene: bounded entries per VideoJob
        view = ProgressView(
            stage=stage,
            index=int(index) if index is not None else None,
            percent=max(0.0, min(100.0, float(doc.get("percent", 0)))),
            message=str(doc.get("message", ""))[:200],
            done=int(doc.get("done", 0) or 0),
            total=int(doc.get("total", 0) or 0),
            attempt=int(doc.get("attempt") or 0),
            ts=float(doc.get("ts") or 0.0),
        )
        return doc["uid"], doc["namespace"], view
    except (ValueError, KeyError, TypeError):
        metrics.PROGRESS_DROPPED.labels("invalid").inc()
        return None


async def follow(url: str, tokens: Tokens, sink: Sink, stop: asyncio.Event) -> None:
    backoff = 0.5
    while not stop.is_set():
        client = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=None)
        try:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(CHANNEL)
            async for key in client.scan_iter(match=KEY_PATTERN, count=500):
                value = await client.get(key)
                parsed = parse(value, tokens) if value else None
                if parsed:
                    sink(*parsed)
            log.info("following worker progress on %s", redact_url(url))
            backoff = 0.5
            while not stop.is_set():
                message = await pubsub.get_message(timeout=1.0)
                if message and message.get("type") == "message":
                    parsed = parse(message["data"], tokens)
                    if parsed:
                        sink(*parsed)
        except (aioredis.RedisError, OSError) as e:
            log.warning("progress from Redis unavailable (%s); retrying in %.1fs", e, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, 10.0)
        finally:
            await client.aclose()
