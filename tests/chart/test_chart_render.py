"""The Helm chart, rendered with the pinned helm: lint, schema, security, RBAC and the operator
configuration it produces. (It installs and runs on the cluster in tests/e2e/test_helm.py.)"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from videojob_common.pipeline import STAGES, Obj
from videojob_operator.config import load
from videojob_testkit import REPO, rbac
from videojob_testkit.chart import (
    CHART,
    EVERYTHING,
    MUTATING_POLICY_API,
    deep_merge,
    find,
    helm,
    render,
)


def pod_specs(docs: list[Obj]) -> list[tuple[str, Obj]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs
            if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")]


def operator_config(docs: list[Obj]) -> Obj:
    (cm,) = [d for d in find(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config")]
    parsed: Obj = yaml.safe_load(cm["data"]["config.yaml"])
    return parsed


@pytest.mark.parametrize("values", [{}, EVERYTHING, {"watch": {"namespaces": ["a", "b"]}}],
                         ids=["defaults", "everything", "namespaced"])
def test_helm_lint_is_clean(values: Obj, tmp_path: Path) -> None:
    f = tmp_path / "values.yaml"
    f.write_text(json.dumps(values))
    out = helm("lint", "--strict", str(CHART), "--values", str(f), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


def test_every_value_is_documented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    ancestors: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if not m:
            continue
        indent = len(m.group(1))
        while ancestors and ancestors[-1][0] >= indent:
            ancestors.pop()
        # Documented: a `# --` comment block right above the key.
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#") and "# --" not in lines[j]:
            j -= 1
        documented = j >= 0 and lines[j].strip().startswith("# --")
        nxt = next((x for x in lines[i + 1:] if x.strip()), "")
        parent = line.rstrip().endswith(":") and len(nxt) - len(nxt.lstrip()) > indent
        # Leaves need their own comment, or one on a mapping they are the default value of.
        if not parent and not documented and not any(d for _, d in ancestors):
            undocumented.append(m.group(2))
        ancestors.append((indent, documented))
    assert undocumented == []


@pytest.mark.parametrize(("values", "field"), [
    ({"image": {"tga": "x"}}, "/image"),
    ({"pools": {"gpu": {"strategy": "fast"}}}, "/pools/gpu/strategy"),
    ({"pools": {"gpu": {"maxConcurrency": "lots"}}}, "/pools/gpu/maxConcurrency"),
    ({"storage": {"root": "s3://bucket"}}, "/storage/root"),
    ({"watch": {"namespaces": ["Not_A_Namespace"]}}, "/watch/namespaces/0"),
    ({"defaults": {"retryLimit": -1}}, "/defaults/retryLimit"),
    ({"operator": {"metricsPort": 0}}, "/operator/metricsPort"),
    ({"storage": {"readPrefixes": {"*": ["gs://shared"]}}}, "/storage/readPrefixes/*/0"),
    ({"httpInputs": {"enabeld": True}}, "/httpInputs"),
    ({"notify": {"allowNetwork": {}}}, "/notify"),
    ({"notify": {"maxAttempts": 0}}, "/notify/maxAttempts"),
])
def test_bad_values_are_refused_naming_the_field(values: Obj, field: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"at '{field}'")):
        render(values)


def test_crds_are_the_repository_crds() -> None:
    for crd in sorted((REPO / "crds").glob("*.yaml")):
        assert (CHART / "crds" / crd.name).read_text() == crd.read_text(), crd.name
    assert {p.name for p in (CHART / "crds").iterdir()} == {
        p.name for p in (REPO / "crds").glob("*.yaml")}


@pytest.mark.parametrize("values", [{}, EVERYTHING], ids=["defaults", "everything"])
def test_every_pod_and_container_is_restricted(values: Obj) -> None:
    specs = pod_specs(render(values))
    assert specs
    for name, spec in specs:
        psc = spec.get("securityContext", {})
        assert psc.get("runAsNonRoot") is True, name
        assert psc.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}, (name, c["name"])
            assert "resources" in c, (name, c["name"])


def test_operator_runs_one_replica_recreated_with_probes() -> None:
    (dep,) = find(render(), "Deployment")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "ghcr.io/videojob/operator:0.1.0"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert "--liveness=http://0.0.0.0:8080/healthz" in c["args"]
    assert "--metrics-port=9090" in c["args"]


def rules_of(docs: list[Obj]) -> list[tuple[str, str, Obj]]:
    return [(d["kind"], d["metadata"].get("namespace", ""), r) for d in docs
            if d["kind"] in ("ClusterRole", "Role") for r in d["rules"]]


@pytest.mark.parametrize("values", [{}, {"watch": {"namespaces": ["team-a", "team-b"]}}],
                         ids=["cluster-wide", "namespaced"])
def test_rbac_is_least_privilege(values: Obj) -> None:
    rules = rules_of(render(values))
    for kind, _, r in rules:
        assert "*" not in r["verbs"] and "*" not in r["resources"], r
        if "secrets" in r["resources"]:  # no Secret read anywhere: only progress tokens made
            assert (r["resources"], r["verbs"]) == (["secrets"], ["create"]), (kind, r)
        assert not any(res.startswith("pods/") for res in r["resources"]), r  # no exec, no log
    jobs = [(kind, ns) for kind, ns, r in rules if "jobs" in r["resources"]]
    if values:  # namespaced: Jobs only through a Role in each served namespace
        assert sorted(jobs) == [("Role", "team-a"), ("Role", "team-b")]
        docs = render(values)
        (dep,) = find(docs, "Deployment")
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--namespace=team-a" in args and "--namespace=team-b" in args
        sas = find(docs, "ServiceAccount", "videojob-worker")
        assert sorted(sa["metadata"]["namespace"] for sa in sas) == ["team-a", "team-b"]
    else:
        assert jobs == [("ClusterRole", "")]
    config_rules = [r for kind, _, r in rules if "configmaps" in r["resources"]]
    assert config_rules == [{"apiGroups": [""], "resources": ["configmaps"],
                             "resourceNames": ["vj-videojob-operator-config"],
                             "verbs": ["watch"]}]


def test_rbac_is_what_docs_tenancy_lists() -> None:
    """The rules rendered in namespaced mode, flattened, are the `kubectl auth can-i --list`
    block of docs/tenancy.md (which tests/e2e/test_realnodes.py compares with the requests the
    operator makes, from the API server's audit log)."""
    installed = [d for d in render({"watch": {"namespaces": ["team-a"]}})
                 if "helm.sh/hook" not in (d["metadata"].get("annotations") or {})]
    granted = {rbac.Grant(g, res, v, name.replace("vj-videojob-operator", "videojob-operator"))
               for kind, ns, r in rules_of(installed)
               for g in r["apiGroups"] for res in r["resources"] for v in r["verbs"]
               for name in r.get("resourceNames") or [""]}
    docs = (REPO / "docs" / "tenancy.md").read_text()
    block = rbac.fenced_block(docs, "**What the operator's ServiceAccount may do**")
    listed, _ = rbac.parse_can_i(block)
    assert granted == listed, rbac.render(granted)


def test_rendered_configuration_is_what_the_operator_accepts() -> None:
    cfg = load(text=yaml.safe_dump(operator_config(render())), environ={})
    assert cfg.worker_image == "ghcr.io/videojob/worker:0.1.0"
    assert cfg.worker_service_account == "videojob-worker"
    assert cfg.redis_url is None and cfg.defaults.gpu_tolerations[0].key == "nvidia.com/gpu"

    values = deep_merge(EVERYTHING, {"pools": {"gpu": {"maxConcurrency": 4, "strategy": "eager"}},
                                     "defaults": {"retryLimit": 5},
                                     "gpu": {"nodeSelector": {"cloud.google.com/gke-accelerator":
                                                              "nvidia-l4"}}})
    cfg = load(text=yaml.safe_dump(operator_config(render(values))), environ={})
    assert cfg.pools["gpu"].max_concurrency == 4 and cfg.pools["gpu"].strategy == "eager"
    assert cfg.pools["cpu"].stages == ["plan", "narrate", "stitch", "publish"]  # built-in
    assert cfg.defaults.retry_limit == 5
    assert cfg.defaults.gpu_node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    # The bundled Redis's URL carries its password: from its Secret, never in the ConfigMap.
    assert cfg.redis_url is None
    assert cfg.worker_secret_env["VIDEOJOB_REDIS_URL"].name == "vj-videojob-operator-redis-auth"
    assert cfg.worker_env["GOOGLE_APPLICATION_CREDENTIALS"] == (
        "/var/run/secrets/videojob/gcs/key.json")
    assert {v["name"] for v in cfg.worker_volumes} == {"storage", "gcs-credentials"}
    assert {"name": "storage", "mountPath": "/var/lib/videojob/artifacts"} in (
        cfg.worker_volume_mounts)
    (sa,) = find(render(values), "ServiceAccount", "videojob-worker")
    assert sa["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "render@project.iam.gserviceaccount.com"}


def test_what_tenants_may_read_is_the_values() -> None:
    cfg = load(text=yaml.safe_dump(operator_config(render())), environ={})
    assert cfg.read_prefixes == {} and not cfg.http_inputs.enabled
    values = {"storage": {"readPrefixes": {"*": ["gs://shared-assets/"],
                                           "team-a": ["gs://team-a-in/raw/"]}},
              "httpInputs": {"enabled": True, "hosts": ["*.cdn.example.net"],
                             "allowNetworks": ["10.20.0.0/16"], "maxBytes": 1000000,
                             "timeoutSeconds": 10}}
    cfg = load(text=yaml.safe_dump(operator_config(render(values))), environ={})
    assert cfg.read_prefixes == {"*": ["gs://shared-assets/"], "team-a": ["gs://team-a-in/raw/"]}
    assert (cfg.http_inputs.enabled, cfg.http_inputs.hosts, cfg.http_inputs.allow_networks,
            cfg.http_inputs.max_bytes, cfg.http_inputs.timeout_seconds) == (
        True, ["*.cdn.example.net"], ["10.20.0.0/16"], 1000000, 10)


def test_the_notify_policy_is_the_values() -> None:
    """Webhook destinations: public addresses only by default; the administrator allows
    networks by namespace (docs/tenancy.md), and sets the retries."""
    cfg = load(text=yaml.safe_dump(operator_config(render())), environ={})
    assert cfg.notify.allow_networks == {} and cfg.notify.max_attempts == 8
    assert (cfg.notify.backoff_seconds, cfg.notify.max_backoff_seconds) == (5, 300)
    values = {"notify": {"allowNetworks": {"*": ["10.20.0.0/16"], "team-a": ["fd00::/8"]},
                         "maxAttempts": 3, "backoffSeconds": 0.5, "maxBackoffSeconds": 30,
                         "timeoutSeconds": 4, "secretTTLSeconds": 15}}
    cfg = load(text=yaml.safe_dump(operator_config(render(values))), environ={})
    assert cfg.notify.allow_networks == {"*": ["10.20.0.0/16"], "team-a": ["fd00::/8"]}
    assert (cfg.notify.max_attempts, cfg.notify.backoff_seconds, cfg.notify.max_backoff_seconds,
            cfg.notify.timeout_seconds, cfg.notify.secret_ttl_seconds) == (3, 0.5, 30, 4, 15)


def test_ceilings_and_placement_are_the_values() -> None:
    cfg = load(text=yaml.safe_dump(operator_config(render())), environ={})
    # By default no ceiling; every stage pod gets the chart's measured resources and a /scratch
    # size limit, in every namespace.
    assert set(cfg.limits) == {"*"} and cfg.placement.tenant_toleration_keys == []
    default = cfg.limits["*"]
    assert default.model_dump(exclude={"pod_resources", "scratch_size_limit"},
                              exclude_none=True) == {}
    assert set(default.pod_resources or {}) == set(STAGES)
    assert all(r.requests.get("memory") and r.limits.get("memory")
               for r in (default.pod_resources or {}).values())
    assert default.scratch_size_limit == "2Gi"
    own = load(text=yaml.safe_dump(operator_config(render({"limits": {"*": {
        "scratchSizeLimit": "1Gi", "podResources": {"plan": {"limits": {"memory": "1Gi"}}}},
        "team-a": {"scratchSizeLimit": "5Gi"}}}))), environ={}).limits
    assert own["*"].scratch_size_limit == "1Gi" and own["team-a"].scratch_size_limit == "5Gi"
    assert set(own["*"].pod_resources or {}) == {"plan"}  # the administrator's, not merged
    values = {"limits": {"*": {"maxGpusPerPod": 2, "maxPixelFrames": 3732480000,
                               "minPriority": -10, "maxPriority": 10},
                         "team-a": {"maxGpusPerVideojob": 16}},
              "gpu": {"tenantTolerationKeys": ["example.com/spot"]}}
    cfg = load(text=yaml.safe_dump(operator_config(render(values))), environ={})
    assert cfg.limits["*"].max_gpus_per_pod == 2
    assert cfg.limits["*"].max_pixel_frames == 3732480000
    assert (cfg.limits["*"].min_priority, cfg.limits["*"].max_priority) == (-10, 10)
    assert cfg.limits["team-a"].max_gpus_per_videojob == 16
    assert cfg.placement.tenant_toleration_keys == ["example.com/spot"]
    with pytest.raises(ValueError, match=re.escape("at '/limits/*'")):
        render({"limits": {"*": {"maxGPUs": 1}}})


def test_redis_password_stays_in_its_secret() -> None:
    docs = render({"redis": {"existingSecret": "redis-auth", "bundled": {"enabled": True}}})
    cfg = load(text=yaml.safe_dump(operator_config(docs)), environ={})
    assert cfg.redis_url is None  # nothing in plain text, and no bundled Redis either
    assert cfg.worker_secret_env["VIDEOJOB_REDIS_URL"].name == "redis-auth"
    assert [d["metadata"]["name"] for d in find(docs, "Deployment")] == ["vj-videojob-operator"]
    (dep,) = find(docs, "Deployment")
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["VIDEOJOB_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "redis-auth", "key": "redis-url"}


def test_the_bundled_redis_has_a_password_only_its_secrets_hold() -> None:
    docs = render({"redis": {"bundled": {"enabled": True}},
                   "watch": {"namespaces": ["team-a", "team-b"]}})
    secrets = find(docs, "Secret", "vj-videojob-operator-redis-auth")
    assert sorted(s["metadata"]["namespace"] for s in secrets) == [
        "team-a", "team-b", "videojob-system"]
    password = base64.b64decode(secrets[0]["data"]["password"]).decode()
    assert len(password) == 32 and password.isalnum()
    assert {base64.b64decode(s["data"]["redis-url"]).decode() for s in secrets} == {
        f"redis://:{password}@vj-videojob-operator-redis.videojob-system.svc:6379/0"}
    others = [d for d in docs if d["kind"] != "Secret"]
    assert password not in yaml.safe_dump_all(others)  # nowhere else, in no encoding
    assert base64.b64encode(password.encode()).decode() not in yaml.safe_dump_all(others)
    cfg = load(text=yaml.safe_dump(operator_config(docs)), environ={})
    assert cfg.redis_url is None
    assert cfg.worker_secret_env["VIDEOJOB_REDIS_URL"].name == "vj-videojob-operator-redis-auth"
    redis, operator = (next(d for d in find(docs, "Deployment") if d["metadata"]["name"] == n)
                       for n in ("vj-videojob-operator-redis", "vj-videojob-operator"))
    container = redis["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-2:] == ["--requirepass", "$(REDIS_PASSWORD)"]
    assert container["env"] == [{"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {
        "name": "vj-videojob-operator-redis-auth", "key": "password"}}}]
    env = {e["name"]: e for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["VIDEOJOB_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "vj-videojob-operator-redis-auth", "key": "redis-url"}


def test_pool_changes_do_not_restart_the_operator_but_other_settings_do() -> None:
    def checksum(values: Obj) -> str:
        (dep,) = find(render(values), "Deployment")
        return str(dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    base = checksum({})
    assert checksum({"pools": {"gpu": {"maxConcurrency": 8}}}) == base  # applied live
    assert checksum({"storage": {"root": "gs://bucket/videos"}}) != base


def test_monitoring_objects_carry_the_repository_rules_and_dashboards() -> None:
    docs = render(EVERYTHING)
    (rule,) = find(docs, "PrometheusRule")
    alerts = yaml.safe_load((CHART / "alerts" / "videojob-alerts.yaml").read_text())
    assert rule["spec"] == alerts
    dashboards = [d for d in find(docs, "ConfigMap")
                  if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    files = sorted((CHART / "dashboards").glob("*.json"))
    assert len(dashboards) == len(files) >= 1
    for cm, f in zip(sorted(dashboards, key=lambda d: d["metadata"]["name"]), files, strict=True):
        assert json.loads(cm["data"][f.name]) == json.loads(f.read_text())
    (sm,) = find(docs, "ServiceMonitor")
    (svc,) = [s for s in find(docs, "Service") if s["metadata"]["name"].endswith("-metrics")]
    # The alerts select job="videojob-operator", whatever the release is called.
    assert svc["metadata"]["labels"][sm["spec"]["jobLabel"]] == "videojob-operator"
    (pm,) = find(docs, "PodMonitor")
    assert pm["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["replacement"] == (
        "videojob-operator")
    assert len(find(docs, "NetworkPolicy")) == 2


def test_switches_off_render_no_optional_objects() -> None:
    kinds = {d["kind"] for d in render({
        "admissionPolicy": {"enabled": False}, "uninstall": {"releaseFinalizers": False},
        "operator": {"progressKey": {"existingSecret": "mine"}}})}
    assert kinds == {"ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding", "Role",
                     "RoleBinding", "Deployment", "Service", "PersistentVolumeClaim"}
    # On by default: the admission policy refusing what the operator would fail anyway, the
    # uninstall hook, and a generated progress key.
    assert {d["kind"] for d in render()} - kinds == {
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "Job", "Secret"}


@pytest.mark.parametrize("values", [{}, {"watch": {"namespaces": ["team-a", "team-b"]}}],
                         ids=["cluster-wide", "namespaced"])
def test_uninstall_runs_a_hook_that_stops_the_operator_and_releases_its_finalizers(
        values: Obj) -> None:
    docs = render(values)
    hooks = [d for d in docs
             if (d["metadata"].get("annotations") or {}).get("helm.sh/hook") == "pre-delete"]
    assert sorted(d["kind"] for d in hooks) == ["Job", "Role", "RoleBinding"]
    (job,) = find(hooks, "Job")
    (role,) = find(hooks, "Role")
    weight = {d["kind"]: int(d["metadata"]["annotations"]["helm.sh/hook-weight"]) for d in hooks}
    assert weight["Role"] < weight["Job"] and weight["RoleBinding"] < weight["Job"]
    assert role["rules"] == [{"apiGroups": ["apps"], "resources": ["deployments"],
                              "resourceNames": ["vj-videojob-operator"],
                              "verbs": ["get", "patch"]}]
    pod = job["spec"]["template"]
    (operator,) = find(docs, "Deployment", "vj-videojob-operator")
    assert pod["spec"]["serviceAccountName"] == "vj-videojob-operator"
    selector = operator["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= pod["metadata"]["labels"].items()  # not one of its pods
    (container,) = pod["spec"]["containers"]
    assert container["image"] == operator["spec"]["template"]["spec"]["containers"][0]["image"]
    served = [f"--namespace={ns}" for ns in (values.get("watch") or {}).get("namespaces", [])]
    assert container["args"] == ["release", "--deployment=videojob-system/vj-videojob-operator",
                                 *served]


VIDEOJOBS_POLICY = "vj-videojob-operator-videojobs"
JOBS_POLICY = "vj-videojob-operator-operator-jobs"


def test_the_admission_policy_follows_the_storage_root_the_namespaces_and_http_inputs() -> None:
    (policy,) = find(render({"storage": {"root": "gs://media/videojob/"}}),
                     "ValidatingAdmissionPolicy", VIDEOJOBS_POLICY)
    assert policy["spec"]["variables"] == [
        {"name": "prefix", "expression": "\"gs://media/videojob\" + '/' + request.namespace + '/'"}]
    assert len(policy["spec"]["validations"]) == 2
    docs = render({"httpInputs": {"enabled": True, "hosts": ["a.example.com"]},
                   "watch": {"namespaces": ["team-a"]}})
    (policy,) = find(docs, "ValidatingAdmissionPolicy", VIDEOJOBS_POLICY)
    assert len(policy["spec"]["validations"]) == 1  # http(s) inputs are on
    (binding,) = find(docs, "ValidatingAdmissionPolicyBinding", VIDEOJOBS_POLICY)
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a"]}]


@pytest.mark.parametrize("values", [{}, {"watch": {"namespaces": ["team-a"]}}],
                         ids=["cluster-wide", "namespaced"])
def test_the_operators_jobs_are_held_to_the_worker_image_and_account(values: Obj) -> None:
    docs = render(deep_merge(values, {"storage": {"volume": {"hostPath": {
        "path": "/srv/videojob"}}}}))
    (policy,) = find(docs, "ValidatingAdmissionPolicy", JOBS_POLICY)
    (binding,) = find(docs, "ValidatingAdmissionPolicyBinding", JOBS_POLICY)
    assert "matchResources" not in binding["spec"]  # every namespace, whatever the mode
    assert policy["spec"]["matchConditions"] == [{
        "name": "made-by-the-operator", "expression": "request.userInfo.username == "
        "\"system:serviceaccount:videojob-system:vj-videojob-operator\""}]
    rules = " ".join(v["expression"] for v in policy["spec"]["validations"])
    cfg = load(text=yaml.safe_dump(operator_config(docs)), environ={})
    assert f'c.image == "{cfg.worker_image}"' in rules
    assert f'serviceAccountName == "{cfg.worker_service_account}"' in rules
    assert 'v.hostPath.path in ["/srv/videojob"]' in rules


def test_the_default_file_root_is_a_shared_claim_kept_on_uninstall() -> None:
    docs = render({"watch": {"namespaces": ["team-a", "team-b"]}})
    claims = find(docs, "PersistentVolumeClaim")
    assert {c["metadata"]["namespace"] for c in claims} == {"team-a", "team-b"}
    for claim in claims:
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # pods on several nodes
        assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    cfg = load(text=yaml.safe_dump(operator_config(docs)), environ={})
    assert cfg.worker_volumes == [{"name": "storage", "persistentVolumeClaim": {
        "claimName": "videojob-artifacts"}}]
    assert cfg.worker_volume_mounts == [{"name": "storage",
                                         "mountPath": "/var/lib/videojob/artifacts"}]


@pytest.mark.parametrize("storage", [
    {"volume": {"hostPath": {"path": "/srv/videojob"}}},
    {"root": "gs://bucket/videos"},
])
def test_a_given_volume_or_a_bucket_needs_no_claim(storage: dict[str, object]) -> None:
    assert not find(render({"storage": storage}), "PersistentVolumeClaim")


def test_a_file_root_on_no_volume_is_refused_with_the_values_named() -> None:
    with pytest.raises(ValueError) as refused:
        render({"storage": {"persistence": {"enabled": False}}})
    assert "storage.volume" in str(refused.value)
    assert "storage.persistence.enabled" in str(refused.value)


def test_configuration_docs_match_the_values() -> None:
    out = subprocess.run([sys.executable, str(REPO / "hack" / "chart_docs.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_worker_service_account_carries_the_pull_secrets() -> None:
    (sa,) = find(render({"imagePullSecrets": [{"name": "registry"}]}), "ServiceAccount",
                 "videojob-worker")
    assert sa["imagePullSecrets"] == [{"name": "registry"}]
    assert sa["automountServiceAccountToken"] is False


def test_the_progress_key_is_generated_once_and_only_the_operator_reads_it() -> None:
    docs = render({})
    (secret,) = find(docs, "Secret", "vj-videojob-operator-progress-key")
    key = base64.b64decode(secret["data"]["key"]).decode()
    assert len(key) == 48 and key.isalnum()
    others = [d for d in docs if d is not secret]
    assert key not in yaml.safe_dump_all(others)
    assert base64.b64encode(key.encode()).decode() not in yaml.safe_dump_all(others)
    env = operator_env(docs)
    assert env["VIDEOJOB_PROGRESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "vj-videojob-operator-progress-key", "key": "key", "optional": True}
    # An administrator's own Secret instead: none generated.
    docs = render({"operator": {"progressKey": {"existingSecret": "my-key"}}})
    assert not find(docs, "Secret", "vj-videojob-operator-progress-key")
    env = operator_env(docs)
    assert env["VIDEOJOB_PROGRESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "my-key"


def operator_env(docs: list[Obj]) -> dict[str, Obj]:
    (dep,) = find(docs, "Deployment", "vj-videojob-operator")
    return {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_each_namespaces_stage_pods_can_act_as_a_google_account_of_their_own() -> None:
    docs = render({"watch": {"namespaces": ["team-a", "team-b"]},
                   "gcs": {"workloadIdentity": {
                       "serviceAccount": "videojob@project.iam.gserviceaccount.com",
                       "byNamespace": {"team-a": "team-a@project.iam.gserviceaccount.com"}}}})
    accounts = {sa["metadata"]["namespace"]: sa["metadata"]["annotations"][
        "iam.gke.io/gcp-service-account"] for sa in find(docs, "ServiceAccount", "videojob-worker")}
    assert accounts == {"team-a": "team-a@project.iam.gserviceaccount.com",
                        "team-b": "videojob@project.iam.gserviceaccount.com"}


def test_the_cache_values_are_the_operators_cache_configuration() -> None:
    off = load(text=yaml.safe_dump(operator_config(render())), environ={})
    assert not off.cache.enabled
    cfg = load(text=yaml.safe_dump(operator_config(render({"cache": {
        "enabled": True, "shared": [{"name": "farm", "namespaces": ["team-a", "team-b"]}],
        "limits": [{"namespace": "*", "maxBytes": 200_000_000_000, "maxAgeDays": 30},
                   {"namespace": "team-a", "maxBytes": 5_000_000_000}],
        "sweepIntervalSeconds": 60, "writerGraceSeconds": 600}}))), environ={})
    assert cfg.cache.enabled and cfg.cache.shared_by("team-b") == "farm"
    limit = cfg.cache.limit_for("team-a")
    assert limit is not None and limit.max_bytes == 5_000_000_000 and limit.max_age_days is None
    assert cfg.cache.sweep_interval_seconds == 60 and cfg.cache.writer_grace_seconds == 600


@pytest.mark.parametrize("namespaces", [None, ["team-a", "team-b"]],
                         ids=["cluster-wide", "namespaced"])
def test_the_finalizer_policy_is_rendered_where_the_api_server_offers_it(
        namespaces: list[str] | None) -> None:
    """Kubernetes 1.36: a MutatingAdmissionPolicy adds the finalizer at creation, bound to the
    namespaces served; the uninstall hook deletes that binding first, allowed nothing else.
    Older API servers (helm's defaults) get neither, and the operator adds the finalizer."""
    values: Obj = {"watch": {"namespaces": namespaces}} if namespaces else {}
    docs = render(values, api_versions=(MUTATING_POLICY_API,))
    (policy,) = find(docs, "MutatingAdmissionPolicy", "vj-videojob-operator-finalizer")
    (binding,) = find(docs, "MutatingAdmissionPolicyBinding", "vj-videojob-operator-finalizer")
    assert policy["spec"]["failurePolicy"] == "Ignore"  # the operator adds it otherwise
    assert policy["spec"]["matchConstraints"]["resourceRules"] == [
        {"apiGroups": ["videojob.dev"], "apiVersions": ["*"], "operations": ["CREATE"],
         "resources": ["videojobs"]}]
    assert binding["spec"]["policyName"] == "vj-videojob-operator-finalizer"
    selector = (binding["spec"].get("matchResources") or {}).get("namespaceSelector")
    assert selector == ({"matchExpressions": [{"key": "kubernetes.io/metadata.name",
                                               "operator": "In", "values": namespaces}]}
                        if namespaces else None)
    hooks = [d for d in docs
             if (d["metadata"].get("annotations") or {}).get("helm.sh/hook") == "pre-delete"]
    (role,) = find(hooks, "ClusterRole")
    assert role["rules"] == [{"apiGroups": ["admissionregistration.k8s.io"],
                              "resources": ["mutatingadmissionpolicybindings"],
                              "resourceNames": ["vj-videojob-operator-finalizer"],
                              "verbs": ["delete"]}]
    (bound,) = find(hooks, "ClusterRoleBinding")
    assert bound["subjects"] == [{"kind": "ServiceAccount", "name": "vj-videojob-operator",
                                  "namespace": "videojob-system"}]
    (job,) = find(hooks, "Job")
    assert ("--finalizer-policy-binding=vj-videojob-operator-finalizer"
            in job["spec"]["template"]["spec"]["containers"][0]["args"])

    for older in (render(values), render({**values, "admissionPolicy": {"finalizer": False}},
                                         api_versions=(MUTATING_POLICY_API,))):
        assert not [d for d in older if d["kind"].startswith("MutatingAdmissionPolicy")]
        assert not find(older, "ClusterRole", "vj-videojob-operator-release")
