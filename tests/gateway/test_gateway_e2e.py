"""videojob-gateway against the real API server, as a client uses it.

The gateway runs as its own process with an identity of its own that may list and watch
VideoJobs, review tokens and access, and create nothing (conftest.py). So every write that
succeeds below was made as the caller, and every one refused was refused for the caller. The
operator does not run: the tests write a VideoJob's status themselves (the status subresource,
as the operator does) where they need progress.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from videojob_testkit.gateway_process import GatewayProcess, GatewayWorld
from videojob_testkit.kube import Cluster
from videojob_testkit.processes import wait_until

pytestmark = pytest.mark.e2e

GROUP, VERSION, PLURAL = "videojob.dev", "v1alpha1", "videojobs"
SPEC = {"prompt": "a lighthouse at dawn", "durationSeconds": 2, "fps": 4, "resolution": "64x64"}


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:6]}"


def problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"] == "application/problem+json", resp.headers
    doc: dict[str, Any] = resp.json()
    assert doc["status"] == status and doc["type"].startswith("https://videojob.dev/problems/")
    assert doc["title"] and doc["detail"], doc
    return doc


def names_in(world: GatewayWorld, namespace: str) -> set[str]:
    listing = world.admin.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    return {o["metadata"]["name"] for o in listing["items"]}


def admin_create(world: GatewayWorld, namespace: str, name: str) -> None:
    world.admin.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob", "metadata": {"name": name},
        "spec": SPEC})


def set_status(world: GatewayWorld, namespace: str, name: str, **status: Any) -> None:
    world.admin.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name,
                                                      {"status": status})


def api_requests(gateway: GatewayProcess) -> dict[tuple[str, str], float]:
    """The gateway's requests to the API server so far, by (verb, resource), watches aside."""
    text = httpx.get(f"{gateway.url}/metrics", timeout=5).text
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "videojob_gateway_apiserver_requests_total" and \
                    s.labels["verb"] != "watch":
                key = (s.labels["verb"], s.labels["resource"])
                out[key] = out.get(key, 0) + s.value
    return out


@pytest.fixture
def writer(world: GatewayWorld) -> Iterator[httpx.Client]:
    with world.gateway.client(token=world.tokens["writer"]) as c:
        yield c


@pytest.fixture
def reader(world: GatewayWorld) -> Iterator[httpx.Client]:
    with world.gateway.client(token=world.tokens["reader"]) as c:
        yield c


def test_a_videojob_created_over_http_is_in_the_api_server_and_read_from_the_cache(
        world: GatewayWorld, writer: httpx.Client) -> None:
    name = unique("hello")
    made = writer.post(f"/api/v1/namespaces/{world.a}/videojobs",
                       json={"name": name, "spec": SPEC, "labels": {"app": "web"}})
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["namespace"], body["name"]) == (world.a, name)
    assert made.headers["location"] == f"/api/v1/namespaces/{world.a}/videojobs/{name}"
    assert body["links"]["events"] == f"/api/v1/namespaces/{world.a}/videojobs/{name}/events"
    stored = world.admin.get_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL, name)
    assert stored["metadata"]["uid"] == body["uid"]
    assert stored["spec"]["prompt"] == SPEC["prompt"]
    assert stored["metadata"]["labels"] == {"app": "web"}

    read = writer.get(f"/api/v1/namespaces/{world.a}/videojobs/{name}")  # at once: no 404
    assert read.status_code == 200, read.text
    assert (read.json()["uid"], read.json()["phase"]) == (body["uid"], "Pending")
    listed = writer.get(f"/api/v1/namespaces/{world.a}/videojobs")
    assert listed.status_code == 200
    wait_until(lambda: name in {v["name"] for v in writer.get(
        f"/api/v1/namespaces/{world.a}/videojobs").json()["items"]}, 10, "the list to show it")

    # Served from the cache: once the reviews are cached, reads cost the API server nothing.
    before = api_requests(world.gateway)
    times = []
    for _ in range(20):
        began = time.perf_counter()
        one = writer.get(f"/api/v1/namespaces/{world.a}/videojobs/{name}")
        many = writer.get(f"/api/v1/namespaces/{world.a}/videojobs", params={"limit": 10})
        times.append((time.perf_counter() - began) / 2)
        assert one.status_code == many.status_code == 200
    after = api_requests(world.gateway)
    assert after == before, {k: after[k] - before.get(k, 0) for k in after}
    print(f"\ncached reads: median {statistics.median(times) * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms (HTTP round trip included)")
    assert statistics.median(times) < 0.05

    metrics = httpx.get(f"{world.gateway.url}/metrics").text
    assert ('videojob_gateway_requests_total{code="200",method="GET",'
            'route="/api/v1/namespaces/{namespace}/videojobs/{name}"}') in metrics
    assert 'videojob_gateway_auth_cache_total{cache="access",result="hit"}' in metrics
    assert 'videojob_gateway_cache_objects{kind="videojobs"}' in metrics
    assert httpx.get(f"{world.gateway.url}/healthz").json() == {"status": "ok"}


