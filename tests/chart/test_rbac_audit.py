"""The pure half of the operator's permissions check (videojob_testkit.rbac): reading
`kubectl auth can-i --list` and the audit log, and comparing them. The e2e half is in
tests/e2e/test_realnodes.py."""

from __future__ import annotations

import json

import pytest

from videojob_testkit.rbac import (
    Call,
    Grant,
    fenced_block,
    parse_audit,
    parse_can_i,
    render,
    table,
    uncovered,
    unused,
    url_allowed,
)

CAN_I = """\
Resources                                       Non-Resource URLs                      Resource Names   Verbs
selfsubjectaccessreviews.authorization.k8s.io   []                                     []               [create]
configmaps                                      []                                     [x]              [get list]
jobs.batch                                      []                                     []               [get list watch]
videojobs.videojob.dev/status                   []                                     []               [patch]
                                                [/api/*]                               []               [get]
                                                [/version]                             []               [get]
"""  # noqa: E501

SA = "system:serviceaccount:vj:op"


def event(verb: str, resource: str, *, user: str = SA, group: str | None = None,
          sub: str | None = None, name: str | None = None, code: int = 200,
          stage: str = "ResponseComplete") -> str:
    ref: dict[str, str] = {"resource": resource, "namespace": "t"}
    if group:
        ref["apiGroup"] = group
    if sub:
        ref["subresource"] = sub
    if name:
        ref["name"] = name
    return json.dumps({"stage": stage, "verb": verb, "user": {"username": user},
                       "requestURI": "/x", "objectRef": ref, "responseStatus": {"code": code}})


def test_can_i_rows_become_grants_per_verb_and_name() -> None:
    grants, urls = parse_can_i(CAN_I)
    assert Grant("", "configmaps", "get", "x") in grants
    assert Grant("", "configmaps", "list", "x") in grants
    assert Grant("batch", "jobs", "watch") in grants
    assert Grant("videojob.dev", "videojobs/status", "patch") in grants
    assert Grant("authorization.k8s.io", "selfsubjectaccessreviews", "create") in grants
    assert len(grants) == 7
    assert urls == {("/api/*", "get"), ("/version", "get")}


def test_not_a_can_i_table_is_refused() -> None:
    with pytest.raises(ValueError, match="can-i"):
        parse_can_i("error: the server doesn't have a resource type")


def test_audit_keeps_only_the_users_finished_requests() -> None:
    lines = [event("list", "jobs", group="batch"),
             event("patch", "videojobs", group="videojob.dev", sub="status", name="a"),
             event("get", "pods", user="system:serviceaccount:vj:other"),
             event("watch", "jobs", group="batch", stage="ResponseStarted"),
             event("get", "jobs", group="batch", stage="RequestReceived"),
             json.dumps({"stage": "ResponseComplete", "verb": "get", "user": {"username": SA},
                         "requestURI": "/version?timeout=32s", "responseStatus": {"code": 200}}),
             ""]
    calls, urls = parse_audit(lines, SA)
    assert [(c.resource, c.verb) for c in calls] == [
        ("jobs", "list"), ("videojobs/status", "patch"), ("jobs", "watch")]
    assert calls[1] == Call("videojob.dev", "videojobs/status", "patch", "a", "t", 200)
    assert urls == [("/version", "get")]


def test_a_call_is_covered_only_by_its_group_resource_verb_and_name() -> None:
    grants, urls = parse_can_i(CAN_I)
    calls, _ = parse_audit([event("get", "configmaps", name="x"),
                            event("get", "configmaps", name="y"),
                            event("list", "jobs", group="batch"),
                            event("create", "jobs", group="batch"),
                            event("list", "jobs", group="apps"),
                            event("patch", "videojobs", group="videojob.dev")], SA)
    assert [(c.group, c.resource, c.verb, c.name) for c in uncovered(calls, grants)] == [
        ("", "configmaps", "get", "y"), ("apps", "jobs", "list", ""),
        ("batch", "jobs", "create", ""), ("videojob.dev", "videojobs", "patch", "")]
    assert Grant("batch", "jobs", "watch") in unused(grants, calls)
    assert Grant("batch", "jobs", "list") not in unused(grants, calls)
    assert url_allowed("/api/v1", urls, "get") and url_allowed("/version", urls, "get")
    assert not url_allowed("/apis", urls, "get") and not url_allowed("/version", urls, "post")


def test_table_groups_verbs_as_kubectl_rows() -> None:
    grants, _ = parse_can_i(CAN_I)
    assert table(grants) == [
        "configmaps [x] [get list]",
        "jobs.batch [] [get list watch]",
        "selfsubjectaccessreviews.authorization.k8s.io [] [create]",
        "videojobs.videojob.dev/status [] [patch]",
    ]


def test_render_reads_back_as_the_same_grants() -> None:
    grants, _ = parse_can_i(CAN_I)
    text = render(grants)
    assert text.splitlines()[1].split() == ["configmaps", "[]", "[x]", "[get", "list]"]
    assert parse_can_i(text)[0] == grants


def test_fenced_block_after_a_heading() -> None:
    doc = "# A\n```\nnot this\n```\n## B\ntext\n```text\nthis\n```\n"
    assert fenced_block(doc, "## B") == "this\n"


def test_a_docs_block_with_the_command_above_the_table_reads() -> None:
    doc = "- **Here**:\n\n  ```text\n  $ kubectl auth can-i --list\n" + "".join(
        "  " + line + "\n" for line in CAN_I.splitlines()) + "  ```\n"
    assert parse_can_i(fenced_block(doc, "**Here**"))[0] == parse_can_i(CAN_I)[0]
