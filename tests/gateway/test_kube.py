"""What a request to the API server is, for the metrics; whom it is made as."""

from __future__ import annotations

from videojob_gateway.kube import Acting, request_kind


def test_requests_are_named_by_verb_and_resource() -> None:
    vjs = "/apis/videojob.dev/v1alpha1"
    assert request_kind("GET", f"{vjs}/videojobs") == ("list", "videojobs")
    assert request_kind("GET", f"{vjs}/videojobs", {"watch": "true"}) == ("watch", "videojobs")
    assert request_kind("POST", f"{vjs}/namespaces/a/videojobs") == ("create", "videojobs")
    assert request_kind("GET", f"{vjs}/namespaces/a/videojobs/x") == ("get", "videojobs")
    assert request_kind("PATCH", f"{vjs}/namespaces/a/videojobs/x") == ("patch", "videojobs")
    assert request_kind("DELETE", f"{vjs}/namespaces/a/videojobs/x") == ("delete", "videojobs")
    assert request_kind("GET", "/api/v1/namespaces") == ("list", "namespaces")
    assert request_kind("GET", "/api/v1/namespaces/a") == ("get", "namespaces")
    assert request_kind("GET", "/api/v1/namespaces/gw/secrets") == ("list", "secrets")
    assert request_kind("POST", "/apis/authentication.k8s.io/v1/tokenreviews") == (
        "create", "tokenreviews")
    assert request_kind("GET", "/version") == ("get", "nonresource")


def test_a_callers_token_is_never_printed() -> None:
    acting = Acting(token="secret-token")
    assert acting.as_caller and "secret-token" not in repr(acting)
    assert not Acting(impersonate="system:serviceaccount:a:b").as_caller