def test_a_caller_without_the_right_is_refused_and_nothing_is_written(
        world: GatewayWorld, writer: httpx.Client, reader: httpx.Client) -> None:
    name = unique("nope")
    # May read namespace a, not write it.
    problem(reader.post(f"/api/v1/namespaces/{world.a}/videojobs",
                        json={"name": name, "spec": SPEC}), 403)
    # May write namespace a, nothing in b.
    problem(writer.post(f"/api/v1/namespaces/{world.b}/videojobs",
                        json={"name": name, "spec": SPEC}), 403)
    assert name not in names_in(world, world.a)
    assert names_in(world, world.b) == set()

    kept = unique("kept")
    admin_create(world, world.a, kept)
    problem(reader.delete(f"/api/v1/namespaces/{world.a}/videojobs/{kept}"), 403)
    problem(reader.post(f"/api/v1/namespaces/{world.a}/videojobs/{kept}/suspend"), 403)
    stored = world.admin.get_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL, kept)
    assert stored["spec"].get("suspend") is not True and "deletionTimestamp" not in stored[
        "metadata"]

    # Another namespace's VideoJob: 403 whether it exists or not, so a caller learns nothing.
    other = unique("theirs")
    admin_create(world, world.b, other)
    exists = problem(writer.get(f"/api/v1/namespaces/{world.b}/videojobs/{other}"), 403)
    missing = problem(writer.get(f"/api/v1/namespaces/{world.b}/videojobs/no-such"), 403)
    assert exists["type"] == missing["type"]
    problem(writer.get(f"/api/v1/namespaces/{world.b}/videojobs/{other}/events"), 403)
    problem(writer.get(f"/api/v1/namespaces/{world.b}/videojobs"), 403)
    problem(writer.get("/api/v1/namespaces/no-such-namespace/videojobs"), 403)


def test_missing_or_invalid_credentials_are_401(world: GatewayWorld) -> None:
    url = f"{world.gateway.url}/api/v1/namespaces/{world.a}/videojobs"
    tried = []
    for headers in [{}, {"Authorization": "Bearer not-a-token"},
                    {"Authorization": "Basic dXNlcjpwYXNz"},
                    {"X-API-Key": "vjk_not-a-key"},
                    {"Authorization": f"Bearer {world.tokens['writer']}x"}]:
        resp = httpx.get(url, headers=headers)
        problem(resp, 401)
        assert resp.headers["www-authenticate"].startswith("Bearer"), headers
        tried.append(unique("unauthenticated"))
        problem(httpx.post(url, headers=headers, json={"name": tried[-1], "spec": SPEC}), 401)
    assert names_in(world, world.a).isdisjoint(tried)


