"""Reading a request's body: its size (413 past the limit, before it is all read), its media
type (415), its JSON (400, with where it broke) and its fields (422, each named). The gateway
parses bodies itself rather than through FastAPI so each of these is its own precise answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from . import problems
from .api import CreateVideoJob, RerunVideoJob

M = TypeVar("M", bound=BaseModel)


def check_media_type(content_type: str | None) -> None:
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/")
                                            and media.endswith("+json")):
        raise problems.Problem(415, "unsupported-media-type", "Unsupported media type",
                               f"send the body as Content-Type: application/json (got "
                               f"{media or 'none'})")


async def read_limited(chunks: AsyncIterable[bytes], content_length: str | None,
                       limit: int) -> bytes:
    """The body, refused with 413 once it passes `limit` bytes: by its Content-Length if it
    gives one, else as it arrives (chunked), so an endless body is never held in memory."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise problems.bad_request("malformed-request", "Malformed request",
                                       "Content-Length is not a number") from None
        if declared > limit:
            raise problems.body_too_large(limit)
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise problems.body_too_large(limit)
    return bytes(body)


def parse_json(raw: bytes) -> object:
    if not raw.strip():
        raise problems.bad_request("malformed-json", "Malformed JSON", "the body is empty")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise problems.bad_request("malformed-json", "Malformed JSON",
                                   "the body is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise problems.bad_request(
            "malformed-json", "Malformed JSON",
            f"the body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


def parse_create(doc: object) -> CreateVideoJob:
    return _parse(CreateVideoJob, doc)


def parse_rerun(doc: object) -> RerunVideoJob:
    return _parse(RerunVideoJob, doc)


def _parse(model: type[M], doc: object) -> M:
    if not isinstance(doc, dict):
        raise problems.invalid_request("the body must be a JSON object",
                                       [problems.FieldError("(body)", "not an object")])
    try:
        return model.model_validate(doc)
    except ValidationError as e:
        errors = problems.validation_errors(e.errors())
        names = ", ".join(f"{err.field} ({err.detail})" for err in errors)
        raise problems.invalid_request(f"refused: {names}", errors) from None
