"""The gateway's part of the chart (templates/gateway/): off by default; when on, pods no
selector of the operator's matches, permissions that never write a VideoJob, in key mode and
for triggers impersonation of the named ServiceAccounts only, and the triggers' admission
policy."""

from __future__ import annotations

import yaml

from videojob_common.pipeline import Obj
from videojob_testkit import REPO
from videojob_testkit.chart import find, render

ON = {"gateway": {"enabled": True}}
KEYS = {"gateway": {"enabled": True, "authModes": ["token", "key"],
                    "apiKeys": {"serviceAccounts": {"team-a": ["videojob-api", "web"]}}}}
POLICY = "vj-videojob-operator-gateway-triggers"
TRIGGERS = {"gateway": {"enabled": True,
                        "triggers": {"serviceAccounts": {"team-a": ["webhook-runner"],
                                                         "team-b": ["hooks"]}}}}


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
    assert "--download-link-key-file=/etc/videojob-gateway/download-link-key" in c["args"]
    (secret,) = find(docs, "Secret", "vj-videojob-operator-gateway")
    assert len(secret["data"]["continue-key"]) >= 48
    assert len(secret["data"]["download-link-key"]) >= 48
    assert secret["data"]["download-link-key"] != secret["data"]["continue-key"]


def test_the_gateway_never_writes_a_videojob_itself() -> None:
    rules = [r for d in gateway_objects(render(KEYS)) if d["kind"] in ("ClusterRole", "Role")
             for r in d["rules"]]
    for r in rules:
        assert "*" not in r["verbs"] and "*" not in r["resources"], r
        if "videojob.dev" in r["apiGroups"] and r["resources"] != ["videojobtriggers/status"]:
            assert set(r["verbs"]) <= {"get", "list", "watch"}, r
            assert "videojobs" not in r["resources"] or set(r["verbs"]) <= {"list", "watch"}, r
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


def test_triggers_impersonate_the_named_accounts_only_and_write_only_their_status() -> None:
    docs = render(TRIGGERS)
    roles = {d["metadata"]["namespace"]: d["rules"] for d in find(docs, "Role")
             if d["metadata"]["name"] == "vj-videojob-operator-gateway-triggers"}
    assert roles == {
        "team-a": [{"apiGroups": [""], "resources": ["serviceaccounts"],
                    "verbs": ["impersonate"], "resourceNames": ["webhook-runner"]}],
        "team-b": [{"apiGroups": [""], "resources": ["serviceaccounts"],
                    "verbs": ["impersonate"], "resourceNames": ["hooks"]}]}
    writes = [r for d in gateway_objects(docs) if d["kind"] in ("ClusterRole", "Role")
              for r in d["rules"] if set(r["verbs"]) - {"get", "list", "watch"}]
    assert all(r["resources"] in (["videojobtriggers/status"], ["serviceaccounts"],
                                  ["tokenreviews"], ["subjectaccessreviews"]) for r in writes)
    assert not [r for d in gateway_objects(docs) if d["kind"] in ("ClusterRole", "Role")
                for r in d["rules"] if "secrets" in r["resources"]]  # no key mode: no Secrets
    (gw,) = find(docs, "Deployment", "vj-videojob-operator-gateway")
    args = gw["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--triggers=true" in args and "--trigger-timestamp-tolerance-seconds=300" in args


def test_triggers_off_means_no_trigger_rights_and_no_policy() -> None:
    docs = render({"gateway": {"enabled": True, "triggers": {
        "enabled": False, "serviceAccounts": {"team-a": ["webhook-runner"]}}}})
    assert "videojobtriggers" not in str([d for d in gateway_objects(docs)
                                          if d["kind"] in ("ClusterRole", "Role")])
    assert not find(docs, "ValidatingAdmissionPolicy", POLICY)
    (gw,) = find(docs, "Deployment", "vj-videojob-operator-gateway")
    assert "--triggers=false" in gw["spec"]["template"]["spec"]["containers"][0]["args"]


def test_the_triggers_admission_policy_is_the_packages() -> None:
    declared = {d["kind"]: d for d in yaml.safe_load_all(
        (REPO / "gateway" / "videojob_gateway" / "trigger_policy.yaml").read_text())}
    docs = render(ON)
    (policy,) = find(docs, "ValidatingAdmissionPolicy", POLICY)
    (binding,) = find(docs, "ValidatingAdmissionPolicyBinding", POLICY)
    assert policy["spec"] == declared["ValidatingAdmissionPolicy"]["spec"]
    assert binding["spec"] == {**declared["ValidatingAdmissionPolicyBinding"]["spec"],
                               "policyName": policy["metadata"]["name"]}
    assert not find(render({"gateway": {"enabled": True,
                                        "triggers": {"admissionPolicy": False}}}),
                    "ValidatingAdmissionPolicy", POLICY)


def test_files_mount_the_stage_pods_storage_and_name_the_root() -> None:
    values = {"gateway": {"enabled": True, "files": {"enabled": True}},
              "storage": {"root": "file:///srv/videos", "volume": {"hostPath": {"path": "/srv"}}}}
    (gw,) = find(render(values), "Deployment", "vj-videojob-operator-gateway")
    spec = gw["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert "--storage-root=file:///srv/videos" in c["args"]
    assert {"name": "storage", "mountPath": "/srv/videos"} in c["volumeMounts"]
    assert {"name": "storage", "hostPath": {"path": "/srv"}} in spec["volumes"]
    (off,) = find(render(ON), "Deployment", "vj-videojob-operator-gateway")
    assert not any(a.startswith("--storage-root") for a in
                   off["spec"]["template"]["spec"]["containers"][0]["args"])


def test_files_with_a_file_root_and_no_volume_is_refused_at_install() -> None:
    from videojob_testkit.chart import helm

    out = helm("template", "vj", str(REPO / "helm" / "videojob-operator"),
               "--set", "gateway.enabled=true", "--set", "gateway.files.enabled=true",
               "--set", "storage.root=file:///srv/videos", check=False)
    assert out.returncode != 0 and "gateway.files.volume or storage.volume" in out.stderr
