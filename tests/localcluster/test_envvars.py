from __future__ import annotations

import re
from typing import Any

import pytest

from localcluster.envvars import EnvError, expand, field_value, resolve

POD: dict[str, Any] = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-1",
                 "labels": {"app": "x", "tier": "gpu"}, "annotations": {"a": "1"}},
    "spec": {"nodeName": "local-gpu", "serviceAccountName": "worker"},
    "status": {},
}
CONFIGMAPS = {("ns", "cfg"): {"A": "1", "B": "2"}}
SECRETS = {("ns", "s"): {"token": "t0k"}}


def cm(ns: str, name: str) -> dict[str, str] | None:
    return CONFIGMAPS.get((ns, name))


def secret(ns: str, name: str) -> dict[str, str] | None:
    return SECRETS.get((ns, name))


@pytest.mark.parametrize(("value", "expected"), [
    ("$(A)-$(B)", "1-2"),
    ("$$(A)", "$(A)"),
    ("$(MISSING)", "$(MISSING)"),
    ("$A", "$A"),
    ("$$$(A)", "$1"),
    ("plain", "plain"),
])
def test_expand_follows_kubernetes_rules(value: str, expected: str) -> None:
    assert expand(value, {"A": "1", "B": "2"}) == expected


@pytest.mark.parametrize(("path", "expected"), [
    ("metadata.name", "p"),
    ("metadata.namespace", "ns"),
    ("metadata.uid", "u-1"),
    ("metadata.labels['tier']", "gpu"),
    ("metadata.annotations['a']", "1"),
    ("spec.nodeName", "local-gpu"),
    ("spec.serviceAccountName", "worker"),
    ("status.podIP", "127.0.0.1"),
    ("metadata.labels", 'app="x"\ntier="gpu"'),
])
def test_field_refs(path: str, expected: str) -> None:
    assert field_value(POD, path) == expected


def test_unknown_field_ref_is_an_error() -> None:
    with pytest.raises(EnvError, match=r"spec\.bogus"):
        field_value(POD, "spec.bogus")


def test_env_order_prefixes_and_references() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
                    {"secretRef": {"name": "s"}}],
        "env": [
            {"name": "A", "value": "from-env"},
            {"name": "REF", "value": "$(CFG_A)/$(A)/$(token)"},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "TOK", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "B"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k",
                                                           "optional": True}}},
        ],
        "resources": {"limits": {"memory": "2Gi", "cpu": "500m"}},
    }
    env = resolve(POD, container, {"BASE": "b", "A": "base"}, cm, secret)
    assert env["BASE"] == "b"
    assert env["A"] == "from-env"
    assert env["CFG_A"] == "1" and env["CFG_B"] == "2" and env["token"] == "t0k"
    assert env["REF"] == "1/from-env/t0k"
    assert env["NODE"] == "local-gpu" and env["TOK"] == "t0k" and env["B"] == "2"
    assert "OPT" not in env


def test_resource_field_ref_uses_divisor() -> None:
    container = {
        "resources": {"limits": {"memory": "2Gi", "cpu": "500m"}},
        "env": [
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                  "divisor": "1Mi"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        ],
    }
    env = resolve(POD, container, {}, cm, secret)
    assert env["MEM_MI"] == "2048"
    assert env["CPU"] == "1"  # rounded up, as the kubelet does


@pytest.mark.parametrize("milli", [1, 100, 1001, 1003, 2999])
def test_resource_field_ref_in_millicores_is_exact(milli: int) -> None:
    container = {"resources": {"requests": {"cpu": f"{milli}m"}}, "env": [
        {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu",
                                                             "divisor": "1m"}}}]}
    assert resolve(POD, container, {}, cm, secret)["CPU_M"] == str(milli)


@pytest.mark.parametrize(("container", "message"), [
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k"}}}]},
     'secret "missing" not found'),
    ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "Z"}}}]},
     "couldn't find key Z in configmap ns/cfg"),
    ({"envFrom": [{"configMapRef": {"name": "gone"}}]}, 'configmap "gone" not found'),
])
def test_missing_required_sources_name_what_is_missing(container: dict[str, Any],
                                                       message: str) -> None:
    with pytest.raises(EnvError, match=re.escape(message)):
        resolve(POD, container, {}, cm, secret)
