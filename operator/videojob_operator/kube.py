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

from typing import Any
from urllib.parse import quote, urlencode

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.client.rest import RESTResponse

from .api import GROUP, PLURAL, VERSION

Obj = dict[str, Any]

JSON = "application/json"
# Custom resources take JSON merge patches; built-in kinds also strategic ones (the client's
# default for a dict body, kept for the Jobs).
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


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

    def create_event(self, namespace: str, event: Obj) -> Obj:
        return self.request("POST", f"/api/v1/namespaces/{_seg(namespace)}/events", event)


def _seg(value: str) -> str:
    """One path segment, escaped as the generated client escapes it."""
    return quote(value, safe="")


def _jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{_seg(namespace)}/jobs"


def _videojob_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{_seg(namespace)}/{PLURAL}/{_seg(name)}"
