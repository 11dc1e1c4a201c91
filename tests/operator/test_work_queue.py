"""The work queue (workqueue.py): one reconcile per key at a time, and a finished stage Job's
VideoJob ahead of everything queued before it."""

from __future__ import annotations

import asyncio

from videojob_operator.workqueue import Key, WorkQueue


def test_hand_offs_go_first_and_a_key_queued_twice_runs_once() -> None:
    async def scenario() -> list[Key]:
        ran: list[Key] = []

        async def reconcile(key: Key) -> None:
            ran.append(key)
            if key == ("ns", "b") and ran.count(key) == 1:
                c.add(("ns", "b"), urgent=True)  # arrives while b runs: runs again, first

        c = WorkQueue(reconcile, workers=1)
        for name in ("a", "b", "c", "d"):
            c.add(("ns", name))
        c.add(("ns", "c"), urgent=True)  # c's stage Job finished
        c.add(("ns", "a"))  # already queued: nothing more
        c.start()

        async def drained() -> None:
            while not c.idle():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(drained(), timeout=5)
        await c.stop()
        return ran

    assert asyncio.run(scenario()) == [
        ("ns", "c"), ("ns", "a"), ("ns", "b"), ("ns", "b"), ("ns", "d")]
