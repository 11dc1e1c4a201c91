"""The resync safety net: a fresh listing corrects the caches where the watch missed events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kubernetes import client

from videojob_operator.kube import Api
from videojob_operator.store import LIST_PAGE, Change, Store


def job(name: str, rv: int, *, vj: str = "clip", ns: str = "a", uid: str = "u",
        complete: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Complete", "status": "True"}] if complete else []
    return {"metadata": {"name": name, "namespace": ns, "uid": f"{uid}-{name}",
                         "resourceVersion": str(rv), "labels": {"videojob.dev/name": vj}},
            "spec": {}, "status": {"conditions": conditions}}


class Told(list[Change]):
    """The changes the store told its listeners (the controller queues a reconcile for each
    with `reconcile`)."""

    def reconciled(self) -> set[tuple[str, str]]:
        return {c.key for c in self if c.reconcile}


def controller() -> Store:
    c = Store(Api(client.ApiClient()))
    c.told = Told()  # type: ignore[attr-defined]
    c.subscribe(c.told.append)  # type: ignore[attr-defined]
    return c


def refresh(c: Store, kind: str, namespace: str | None, listed: list[dict[str, Any]],
            listing_rv: int) -> int:
    """A whole listing fed in at once, as Store.relist feeds its pages, then the deletions."""
    present: set[tuple[str, str]] = set()
    changes = c.refresh_page(kind, listed, present)
    return changes + c.refresh_gone(kind, namespace, present, listing_rv)


def test_a_completion_the_watch_missed_is_fed_in_and_the_videojob_queued() -> None:
    c = controller()
    c.observe_child("job", "ADDED", job("clip-plan", 10))
    c.told.clear()  # type: ignore[attr-defined]
    changes = refresh(c, "job", None, [job("clip-plan", 12, complete=True)], 20)
    assert changes == 1
    assert c.jobs[("a", "clip")]["clip-plan"]["status"]["conditions"][0]["type"] == "Complete"
    assert ("a", "clip") in c.told.reconciled()  # type: ignore[attr-defined]


def test_an_unchanged_listing_changes_nothing() -> None:
    c = controller()
    c.observe_child("job", "ADDED", job("clip-plan", 10))
    assert refresh(c, "job", None, [job("clip-plan", 10)], 20) == 0


def test_a_deletion_the_watch_missed_is_fed_in_but_not_a_job_newer_than_the_listing() -> None:
    c = controller()
    c.observe_child("job", "ADDED", job("clip-plan", 10))
    c.observe_child("job", "ADDED", job("clip-keyframes", 25))  # created after the listing
    c.observe_child("job", "ADDED", job("other-plan", 5, ns="b", vj="other"))
    assert refresh(c, "job", "a", [], 20) == 1
    assert list(c.jobs[("a", "clip")]) == ["clip-keyframes"]
    assert "other-plan" in c.jobs[("b", "other")]  # another namespace's listing decides it


def test_a_recreated_object_with_the_same_name_replaces_the_old_one() -> None:
    c = controller()
    c.observe_child("job", "ADDED", job("clip-plan", 30, uid="old"))
    assert refresh(c, "job", None, [job("clip-plan", 12, uid="new")], 40) == 1
    assert c.jobs[("a", "clip")]["clip-plan"]["metadata"]["uid"] == "new-clip-plan"


class Answer:
    """What the client returns with `_preload_content=False`."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.data = json.dumps(doc).encode()

    def release_conn(self) -> None:
        pass


def test_listings_are_read_a_page_at_a_time_at_the_first_pages_version() -> None:
    """Each page is fed into the cache before the next is read (a listing of thousands of Jobs
    is never held beside the cache), trimmed; deletions are judged on the whole listing."""
    c = controller()
    calls: list[dict[str, Any]] = []
    cached_when_asked: list[int] = []
    names = [f"clip{i}-plan" for i in range(5)]
    c.observe_child("job", "ADDED", job("clip4-plan", 12))  # on the last page: stays
    c.observe_child("job", "ADDED", job("gone-plan", 11, vj="gone"))  # on none: deleted

    def list_jobs(**kwargs: Any) -> Answer:
        calls.append(kwargs)
        cached_when_asked.append(sum(len(jobs) for jobs in c.jobs.values()))
        start = int(kwargs.get("_continue") or 0)
        items = [{**job(n, 10 + i), "spec": {"template": {"spec": {"containers": [
            {"name": "worker", "env": [{"name": "BIG", "value": "x" * 1000}]}]}}}}
            for i, n in enumerate(names)][start:start + 2]
        more = {"continue": str(start + 2)} if start + 2 < len(names) else {}
        return Answer({"metadata": {"resourceVersion": str(50 + start), **more},
                       "items": items})

    c.api.batch.list_job_for_all_namespaces = list_jobs  # type: ignore[method-assign]
    c.api.core.list_pod_for_all_namespaces = (  # type: ignore[method-assign]
        lambda **kwargs: Answer({"metadata": {"resourceVersion": "60"}, "items": []}))
    assert asyncio.run(c.prime([])) == [("job", None, 50), ("pod", None, 60)]
    assert [call.get("_continue") for call in calls] == [None, "2", "4"]
    assert all(call["limit"] == LIST_PAGE and call["label_selector"] for call in calls)
    assert cached_when_asked == [2, 4, 6]  # each page in before the next is asked for
    assert list(c.jobs) == [("a", "clip")] and sorted(c.jobs[("a", "clip")]) == names
    kept = c.jobs[("a", "clip")]["clip0-plan"]
    assert "env" not in kept["spec"]["template"]["spec"]["containers"][0]  # trimmed on arrival
