"""The controller's work queue: one reconcile per key at a time, and a finished stage Job's
VideoJob ahead of everything queued before it."""

from __future__ import annotations

import asyncio

from kubernetes import client

from videojob_operator.config import OperatorConfig
from videojob_operator.controller import Controller, Key


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
