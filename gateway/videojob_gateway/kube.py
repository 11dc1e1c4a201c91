"""The Kubernetes API server, as the gateway sees it: who a request is made as, and the two
HTTP clients that make it.

A request is made as one of three identities (`Acting`):

- the gateway itself (its kubeconfig or in-cluster ServiceAccount): lists and watches for the
  cache, TokenReviews and SubjectAccessReviews. Nothing a caller asked for.
- a caller, with the caller's own bearer token (token mode): the API server authenticates and
  authorises the write as the caller and admits it with the caller's name in its audit log.
  These go through a second client that holds the cluster's CA and *no client certificate*:
  the API server tries x509 before bearer tokens, so a gateway that runs with a client
  certificate would otherwise be taken for itself and the caller's token ignored.
- an API key's ServiceAccount, impersonated (key mode): `Impersonate-User:
  system:serviceaccount:<ns>:<name>`. The API server adds the ServiceAccount's groups itself, so
  the gateway needs only `impersonate` on that ServiceAccount, in that namespace (docs/http-api.md).

The `kubernetes` package only reads the kubeconfig; the requests are httpx's, on the event loop.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

Obj = dict[str, Any]
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
FIELD_MANAGER = "videojob-gateway"


class ApiError(Exception):
    """The API server answered with an error status; `body` is its `Status`, when it sent one."""

    def __init__(self, status: int, body: Obj | None, retry_after: int | None = None) -> None:
        self.status = status
        self.body = body or {}
        self.retry_after = retry_after
        super().__init__(f"{status} {self.reason}: {self.message}")

    @property
    def reason(self) -> str:
        return str(self.body.get("reason") or "")

    @property
    def message(self) -> str:
        return str(self.body.get("message") or "")


class ApiUnavailable(Exception):
    """No answer from the API server (refused, reset, timed out)."""


@dataclass(frozen=True)
class Acting:
    """Whom the API server should take a request for; the default is the gateway itself."""

    token: str | None = field(default=None, repr=False)  # a caller's own bearer token
    impersonate: str | None = None  # a ServiceAccount's user name (key mode)

    @property
    def as_caller(self) -> bool:
        return self.token is not None


GATEWAY = Acting()


@dataclass(frozen=True)
class Connection:
    """Where the API server is, how to trust it, and the gateway's own credentials."""

    server: str
    ca_file: str | None
    verify: bool = True
    cert_file: str | None = None  # the gateway's client certificate, if its kubeconfig has one
    key_file: str | None = None
    # The gateway's own `Authorization` value, asked for on every request, so a rotated
    # in-cluster token or an exec plugin's refreshed one is picked up (kubernetes' hooks).
    authorization: Callable[[], str | None] = lambda: None

    def ssl_context(self, with_client_cert: bool) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if with_client_cert and self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def load_connection(kubeconfig: Path | None, context: str | None = None) -> Connection:
    """The gateway's connection from a kubeconfig file, or in-cluster when `kubeconfig` is None."""
    from kubernetes import client, config

    cfg = client.Configuration()
    if kubeconfig is None:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), context=context, client_configuration=cfg)

    def authorization() -> str | None:
        # Runs the refresh hook, if any. "BearerToken" since kubernetes 32, "authorization"
        # before: the client's own auth_settings() asks for both the same way.
        value = cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
        return str(value) if value else None

    return Connection(server=str(cfg.host), ca_file=cfg.ssl_ca_cert, verify=bool(cfg.verify_ssl),
                      cert_file=cfg.cert_file, key_file=cfg.key_file,
                      authorization=authorization)


def request_kind(method: str, path: str, params: Mapping[str, Any] | None = None
                 ) -> tuple[str, str]:
    """(verb, resource) of a request, for the metrics: `("list", "videojobs")`."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts[:1] not in (["api"], ["apis"]):
        return method.lower(), "nonresource"  # /version, /readyz
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    resource = rest[0] if rest else "-"
    named = len(rest) > 1
    if method == "GET":
        verb = "watch" if (params or {}).get("watch") in (True, "true", "1") else (
            "get" if named else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete"}.get(method, method.lower())
    return verb, resource


Observer = Callable[[str, str, int], None]  # (verb, resource, HTTP status; 0: no answer)


class ApiServer:
    """Requests to the API server; `observe` is told of each one (the metrics)."""

    def __init__(self, connection: Connection, observe: Observer | None = None,
                 timeout: float = 10.0) -> None:
        self.connection = connection
        self._observe = observe or (lambda verb, resource, code: None)
        self._timeout = timeout
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._own = httpx.AsyncClient(base_url=connection.server, limits=limits,
                                      verify=connection.ssl_context(with_client_cert=True))
        self._callers = httpx.AsyncClient(base_url=connection.server, limits=limits,
                                          verify=connection.ssl_context(with_client_cert=False))

    async def close(self) -> None:
        await self._own.aclose()
        await self._callers.aclose()

    def _client_and_headers(self, acting: Acting) -> tuple[httpx.AsyncClient, dict[str, str]]:
        headers = {"Accept": JSON, "User-Agent": "videojob-gateway"}
        if acting.token is not None:
            headers["Authorization"] = f"Bearer {acting.token}"
            return self._callers, headers
        own = self.connection.authorization()
        if own:
            headers["Authorization"] = own
        if acting.impersonate:
            headers["Impersonate-User"] = acting.impersonate
        return self._own, headers

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      body: Any = None, content_type: str = JSON,
                      acting: Acting = GATEWAY) -> Obj:
        """The decoded answer; ApiError for an error status, ApiUnavailable for none."""
        client, headers = self._client_and_headers(acting)
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body).encode()
        verb, resource = request_kind(method, path, params)
        try:
            resp = await client.request(method, path, params=dict(params or {}), content=content,
                                        headers=headers, timeout=self._timeout)
        except httpx.HTTPError as e:
            self._observe(verb, resource, 0)
            raise ApiUnavailable(f"{method} {path}: {type(e).__name__}: {e}") from e
        self._observe(verb, resource, resp.status_code)
        doc = _decode(resp.content)
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, doc, _retry_after(resp.headers))
        return doc or {}

    async def watch(self, path: str, params: Mapping[str, Any], timeout_seconds: int
                    ) -> AsyncIterator[Obj]:
        """The events of one watch request (as the gateway), until the server ends it."""
        client, headers = self._client_and_headers(GATEWAY)
        query = {**params, "watch": "true", "timeoutSeconds": str(timeout_seconds)}
        # The server closes the watch after timeoutSeconds; a read that waits much longer than
        # that (bookmarks come about once a minute) means the connection is gone.
        timeout = httpx.Timeout(self._timeout, read=timeout_seconds + 30)
        verb, resource = request_kind("GET", path, query)
        try:
            async with client.stream("GET", path, params=query, headers=headers,
                                     timeout=timeout) as resp:
                self._observe(verb, resource, resp.status_code)
                if resp.status_code >= 400:
                    raise ApiError(resp.status_code, _decode(await resp.aread()))
                async for line in resp.aiter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.HTTPError as e:
            self._observe(verb, resource, 0)
            raise ApiUnavailable(f"watch {path}: {type(e).__name__}: {e}") from e


def _decode(content: bytes) -> Obj | None:
    try:
        doc = json.loads(content) if content else None
    except ValueError:
        return {"message": content[:500].decode(errors="replace")}
    return doc if isinstance(doc, dict) else None


def _retry_after(headers: httpx.Headers) -> int | None:
    try:
        return int(headers.get("Retry-After", ""))
    except ValueError:
        return None
