"""The operator's frequent API writes, sent as JSON without the generated client's models.

Every generated method of the kubernetes client checks its arguments with pydantic and turns a
dict body into the client's models and back to JSON before sending it. For a stage Job's
manifest that costs more of the operator's CPU than the request itself, and the operator makes
five Job creates, six status writes and six Events per VideoJob. These go through the same
client's connection pool and authentication (a rotated ServiceAccount token is re-read by the
client's own hook), send the body as JSON bytes, answer with the JSON as a dict, and raise the
client's ApiException (404, 409, ...) as the generated methods do. Listing and watching stay
with the generated methods (`_preload_content=False`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.client.rest import RESTResponse

from videojob_common.pipeline import Obj

from . import metrics
from .api import GROUP, PLURAL, POOL_PLURAL, VERSION

JSON = "application/json"
# Custom resources take JSON merge patches; built-in kinds also strategic ones (the client's
# default for a dict body, kept for the Jobs).
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

# The operator's threads that send requests, each on a connection of the client's pool. The pool
# holds one for each of them and each watch: a pool smaller than that closes the connections it
# has no room for, and every request past it pays a new TCP and TLS handshake on both sides.
API_THREADS = 32
EVENT_THREADS = 8
HANDOFF_THREADS = 8
ADMISSION_THREADS = 16
WATCH_CONNECTIONS = 4  # the Jobs', the pods' and the ConfigMap's watch, and one to spare


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    def request(self, method: str, path: str, body: Obj | None = None, *,
                content_type: str = JSON, query: dict[str, str] | None = None) -> Obj:
        headers: dict[str, str] = {**self.api.default_headers, "Accept": JSON}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = orjson.dumps(body)
        self.api.update_params_for_auth(headers, None, ["BearerToken"], path, method, None)
        url = self.api.configuration.host + path
        if query:
            url += "?" + urlencode(query)
        response = self.api.rest_client.pool_manager.request(
            method, url, body=data, headers=headers, preload_content=False)
        try:
            raw = response.read()
            if not 200 <= response.status <= 299:
                raise ApiException.from_response(http_resp=RESTResponse(response),
                                                 body=raw.decode(errors="replace"), data=None)
            doc: Obj = orjson.loads(raw) if raw else {}
            return doc
        finally:
            response.release_conn()

    # -- the requests the operator makes ----------------------------------------------------

    def create_job(self, namespace: str, manifest: Obj) -> Obj:
        return self.request("POST", _jobs_path(namespace), manifest)

    def patch_job(self, namespace: str, name: str, patch: Obj) -> Obj:
        return self.request("PATCH", f"{_jobs_path(namespace)}/{_seg(name)}", patch,
                            content_type=STRATEGIC_MERGE_PATCH)

    def delete_job(self, namespace: str, name: str, propagation_policy: str) -> Obj:
        return self.request("DELETE", f"{_jobs_path(namespace)}/{_seg(name)}",
                            query={"propagationPolicy": propagation_policy})

    def patch_videojob(self, namespace: str, name: str, patch: Obj) -> Obj:
        return self.request("PATCH", _videojob_path(namespace, name), patch,
                            content_type=MERGE_PATCH)

    def patch_videojob_status(self, namespace: str, name: str, patch: Obj) -> Obj:
        return self.request("PATCH", _videojob_path(namespace, name) + "/status", patch,
                            content_type=MERGE_PATCH)

    def create_secret(self, namespace: str, manifest: Obj) -> None:
        """Creates a Secret; its answer (the Secret, token included) is read and dropped."""
        self.request("POST", f"/api/v1/namespaces/{_seg(namespace)}/secrets", manifest)

    def read_secret(self, namespace: str, name: str) -> Obj:
        """One Secret, by name: a webhook's signing secret, which the namespace lets the
        operator read (signing_secrets.py; the chart grants no `get` on Secrets)."""
        return self.request("GET", f"/api/v1/namespaces/{_seg(namespace)}/secrets/{_seg(name)}")

    def create_event(self, namespace: str, event: Obj) -> Obj:
        return self.request("POST", f"/api/v1/namespaces/{_seg(namespace)}/events", event)


class Api:
    """The operator's API access from the event loop: every request runs on a thread of a pool
    (the client blocks), Events on a pool of their own. The caches (store.py), the reconciles
    (controller.py) and admission (admission_loop.py) are each given this object."""

    def __init__(self, api: client.ApiClient) -> None:
        self.client = api
        self.kube = Kube(api)
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.rbac = client.RbacAuthorizationV1Api(api)
        self.executor = ThreadPoolExecutor(max_workers=API_THREADS, thread_name_prefix="k8s")
        # Events have threads of their own: a burst of them (12 per VideoJob, 200 VideoJobs
        # starting at once) queued on the shared pool would hold every Job create and status
        # write behind it, and those are what moves VideoJobs on.
        self.event_executor = ThreadPoolExecutor(max_workers=EVENT_THREADS,
                                                 thread_name_prefix="events")
        # So have the writes that move a VideoJob to its next stage (its Job's create, its
        # admission): they never wait for a thread behind a burst of status writes. (In the
        # 200-VideoJob burst the create's time is the API server's answer either way:
        # docs/benchmarks.md, "The burst, second part".)
        self.handoff_executor = ThreadPoolExecutor(max_workers=HANDOFF_THREADS,
                                                   thread_name_prefix="handoff")
        # And admissions, of the hand-off's: a freed slot's next Job waited for a thread behind
        # the stage Job creates of a burst (96 to 360 ms at the median with 3,000 VideoJobs,
        # bench/scale.py). Slots free in bunches (a stage's pods end together): with 4
        # threads, admissions waited 420 ms for one of them.
        self.admission_executor = ThreadPoolExecutor(max_workers=ADMISSION_THREADS,
                                                     thread_name_prefix="admission")
        self.threads_of = {self.executor: "api", self.event_executor: "events",
                           self.handoff_executor: "handoff",
                           self.admission_executor: "admission"}  # metrics.API_CALL's label

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.event_executor.shutdown(wait=False, cancel_futures=True)
        self.handoff_executor.shutdown(wait=False, cancel_futures=True)
        self.admission_executor.shutdown(wait=False, cancel_futures=True)

    async def call(self, fn: Callable[..., Any], *args: Any,
                   executor: ThreadPoolExecutor | None = None, **kwargs: Any) -> Any:
        """fn(*args, **kwargs) on an API thread: a blocking request, off the loop. Its time goes
        to metrics.API_CALL in three parts: waiting for a thread, the request, and waiting for
        the event loop to take the answer."""
        pool = executor or self.executor
        times = [time.monotonic(), 0.0, 0.0]

        def run() -> Any:
            times[1] = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                times[2] = time.monotonic()

        try:
            return await asyncio.get_running_loop().run_in_executor(pool, run)
        finally:
            if times[2]:
                observe_call(self.threads_of.get(pool, "api"), times, time.monotonic())

    async def call_json(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
        """`call` for a listing: its JSON as a dict. The client's models are skipped: decoding
        Jobs into them and back to dicts costs more CPU than the request itself, and the caches
        hold dicts anyway. (The writes skip the generated methods altogether: `Kube`.)"""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: _read_json(fn, args, kwargs))

    async def call_listing(self, fn: Callable[..., Any], *args: Any,
                           trim: Callable[[Obj], Obj], **kwargs: Any) -> tuple[list[Obj], Obj]:
        """`call_json` for one page of a listing: (its items, each `trim`med, and its metadata),
        the trimming done on the API thread, not the event loop."""

        def run() -> tuple[list[Obj], Obj]:
            doc = _read_json(fn, args, kwargs)
            return [trim(o) for o in doc.get("items") or []], doc.get("metadata") or {}

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, run)

    def list_fn(self, kind: str, namespace: str | None
                ) -> tuple[Callable[..., Any], tuple[str, ...]]:
        """The client's list (and watch) call for Jobs or pods, and its positional arguments."""
        if kind == "job":
            fn: Callable[..., Any] = (self.batch.list_namespaced_job if namespace
                                      else self.batch.list_job_for_all_namespaces)
        else:
            fn = (self.core.list_namespaced_pod if namespace
                  else self.core.list_pod_for_all_namespaces)
        return fn, (namespace,) if namespace else ()

    # -- what admission writes (admission_loop.AdmissionWriter) ------------------------------

    async def patch_job(self, namespace: str, name: str, patch: Obj) -> Obj:
        result: Obj = await self.call(self.kube.patch_job, namespace, name, patch,
                                      executor=self.admission_executor)
        return result

    async def cluster_role_uid(self, name: str) -> str:
        role = await self.call(self.rbac.read_cluster_role, name)
        return str(role.metadata.uid)

    async def write_pool_status(self, name: str, patch: Obj, body: Obj) -> None:
        """Patches a VideoJobPool object, or creates it (`body`) where there is none."""
        try:
            await self.call(self.custom.patch_cluster_custom_object, GROUP, VERSION,
                            POOL_PLURAL, name, patch)
        except ApiException as e:
            if e.status != 404:
                raise
            await self.call(self.custom.create_cluster_custom_object, GROUP, VERSION,
                            POOL_PLURAL, body)


