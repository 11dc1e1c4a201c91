"""The gateway's part of the chart (templates/gateway/): off by default; when on, pods no
selector of the operator's matches, permissions that never write a VideoJob, and in key mode
impersonation of the named ServiceAccounts only."""

from __future__ import annotations

import yaml

from videojob_common.pipeline import Obj
from videojob_testkit import REPO
from videojob_testkit.chart import find, render

ON = {"gateway": {"enabled": True}}
KEYS = {"gateway": {"enabled": True, "authModes": ["token", "key"],
                    "apiKeys": {"serviceAccounts": {"team-a": ["videojob-api", "web"]}}}}


def gateway_objects(docs: list[Obj]) -> list[Obj]:
    return [d for d in docs if "gateway" in d["metadata"]["name"]]


def test_off_by_default() -> None:
    assert gateway_objects(render()) == []


def test_its_pods_are_not_the_operators() -> None:
    docs = render(ON)
    (gw,) = find(docs, "Deployment", "vj-videojob-operator-gateway")
    (op,) = find(docs, "Deployment", "vj-videojob-operator")
    gw_labels = gw["spec"]["template"]["metadata"]["labels"]
    op_selector = op["spec"]["selector"]["matchLabels"]
    assert not all(gw_labels.get(k) == v for k, v in op_selector.items())
    (svc,) = find(docs, "Service", "vj-videojob-operator-gateway")
    assert svc["spec"]["selector"] == gw["spec"]["selector"]["matchLabels"]
    spec = gw["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "vj-videojob-operator-gateway"
    (c,) = spec["containers"]
    assert c["image"] == "ghcr.io/videojob/gateway:0.1.0"
    assert "--auth-modes=token" in c["args"] and "--host=0.0.0.0" in c["args"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "--continue-key-file=/etc/videojob-gateway/continue-key" in c["args"]
    (secret,) = find(docs, "Secret", "vj-videojob-operator-gateway")
    assert len(secret["data"]["continue-key"]) >= 48


def test_the_gateway_never_writes_a_videojob_itself() -> None:
    rules = [r for d in gateway_objects(render(KEYS)) if d["kind"] in ("ClusterRole", "Role")
             for r in d["rules"]]
    for r in rules:
        assert "*" not in r["verbs"] and "*" not in r["resources"], r
        if "videojob.dev" in r["apiGroups"]:
            assert set(r["verbs"]) <= {"list", "watch"}, r
        if "secrets" in r["resources"]:
            assert set(r["verbs"]) == {"list", "watch"}, r
    (imp,) = [r for r in rules if "impersonate" in r["verbs"]]
    assert imp == {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"],
                   "resourceNames": ["videojob-api", "web"]}


def test_key_mode_roles_are_where_the_keys_and_accounts_are() -> None:
    docs = render(KEYS)
    roles = {(d["metadata"]["name"], d["metadata"]["namespace"])
             for d in find(docs, "Role") if "gateway" in d["metadata"]["name"]}
    assert roles == {("vj-videojob-operator-gateway-keys", "videojob-system"),
                     ("vj-videojob-operator-gateway-impersonate", "team-a")}
    assert not [d for d in find(render(ON), "Role") if "gateway" in d["metadata"]["name"]]


def test_the_package_and_the_chart_grant_the_same() -> None:
    """gateway/videojob_gateway/rbac.yaml (what the e2e tests grant) is what the chart grants."""
    declared = yaml.safe_load((REPO / "gateway" / "videojob_gateway" / "rbac.yaml").read_text())
    (role,) = [d for d in find(render(KEYS), "ClusterRole")
               if d["metadata"]["name"] == "vj-videojob-operator-gateway"]
    assert role["rules"] == declared["clusterRules"]
    (keys,) = [d for d in find(render(KEYS), "Role")
               if d["metadata"]["name"] == "vj-videojob-operator-gateway-keys"]
    assert keys["rules"] == declared["keyNamespaceRules"]