def test_an_api_key_acts_as_its_service_account_in_its_namespace_only(
        world: GatewayWorld, cluster: Cluster) -> None:
    name = unique("keyed")
    with world.gateway.client(api_key=world.api_key) as keyed:
        made = keyed.post(f"/api/v1/namespaces/{world.a}/videojobs",
                          json={"name": name, "spec": SPEC})
        assert made.status_code == 201, made.text  # impersonating a:uploader
        assert name in names_in(world, world.a)
        assert keyed.get(f"/api/v1/namespaces/{world.a}/videojobs/{name}").status_code == 200
        # Its namespace only, whatever the ServiceAccount may do elsewhere.
        problem(keyed.post(f"/api/v1/namespaces/{world.b}/videojobs",
                           json={"name": name, "spec": SPEC}), 403)
        problem(keyed.get(f"/api/v1/namespaces/{world.b}/videojobs"), 403)
        assert name not in names_in(world, world.b)
        # The ServiceAccount's RBAC applies: uploader may not delete.
        problem(keyed.delete(f"/api/v1/namespaces/{world.a}/videojobs/{name}"), 403)
        assert name in names_in(world, world.a)
    with world.gateway.client(token=world.api_key) as bearer_key:  # Authorization: Bearer vjk_
        assert bearer_key.get(f"/api/v1/namespaces/{world.a}/videojobs").status_code == 200

    # Revoked: its Secret deleted, the key stops working.
    cluster.core.delete_namespaced_secret("uploader-key", world.system)
    wait_until(lambda: httpx.get(f"{world.gateway.url}/api/v1/namespaces/{world.a}/videojobs",
                                 headers={"X-API-Key": world.api_key}).status_code == 401,
               10, "the deleted key to be refused")


def test_each_kind_of_bad_input_has_its_own_status_and_names_what_is_wrong(
        world: GatewayWorld, writer: httpx.Client) -> None:
    url = f"/api/v1/namespaces/{world.a}/videojobs"
    name = unique("bad")
    invalid = problem(writer.post(url, json={"name": name, "spec": {**SPEC, "fps": 99}}), 422)
    assert [e["field"] for e in invalid["errors"]] == ["spec.fps"]
    assert "less than or equal to 60" in invalid["detail"]  # the API server's own words
    odd = problem(writer.post(url, json={"name": name, "spec": {**SPEC,
                                                                "resolution": "65x64"}}), 422)
    assert "spec.resolution width must be an even number" in odd["detail"]
    unknown_spec = problem(writer.post(url, json={"name": name, "spec": {**SPEC, "fsp": 4}}), 422)
    assert [e["field"] for e in unknown_spec["errors"]] == ["spec.fsp"]
    unknown_top = problem(writer.post(url, json={"name": name, "spec": SPEC, "lables": {}}), 422)
    assert [(e["field"], e["detail"]) for e in unknown_top["errors"]] == [
        ("lables", "unknown field")]
    broken = problem(writer.post(url, content=b'{"name": "x", "spec": {',
                                 headers={"Content-Type": "application/json"}), 400)
    assert broken["type"].endswith("/malformed-json") and "line 1" in broken["detail"]
    problem(writer.post(url, content=b"name=x", headers={
        "Content-Type": "application/x-www-form-urlencoded"}), 415)
    big = {"name": name, "spec": {**SPEC, "prompt": "x" * (300 * 1024)}}
    problem(writer.post(url, json=big), 413)
    assert name not in names_in(world, world.a)

    first = writer.post(url, json={"name": f"{name}-twice", "spec": SPEC})
    assert first.status_code == 201
    assert problem(writer.post(url, json={"name": f"{name}-twice", "spec": SPEC}), 409)[
        "type"].endswith("/already-exists")

    # Unknown names and namespaces: 404, to a caller who may read them.
    missing = problem(writer.get(f"{url}/no-such-videojob"), 404)
    assert "no-such-videojob" in missing["detail"]
    problem(writer.get(f"{url}/no-such-videojob/events"), 404)
    problem(writer.delete(f"{url}/no-such-videojob"), 404)
    problem(writer.post(f"{url}/no-such-videojob/suspend"), 404)
    with world.gateway.client(token=world.tokens["auditor"]) as auditor:
        gone = problem(auditor.get("/api/v1/namespaces/no-such-namespace/videojobs"), 404)
        assert "namespace no-such-namespace" in gone["detail"]
    problem(writer.get("/api/v1/nothing-here"), 404)

    # Query parameters.
    problem(writer.get(url, params={"limit": 501}), 400)
    problem(writer.get(url, params={"limit": 0}), 400)
    problem(writer.get(url, params={"phase": "Sleeping"}), 400)
    bad_token = problem(writer.get(url, params={"continue": "eyJ2IjoxfQ.AAAA"}), 400)
    assert bad_token["errors"][0]["field"] == "continue"