def api_client() -> client.ApiClient:
    """A client with the in-cluster service account when in a pod, else the kubeconfig's."""
    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    cfg.connection_pool_maxsize = (API_THREADS + EVENT_THREADS + HANDOFF_THREADS
                                   + ADMISSION_THREADS + WATCH_CONNECTIONS)
    return client.ApiClient(cfg)


def observe_call(threads: str, times: list[float], resumed: float) -> None:
    """One call's parts (monotonic times: submitted, its thread started, its thread ended; and
    the coroutine resumed)."""
    submitted, started, ended = times
    metrics.API_CALL.labels(threads, "thread").observe(started - submitted)
    metrics.API_CALL.labels(threads, "request").observe(ended - started)
    metrics.API_CALL.labels(threads, "resume").observe(resumed - ended)


def _seg(value: str) -> str:
    """One path segment, escaped as the generated client escapes it."""
    return quote(value, safe="")


def _jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{_seg(namespace)}/jobs"


def _videojob_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{_seg(namespace)}/{PLURAL}/{_seg(name)}"


def _read_json(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Obj:
    """fn(*args, **kwargs)'s answer as a dict, read without the client's models (blocking)."""
    response = fn(*args, _preload_content=False, **kwargs)
    try:
        doc: Obj = orjson.loads(response.data)
    finally:
        response.release_conn()
    return doc
