"""Errors as RFC 9457 problem documents (`application/problem+json`): every refusal has a type,
a title, the status and a detail, and a refused document names its fields in `errors`.

Pure mapping (a Kubernetes `Status` → a problem) plus the FastAPI exception handlers that render
them, so no error leaves the gateway as HTML, as FastAPI's `{"detail": ...}` or as a bare 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .kube import ApiError, ApiUnavailable

PROBLEM_JSON = "application/problem+json"
# Types are URIs (RFC 9457 §3.1.1); each is described in docs/http-api.md, "Errors".
TYPE_BASE = "https://videojob.dev/problems/"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FieldError:
    """One refused field: `spec.fps`, `labels.team`, a query parameter's name."""

    field: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "detail": self.detail}


@dataclass
class Problem(Exception):
    status: int
    slug: str  # the last part of the type URI
    title: str
    detail: str
    errors: Sequence[FieldError] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.slug}: {self.detail}"

    def document(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": TYPE_BASE + self.slug, "title": self.title,
                               "status": self.status, "detail": self.detail}
        if instance:
            doc["instance"] = instance
        if self.errors:
            doc["errors"] = [e.as_dict() for e in self.errors]
        return doc


def unauthenticated(detail: str) -> Problem:
    # RFC 9110 §11.6.1: a 401 names the scheme to use.
    return Problem(401, "unauthenticated", "Unauthenticated", detail,
                   headers={"WWW-Authenticate": 'Bearer realm="videojob"'})


def forbidden(detail: str) -> Problem:
    return Problem(403, "forbidden", "Forbidden", detail)


def not_found(detail: str) -> Problem:
    return Problem(404, "not-found", "Not found", detail)


def bad_request(slug: str, title: str, detail: str,
                errors: Sequence[FieldError] = ()) -> Problem:
    return Problem(400, slug, title, detail, errors)


def invalid_request(detail: str, errors: Sequence[FieldError]) -> Problem:
    """The request's JSON is well formed but not what this endpoint takes."""
    return Problem(422, "invalid-request", "Invalid request", detail, errors)


def body_too_large(limit: int) -> Problem:
    return Problem(413, "body-too-large", "Request body too large",
                   f"the body is larger than {limit} bytes")


def api_unavailable(detail: str) -> Problem:
    return Problem(503, "api-unavailable", "Kubernetes API server unavailable", detail,
                   headers={"Retry-After": "1"})


# "strict decoding error: unknown field "spec.bogus", unknown field "spec.x"" (fieldValidation=
# Strict): the API server answers 400, without causes; the fields are only in the message.
_UNKNOWN_FIELD = re.compile(r'unknown field "([^"]+)"')
_DUPLICATE_FIELD = re.compile(r'duplicate field "([^"]+)"')


def from_api_error(err: ApiError) -> Problem:
    """The API server's refusal of a caller's write, as a problem that keeps its message (which
    names the field, the verb or the user) and its status where it is the caller's to fix."""
    message = err.message or f"the API server answered {err.status}"
    match err.status:
        case 400 if _UNKNOWN_FIELD.search(message) or _DUPLICATE_FIELD.search(message):
            # A spec field the CRD does not declare: a refused document, as a 422 is, so a
            # client has one rule (422: fix the named fields) for every invalid spec.
            fields = [FieldError(f, "unknown field") for f in _UNKNOWN_FIELD.findall(message)]
            fields += [FieldError(f, "duplicate field") for f in _DUPLICATE_FIELD.findall(message)]
            return Problem(422, "invalid-spec", "Invalid VideoJob", message, fields)
        case 400:
            return bad_request("rejected", "Rejected by the API server", message)
        case 401:
            return unauthenticated(message)
        case 403:
            return forbidden(message)
        case 404:
            return not_found(message)
        case 409:
            slug = "already-exists" if err.reason == "AlreadyExists" else "conflict"
            return Problem(409, slug, "Conflict", message)
        case 422:
            return Problem(422, "invalid-spec", "Invalid VideoJob", message,
                           list(causes(err.body)))
        case 429:
            return Problem(429, "too-many-requests", "Too many requests", message,
                           headers={"Retry-After": str(err.retry_after or 1)})
        case _:
            # The API server's own failure, or one this gateway does not expect: a bad gateway,
            # not a 500 of ours; the message is the server's.
            return Problem(502, "api-error", "Kubernetes API server error", message)


def causes(status: Mapping[str, Any] | None) -> Iterable[FieldError]:
    """The fields a Kubernetes `Status` names (`details.causes[]`)."""
    details = (status or {}).get("details") or {}
    for cause in details.get("causes") or []:
        if isinstance(cause, dict):
            yield FieldError(str(cause.get("field") or ""), str(cause.get("message") or ""))


def validation_errors(errors: Sequence[Any], drop: int = 0) -> list[FieldError]:
    """pydantic/FastAPI errors → named fields (`labels.team`, `limit`); `drop` leading parts of
    each location (FastAPI's `query`, `body`)."""
    out = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ())][drop:]
        detail = "unknown field" if e.get("type") == "extra_forbidden" else str(e.get("msg", ""))
        out.append(FieldError(".".join(loc) or "(body)", detail))
    return out


def respond(problem: Problem, instance: str | None = None) -> JSONResponse:
    return JSONResponse(problem.document(instance), status_code=problem.status,
                        media_type=PROBLEM_JSON, headers=dict(problem.headers))


def install(app: FastAPI) -> None:
    """Every error the app can raise, rendered as a problem document."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return respond(exc, request.url.path)

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return respond(from_api_error(exc), request.url.path)

    async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
        return respond(api_unavailable(str(exc)), request.url.path)

    async def on_invalid_parameter(request: Request, exc: Exception) -> JSONResponse:
        # Query and path parameters (bodies are parsed by `bodies`, not by FastAPI): a request
        # the client built wrongly, 400 with the parameter named.
        assert isinstance(exc, RequestValidationError)
        errors = validation_errors(exc.errors(), drop=1)
        names = ", ".join(e.field for e in errors)
        return respond(bad_request("invalid-parameter", "Invalid parameter",
                                   f"invalid parameter: {names}", errors), request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slugs = {404: "not-found", 405: "method-not-allowed"}
        problem = Problem(exc.status_code, slugs.get(exc.status_code, "http-error"),
                          _title(exc.status_code), str(exc.detail),
                          headers=dict(exc.headers or {}))
        return respond(problem, request.url.path)

    async def on_anything(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return respond(Problem(500, "internal", "Internal error",
                               "the gateway failed; the error is in its log"), request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(ApiUnavailable, on_unavailable)
    app.add_exception_handler(RequestValidationError, on_invalid_parameter)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_anything)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