def test_pages_hold_still_while_videojobs_are_created(world: GatewayWorld) -> None:
    ns = world.b  # the reader may not list b; the auditor may
    for i in range(5):
        admin_create(world, ns, f"page-{i}")
    with world.gateway.client(token=world.tokens["auditor"]) as auditor:
        url = f"/api/v1/namespaces/{ns}/videojobs"
        wait_until(lambda: len([v for v in auditor.get(url, params={"limit": 500}).json()[
            "items"] if v["name"].startswith("page-")]) == 5, 10, "the cache to have page-*")
        seen: list[str] = []
        token = first_token = None
        while True:
            params: dict[str, Any] = {"limit": 2}
            if token:
                params["continue"] = token
            resp = auditor.get(url, params=params)
            assert resp.status_code == 200, resp.text
            seen += [v["name"] for v in resp.json()["items"]]
            token = resp.json()["continue"]
            if len(seen) == 2:
                first_token = token
                # Newer than the cursor: not in this walk, though the cache has it.
                admin_create(world, ns, "page-late")
                wait_until(lambda: auditor.get(f"{url}/page-late").status_code == 200, 10,
                           "the cache to have page-late")
            if token is None:
                break
        pages = [n for n in seen if n.startswith("page-")]
        assert len(pages) == len(set(pages)) == 5 and "page-late" not in seen
        # A token belongs to its listing.
        other = auditor.get(f"/api/v1/namespaces/{world.a}/videojobs",
                            params={"continue": first_token})
        assert "another listing" in problem(other, 400)["detail"]


def read_events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Events from an event stream's lines (comments skipped)."""
    event: dict[str, str] = {}
    for line in lines:
        if line == "":
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            event[field] = value.removeprefix(" ")


def test_an_event_stream_follows_status_to_the_end_and_resumes(
        world: GatewayWorld, writer: httpx.Client) -> None:
    name = unique("followed")
    assert writer.post(f"/api/v1/namespaces/{world.a}/videojobs",
                       json={"name": name, "spec": SPEC}).status_code == 201
    url = f"/api/v1/namespaces/{world.a}/videojobs/{name}/events"
    received: list[dict[str, str]] = []
    with writer.stream("GET", url) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = read_events(resp.iter_lines())
        assert next(events) == {"retry": "3000"}
        first = next(events)
        assert first["event"] == "status" and json.loads(first["data"])["phase"] == "Pending"
        received.append(first)
        set_status(world, world.a, name, phase="Running", currentStage="segments", progress=40,
                   message="frame 12/48", stages=[
                       {"name": "plan", "phase": "Succeeded", "attempts": 1, "progress": 100},
                       {"name": "segments", "phase": "Running", "attempts": 2, "progress": 25,
                        "completed": 1, "total": 4}])
        running = next(events)
        data = json.loads(running["data"])
        assert (data["phase"], data["stage"], data["progress"], data["message"]) == (
            "Running", "segments", 40, "frame 12/48")
        assert data["stages"][1]["completed"] == 1
        received.append(running)
        set_status(world, world.a, name, phase="Succeeded", progress=100,
                   outputURI="file:///out/x.mp4",
                   output={"uri": "file:///out/x.mp4", "bytes": 1234})
        done = next(events)
        assert json.loads(done["data"])["result"] == {
            "outputURI": "file:///out/x.mp4", "bytes": 1234, "md5": None, "crc32c": None}
        received.append(done)
        assert list(events) == []  # the terminal event ends the stream
    assert [e["id"].split(".")[0] for e in received] == sorted(
        (e["id"].split(".")[0] for e in received), key=int)

    # Resuming with the last event: nothing new, and an EventSource stops reconnecting.
    again = writer.get(url, headers={"Last-Event-ID": done["id"]})
    assert again.status_code == 204
    # Resuming from an older one: the current state, then the end.
    with writer.stream("GET", url, headers={"Last-Event-ID": running["id"]}) as resp:
        resumed = [e for e in read_events(resp.iter_lines()) if "event" in e]
    assert [json.loads(e["data"])["phase"] for e in resumed] == ["Succeeded"]


