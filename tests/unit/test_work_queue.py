"""The controller's work queue: one reconcile per key at a time, and a finished stage Job's
VideoJob ahead of everything queued before it."""

from __future__ import annotations

import asyncio

from kubernetes import client

from videojob_operator.config import OperatorConfig
from videojob_operator.controller import CHILD_EVENT_DELAY, Controller, Key


def test_hand_offs_go_first_and_a_key_queued_twice_runs_once() -> None:
    async def scenario() -> list[Key]:
        c = Controller(OperatorConfig(), client.ApiClient(), workers=1)
        ran: list[Key] = []

        async def reconcile(key: Key) -> None:
            ran.append(key)
            if key == ("ns", "b") and ran.count(key) == 1:
                c.enqueue(("ns", "b"), urgent=True)  # arrives while b runs: runs again, first

        c.reconcile = reconcile  # type: ignore[method-assign]
        for name in ("a", "b", "c", "d"):
            c.enqueue(("ns", name))
        c.enqueue(("ns", "c"), urgent=True)  # c's stage Job finished
        c.enqueue(("ns", "a"))  # already queued: nothing more
        c.start()

        async def drained() -> None:
            while c.queued or c.active or c.dirty:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(drained(), timeout=5)
        await c.stop()
        return ran

    assert asyncio.run(scenario()) == [
        ("ns", "c"), ("ns", "a"), ("ns", "b"), ("ns", "b"), ("ns", "d")]


def test_child_events_are_planned_together_and_a_finished_job_at_once() -> None:
    async def scenario() -> list[tuple[Key, float]]:
        loop = asyncio.get_running_loop()
        c = Controller(OperatorConfig(), client.ApiClient(), workers=1)
        ran: list[tuple[Key, float]] = []
        began = loop.time()

        async def reconcile(key: Key) -> None:
            ran.append((key, loop.time() - began))

        c.reconcile = reconcile  # type: ignore[method-assign]
        c.start()
        for _ in range(5):  # a pod added, scheduled, started...: one reconcile for them all
            c.enqueue_soon(("ns", "a"))
        c.enqueue_soon(("ns", "b"))
        c.enqueue(("ns", "b"), urgent=True)  # b's stage Job finished: planned now, and once

        async def drained() -> None:
            while c.queued or c.active or c.later or c.later_armed or len(ran) < 2:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(drained(), timeout=5)
        await c.stop()
        return ran

    ran = asyncio.run(scenario())
    assert [key for key, _ in ran] == [("ns", "b"), ("ns", "a")]
    assert ran[0][1] < CHILD_EVENT_DELAY <= ran[1][1] + 0.01
