"""The chart's archive (docs/history.md): off by default and then nothing new is rendered; on, the
DSN reaches the operator and the gateway from a Secret only (the administrator's, or the bundled
PostgreSQL's, whose password is generated), the retention policies reach the operator's
ConfigMap, and no new RBAC is asked for."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from videojob_common.pipeline import Obj
from videojob_testkit.chart import CHART, EVERYTHING, deep_merge, find, helm, render

EXTERNAL = {"archive": {"enabled": True,
                        "existingSecret": {"name": "archive-dsn", "key": "url"},
                        "retention": [{"namespace": "*", "maxAgeDays": 30},
                                      {"namespace": "team-a", "maxRows": 5000},
                                      {"namespace": "team-b", "maxAgeDays": 7, "maxRows": 10}],
                        "retentionIntervalSeconds": 600}}
BUNDLED = {"archive": {"enabled": True, "postgres": {"bundled": True}}}
WITH_GATEWAY = {"gateway": {"enabled": True}}
DSN_REF = "VIDEOJOB_ARCHIVE_DSN"
# Everything on but the archive, which each test here sets its own way.
BASE = {k: v for k, v in EVERYTHING.items() if k != "archive"}


def archive_config(docs: list[Obj]) -> Any:
    (cm,) = [d for d in find(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config")]
    return yaml.safe_load(cm["data"]["config.yaml"]).get("archive")


def containers(docs: list[Obj]) -> dict[str, Obj]:
    return {f"{d['metadata']['name']}/{c['name']}": c
            for d in docs if d["kind"] in ("Deployment", "StatefulSet")
            for c in d["spec"]["template"]["spec"]["containers"]}


def dsn_env(docs: list[Obj]) -> dict[str, Obj]:
    return {name: e for name, c in containers(docs).items() for e in c.get("env") or []
            if e["name"] == DSN_REF}


def comparable(docs: list[Obj]) -> list[Obj]:
    """The documents, less what differs from one render to the next: the operator's config
    checksum (any change of values changes it) and generated keys (Secrets' data)."""
    out: list[Obj] = json.loads(json.dumps(docs))
    for d in find(out, "Deployment"):
        (d["spec"]["template"]["metadata"].get("annotations") or {}).pop("checksum/config", None)
    for d in find(out, "Secret"):
        d["data"] = dict.fromkeys(d.get("data") or {}, "(generated)")
    return out


def rules(docs: list[Obj]) -> list[tuple[str, str, Obj]]:
    return sorted(((d["kind"], d["metadata"]["name"], r) for d in docs
                   if d["kind"] in ("ClusterRole", "Role") for r in d["rules"]),
                  key=json.dumps)


def test_off_by_default_renders_nothing_new_whatever_else_is_set() -> None:
    plain = render(WITH_GATEWAY)
    assert archive_config(plain) is None and dsn_env(plain) == {}
    assert not [d for d in plain if "archive" in d["metadata"]["name"]
                or "postgres" in d["metadata"]["name"]]
    off = deep_merge(WITH_GATEWAY, {"archive": {
        "existingSecret": {"name": "archive-dsn"}, "postgres": {"bundled": True},
        "retention": [{"namespace": "team-a", "maxRows": 1}]}})
    assert comparable(render(off)) == comparable(plain)


def test_an_external_dsn_comes_from_its_secret_to_the_operator_and_the_gateway() -> None:
    docs = render(deep_merge(EXTERNAL, WITH_GATEWAY))
    ref = {"valueFrom": {"secretKeyRef": {"name": "archive-dsn", "key": "url"}}}
    assert dsn_env(docs) == {
        "vj-videojob-operator/operator": {"name": DSN_REF, **ref},
        "vj-videojob-operator-gateway/gateway": {"name": DSN_REF, **ref}}
    assert not find(docs, "StatefulSet")
    assert not find(docs, "Secret", "vj-videojob-operator-archive")
    # The operator's contract (its config's `archive:` key): snake_case, absent bounds absent.
    assert archive_config(docs) == {
        "retention": [{"namespace": "*", "max_age_days": 30},
                      {"namespace": "team-a", "max_rows": 5000},
                      {"namespace": "team-b", "max_age_days": 7, "max_rows": 10}],
        "retention_interval_seconds": 600}


def test_the_default_retention_is_ninety_days_and_a_hundred_thousand_rows() -> None:
    assert archive_config(render(BUNDLED)) == {
        "retention": [{"namespace": "*", "max_age_days": 90, "max_rows": 100000}],
        "retention_interval_seconds": 3600}


def test_the_bundled_postgres_is_a_restricted_statefulset_with_a_generated_password() -> None:
    docs = render(deep_merge(BUNDLED, WITH_GATEWAY))
    (sts,) = find(docs, "StatefulSet")
    (svc,) = find(docs, "Service", "vj-videojob-operator-postgres")
    assert svc["spec"]["clusterIP"] == "None"
    assert sts["spec"]["serviceName"] == "vj-videojob-operator-postgres"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert "storageClassName" not in claim["spec"]
    spec = sts["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    (c,) = spec["containers"]
    assert c["image"] == "docker.io/library/postgres:15-bookworm"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["resources"]["limits"]["memory"] == "1Gi"
    writable = {m["mountPath"] for m in c["volumeMounts"]}
    assert writable == {"/var/lib/postgresql/data", "/var/run/postgresql", "/tmp"}
    (secret,) = find(docs, "Secret", "vj-videojob-operator-archive")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert len(data["password"]) == 32
    assert data["dsn"] == (f"postgresql://videojob:{data['password']}@vj-videojob-operator-"
                           "postgres.videojob-system.svc:5432/videojob?connect_timeout=10")
    env = {e["name"]: e for e in c["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "vj-videojob-operator-archive", "key": "password"}
    ref = {"secretKeyRef": {"name": "vj-videojob-operator-archive", "key": "dsn"}}
    assert {k: e["valueFrom"] for k, e in dsn_env(docs).items()} == {
        "vj-videojob-operator/operator": ref, "vj-videojob-operator-gateway/gateway": ref}


def test_the_bundled_postgres_takes_its_image_size_and_class_from_the_values() -> None:
    docs = render({"archive": {"enabled": True, "postgres": {
        "bundled": True, "image": {"repository": "mirror.example/postgres", "tag": "15.9"},
        "port": 6543, "persistence": {"size": "200Gi", "storageClassName": "fast"}}}})
    (sts,) = find(docs, "StatefulSet")
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "mirror.example/postgres:15.9" and c["ports"][0]["containerPort"] == 6543
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert (claim["storageClassName"], claim["resources"]["requests"]["storage"]) == (
        "fast", "200Gi")
    (secret,) = find(docs, "Secret", "vj-videojob-operator-archive")
    assert ".svc:6543/videojob" in base64.b64decode(secret["data"]["dsn"]).decode()


@pytest.mark.parametrize("values", [EXTERNAL, BUNDLED], ids=["external", "bundled"])
def test_the_dsn_is_never_in_a_configmap_or_a_plain_env_value(values: Obj) -> None:
    docs = render(deep_merge(deep_merge(BASE, values), {"gateway": {"files": {
        "enabled": True}}}))
    secrets = [base64.b64decode(v).decode() for s in find(docs, "Secret")
               for v in (s.get("data") or {}).values()]
    dsns = [s for s in secrets if s.startswith("postgresql://")]
    assert len(dsns) == (1 if values is BUNDLED else 0)
    password = dsns[0].split(":")[2].split("@")[0] if dsns else None
    for d in docs:
        if d["kind"] == "Secret":
            continue
        text = yaml.safe_dump(d)
        assert "postgresql://" not in text, d["metadata"]["name"]
        if password:
            assert password not in text, d["metadata"]["name"]
    for name, e in dsn_env(docs).items():
        assert "value" not in e and "secretKeyRef" in e["valueFrom"], name


def test_the_archive_needs_no_new_rbac() -> None:
    base = deep_merge(BASE, {"watch": {"namespaces": ["team-a"]}})
    assert rules(render(deep_merge(base, BUNDLED))) == rules(render(base))
    assert rules(render(deep_merge(base, EXTERNAL))) == rules(render(base))


@pytest.mark.parametrize(("values", "words"), [
    ({"archive": {"enabled": True}}, "archive.enabled needs a PostgreSQL"),
    ({"archive": {"enabled": True, "existingSecret": {"name": "x"},
                  "postgres": {"bundled": True}}}, "not both"),
])
def test_a_half_set_archive_is_refused_saying_what_to_set(values: Obj, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        render(values)


@pytest.mark.parametrize(("values", "field"), [
    ({"archive": {"enabeld": True}}, "/archive"),
    ({"archive": {"retention": [{"namespace": "*", "maxRows": -1}]}},
     "/archive/retention/0/maxRows"),
    ({"archive": {"retention": [{"namespace": "*", "maxAge": 3}]}}, "/archive/retention/0"),
    ({"archive": {"retention": [{"maxRows": 3}]}}, "/archive/retention/0"),
    ({"archive": {"retention": [{"namespace": "Team_A"}]}}, "/archive/retention/0/namespace"),
    ({"archive": {"postgres": {"bundeld": True}}}, "/archive/postgres"),
    ({"archive": {"retentionIntervalSeconds": 0}}, "/archive/retentionIntervalSeconds"),
])
def test_bad_archive_values_are_refused_naming_the_field(values: Obj, field: str) -> None:
    with pytest.raises(ValueError, match=f"at '{field}'"):
        render(values)


@pytest.mark.parametrize("values", [EXTERNAL, BUNDLED], ids=["external", "bundled"])
def test_helm_lint_is_clean_with_the_archive(values: Obj, tmp_path: Path) -> None:
    f = tmp_path / "values.yaml"
    f.write_text(json.dumps(deep_merge(EVERYTHING, values)))
    out = helm("lint", "--strict", str(CHART), "--values", str(f), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