def test_keep_alives_and_a_deleted_videojob_end_the_stream(
        world: GatewayWorld, writer: httpx.Client) -> None:
    name = unique("deleted")
    assert writer.post(f"/api/v1/namespaces/{world.a}/videojobs",
                       json={"name": name, "spec": SPEC}).status_code == 201
    with writer.stream("GET", f"/api/v1/namespaces/{world.a}/videojobs/{name}/events") as resp:
        lines = resp.iter_lines()
        seen: list[str] = []
        for line in lines:  # the gateway runs with --keepalive-seconds 1
            seen.append(line)
            if line.startswith(": keep-alive"):
                break
        cancelled = writer.delete(f"/api/v1/namespaces/{world.a}/videojobs/{name}")
        assert cancelled.status_code == 202
        rest = list(read_events(lines))
    assert any(line.startswith("event: status") for line in seen)
    assert [e for e in rest if "event" in e][-1] == {"event": "deleted",
                                                      "data": '{"deleted":true}'}


def test_suspend_resume_and_cancel_change_the_videojob(world: GatewayWorld,
                                                        writer: httpx.Client) -> None:
    name = unique("paused")
    base = f"/api/v1/namespaces/{world.a}/videojobs/{name}"
    assert writer.post(f"/api/v1/namespaces/{world.a}/videojobs",
                       json={"name": name, "spec": SPEC}).status_code == 201

    def suspended() -> bool:
        obj = world.admin.get_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL, name)
        return bool(obj["spec"].get("suspend"))

    paused = writer.post(f"{base}/suspend")
    assert paused.status_code == 200 and paused.json()["suspended"] is True
    assert suspended()
    resumed = writer.post(f"{base}/resume")
    assert resumed.status_code == 200 and resumed.json()["suspended"] is False
    assert not suspended()
    gone = writer.delete(base)
    assert gone.status_code == 202 and gone.json()["status"] == "Cancelling"
    # Deleted: gone at once, or held by an operator's finalizer (when one runs on the cluster)
    # while its stages stop.
    listing = world.admin.list_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL)
    assert all(o["metadata"].get("deletionTimestamp") for o in listing["items"]
               if o["metadata"]["name"] == name)
    wait_until(lambda: writer.get(base).status_code == 404, 60, "the cache to drop it")


def test_queues_count_only_the_namespaces_a_caller_may_list(
        world: GatewayWorld, reader: httpx.Client) -> None:
    queued, running = unique("queued"), unique("running")
    admin_create(world, world.a, queued)
    admin_create(world, world.b, running)
    set_status(world, world.a, queued, phase="Queued", currentStage="plan", queuePosition=1)
    set_status(world, world.b, running, phase="Running", currentStage="plan")

    def counts() -> dict[str, Any]:
        resp = reader.get("/api/v1/queues")
        assert resp.status_code == 200, resp.text
        return {p["name"]: p for p in resp.json()["pools"]}

    def holding_a(pools: dict[str, Any]) -> str | None:
        # The plan stage's pool: "unpooled", or whichever VideoJobPool a run of the operator
        # on this cluster left behind lists it in.
        return next((name for name, p in pools.items()
                     if p["namespaces"].get(world.a, {}).get("queued")), None)

    pools = wait_until(lambda: (c := counts()) and holding_a(c) and c, 10, "the queued VideoJob")
    assert all(world.b not in p["namespaces"] for p in pools.values())  # not the reader's to see
    if "unpooled" in pools:
        assert pools["unpooled"]["maxConcurrency"] is None


