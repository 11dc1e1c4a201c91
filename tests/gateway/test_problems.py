"""Problem documents (RFC 9457), and the API server's refusals as problems."""

from __future__ import annotations

from videojob_gateway import problems
from videojob_gateway.kube import ApiError


def invalid(causes: list[dict[str, str]]) -> ApiError:
    return ApiError(422, {"kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422,
                          "message": 'VideoJob.videojob.dev "x" is invalid: spec.fps: ...',
                          "details": {"name": "x", "causes": causes}})


def test_a_document_has_type_title_status_detail_and_the_fields() -> None:
    p = problems.invalid_request("refused: extra (unknown field)",
                                 [problems.FieldError("extra", "unknown field")])
    assert p.document("/api/v1/namespaces/a/videojobs") == {
        "type": "https://videojob.dev/problems/invalid-request", "title": "Invalid request",
        "status": 422, "detail": "refused: extra (unknown field)",
        "instance": "/api/v1/namespaces/a/videojobs",
        "errors": [{"field": "extra", "detail": "unknown field"}]}
    assert "errors" not in problems.forbidden("no").document()


def test_an_invalid_spec_keeps_the_servers_message_and_names_each_field() -> None:
    p = problems.from_api_error(invalid([
        {"reason": "FieldValueInvalid", "field": "spec.fps",
         "message": "Invalid value: 99: spec.fps in body should be less than or equal to 60"},
        {"reason": "FieldValueInvalid", "field": "spec.resolution",
         "message": "spec.resolution width must be an even number from 64 to 3840"}]))
    assert (p.status, p.slug) == (422, "invalid-spec")
    assert p.detail.startswith('VideoJob.videojob.dev "x" is invalid')
    assert [e.field for e in p.errors] == ["spec.fps", "spec.resolution"]


def test_an_unknown_spec_field_is_a_422_naming_it() -> None:
    # What the API server answers with fieldValidation=Strict.
    p = problems.from_api_error(ApiError(400, {
        "reason": "BadRequest", "code": 400,
        "message": 'VideoJob in version "v1alpha1" cannot be handled as a VideoJob: strict '
                   'decoding error: unknown field "spec.bogus", unknown field "spec.gpu.x"'}))
    assert (p.status, p.slug) == (422, "invalid-spec")
    assert [(e.field, e.detail) for e in p.errors] == [("spec.bogus", "unknown field"),
                                                       ("spec.gpu.x", "unknown field")]


def test_each_refusal_keeps_its_meaning() -> None:
    def mapped(status: int, reason: str = "", message: str = "m") -> tuple[int, str]:
        p = problems.from_api_error(ApiError(status, {"reason": reason, "message": message}))
        return p.status, p.slug

    assert mapped(400, "BadRequest") == (400, "rejected")
    assert mapped(401) == (401, "unauthenticated")
    assert mapped(403, "Forbidden") == (403, "forbidden")
    assert mapped(404, "NotFound") == (404, "not-found")
    assert mapped(409, "AlreadyExists") == (409, "already-exists")
    assert mapped(409, "Conflict") == (409, "conflict")
    assert mapped(429) == (429, "too-many-requests")
    assert mapped(500) == (502, "api-error")  # the server's failure, not ours
    assert mapped(503) == (502, "api-error")
    assert problems.from_api_error(ApiError(401, {})).headers["WWW-Authenticate"].startswith(
        "Bearer")
    assert problems.from_api_error(ApiError(429, {}, retry_after=7)).headers == {
        "Retry-After": "7"}


def test_validation_errors_name_fields_and_unknown_ones() -> None:
    errors = problems.validation_errors([
        {"loc": ("query", "limit"), "msg": "Input should be greater than or equal to 1",
         "type": "greater_than_equal"},
        {"loc": ("query", "extra"), "msg": "Extra inputs are not permitted",
         "type": "extra_forbidden"}], drop=1)
    assert [(e.field, e.detail) for e in errors] == [
        ("limit", "Input should be greater than or equal to 1"), ("extra", "unknown field")]