def test_writes_are_the_callers_even_when_the_gateway_holds_a_client_certificate(
        world: GatewayWorld, cluster: Cluster, tmp_path: Any) -> None:
    """With the admin's kubeconfig (a client certificate of system:masters) as its identity,
    the gateway still writes with the caller's token alone: the API server would take the
    certificate first and let anything through otherwise."""
    admin_gateway = GatewayProcess(kubeconfig=cluster.kubeconfig, log=tmp_path / "admin.log")
    admin_gateway.start()
    try:
        name = unique("masters")
        with admin_gateway.client(token=world.tokens["reader"]) as reader:
            problem(reader.post(f"/api/v1/namespaces/{world.a}/videojobs",
                                json={"name": name, "spec": SPEC}), 403)
            problem(reader.get(f"/api/v1/namespaces/{world.b}/videojobs"), 403)
        with admin_gateway.client(token=world.tokens["writer"]) as writer:
            problem(writer.post(f"/api/v1/namespaces/{world.b}/videojobs",
                                json={"name": name, "spec": SPEC}), 403)
            assert writer.post(f"/api/v1/namespaces/{world.a}/videojobs",
                               json={"name": name, "spec": SPEC}).status_code == 201
        assert name not in names_in(world, world.b)
    finally:
        admin_gateway.stop()
    assert "Traceback" not in (tmp_path / "admin.log").read_text()


def test_a_caller_over_its_rate_gets_429_and_the_others_do_not(
        world: GatewayWorld, tmp_path: Any) -> None:
    """Per credential: the writer's burst spent, it is refused with Retry-After while the reader
    goes on; a made-up token is refused by its bucket too, without a TokenReview each time."""
    limited = GatewayProcess(kubeconfig=world.gateway_kubeconfig, log=tmp_path / "limited.log",
                             args=["--rate-limit", "0.5", "--rate-burst", "3"])
    limited.start()
    try:
        path = f"/api/v1/namespaces/{world.a}/videojobs"
        with limited.client(token=world.tokens["writer"]) as writer, \
                limited.client(token=world.tokens["reader"]) as reader, \
                limited.client(token="not-a-token") as stranger:
            assert [writer.get(path).status_code for _ in range(3)] == [200, 200, 200]
            refused = writer.get(path)
            doc = problem(refused, 429)
            assert doc["type"].endswith("/too-many-requests")
            assert int(refused.headers["Retry-After"]) >= 1
            assert reader.get(path).status_code == 200
            answers = [stranger.get(path).status_code for _ in range(10)]
            assert answers == [401] * 3 + [429] * 7
        scraped = httpx.get(f"{limited.url}/metrics").text
        reviews = sum(float(line.rsplit(" ", 1)[1]) for line in scraped.splitlines()
                      if line.startswith("videojob_gateway_apiserver_requests_total{")
                      and 'resource="tokenreviews"' in line)
        assert reviews <= 5  # writer, reader, and the stranger's three
        assert "videojob_gateway_rate_limited_total 8.0" in scraped
    finally:
        limited.stop()


def test_the_openapi_document_describes_the_api(world: GatewayWorld) -> None:
    doc = httpx.get(f"{world.gateway.url}/api/v1/openapi.json").json()
    assert set(doc["paths"]) == {
        "/api/v1/namespaces/{namespace}/videojobs",
        "/api/v1/namespaces/{namespace}/videojobs/{name}",
        "/api/v1/namespaces/{namespace}/videojobs/{name}:rerun",
        "/api/v1/namespaces/{namespace}/videojobs/{name}/events",
        "/api/v1/namespaces/{namespace}/videojobs/{name}/suspend",
        "/api/v1/namespaces/{namespace}/videojobs/{name}/resume",
        "/api/v1/namespaces/{namespace}/videojobs/{name}/download",
        "/api/v1/namespaces/{namespace}/videojobs/{name}/download-link",
        "/api/v1/namespaces/{namespace}/videojobs/{name}/linked-download",
        "/api/v1/namespaces/{namespace}/videojobs/{name}/kube-events",
        "/api/v1/namespaces/{namespace}/uploads",
        "/api/v1/namespaces/{namespace}/triggers/{name}",
        "/api/v1/namespaces",
        "/api/v1/namespaces/{namespace}/history",
        "/api/v1/namespaces/{namespace}/history/{nameOrUid}",
        "/api/v1/queues"}
    # A download link is the credential of its own route: no header asked there.
    linked = "/api/v1/namespaces/{namespace}/videojobs/{name}/linked-download"
    assert "security" not in doc["paths"][linked]["get"]
    assert doc["paths"][linked.replace("linked-download", "download-link")]["post"]["security"]
    create = doc["paths"]["/api/v1/namespaces/{namespace}/videojobs"]["post"]
    schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert schema["additionalProperties"] is False and "spec" in schema["required"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(doc["components"]["securitySchemes"])


def test_a_rerun_creates_a_derived_videojob_as_the_caller(
        world: GatewayWorld, writer: httpx.Client, reader: httpx.Client) -> None:
    origin = unique("origin")
    world.admin.create_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob",
        "metadata": {"name": origin, "labels": {"app": "web"}},
        "spec": {**SPEC, "scenes": 4, "sceneOverrides": [{"index": 0, "description": "a gull"},
                                                         {"index": 2, "seed": 5}]}})
    stored = world.admin.get_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL, origin)
    url = f"/api/v1/namespaces/{world.a}/videojobs/{origin}:rerun"

    made = writer.post(url, json={"scene": 2, "description": "a crab"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["namespace"] == world.a and body["name"].startswith(f"{origin}-rerun-")
    assert made.headers["location"] == f"/api/v1/namespaces/{world.a}/videojobs/{body['name']}"
    derived = world.admin.get_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL,
                                                       body["name"])
    assert derived["metadata"]["uid"] == body["uid"]
    assert derived["metadata"]["annotations"]["videojob.dev/rerun-of"] == \
        f"{origin}/{stored['metadata']['uid']}"
    assert derived["metadata"]["labels"] == {"app": "web"}
    assert derived["spec"]["prompt"] == SPEC["prompt"]
    assert derived["spec"]["sceneOverrides"] == [{"index": 0, "description": "a gull"},
                                                 {"index": 2, "description": "a crab"}]
    # A name of the caller's choosing; a new random seed when neither is given.
    named = writer.post(url, json={"scene": 1, "name": f"{origin}-b"})
    assert named.status_code == 201, named.text
    seeded = world.admin.get_namespaced_custom_object(GROUP, VERSION, world.a, PLURAL,
                                                      f"{origin}-b")
    assert isinstance(seeded["spec"]["sceneOverrides"][1]["seed"], int)

    problem(writer.post(f"/api/v1/namespaces/{world.a}/videojobs/no-such:rerun",
                        json={"scene": 0}), 404)
    out_of_range = problem(writer.post(url, json={"scene": 4}), 422)
    assert [e["field"] for e in out_of_range["errors"]] == ["scene"]
    assert "has 4 scenes" in out_of_range["detail"]
    problem(writer.post(url, json={"scene": 0, "bogus": 1}), 422)
    # May read the origin, not create: refused by the API server, nothing written.
    before = names_in(world, world.a)
    problem(reader.post(url, json={"scene": 1}), 403)
    problem(writer.post(f"/api/v1/namespaces/{world.b}/videojobs/{origin}:rerun",
                        json={"scene": 1}), 403)
    assert names_in(world, world.a) == before
