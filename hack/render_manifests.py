"""Renders manifests/ from the Helm chart, for `kubectl apply` users (`make manifests`).

- manifests/videojob-operator.yaml: the CRDs, the namespace `videojob-system` and the operator
  with the chart's defaults (cluster-wide, no Redis, file:// storage).
- manifests/monitoring.yaml: ServiceMonitor, PrometheusRule and Grafana dashboard ConfigMaps, for
  clusters running the Prometheus Operator and Grafana's dashboard sidecar.

`--check` exits 1 when the files differ from a fresh rendering (tests/chart runs it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "videojob-operator"
OUT = REPO / "manifests"
NAMESPACE = "videojob-system"
RELEASE = "videojob-operator"
HEADER = ("# Generated from helm/videojob-operator by `make manifests` (hack/render_manifests.py);"
          " do not edit.\n# {what}\n")
# What only Helm can do is left out: a progress key generated once (the operator reads the Secret
# PROGRESS_KEY_SECRET if you create it, else makes one up for its own life), and the uninstall
# hook (docs/tenancy.md gives the order by hand).
PROGRESS_KEY_SECRET = f"{RELEASE}-progress-key"
KUBECTL_SETS = ["--set", f"operator.progressKey.existingSecret={PROGRESS_KEY_SECRET}",
                "--set", "uninstall.releaseFinalizers=false"]
MONITORING = ["prometheus.metrics.serviceMonitor.enabled=true", "prometheus.rules.enabled=true",
              "grafana.dashboards.enabled=true"]


def helm_path() -> str:
    out = subprocess.run([str(REPO / "hack" / "build-helm.sh")], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def template(helm: str, *args: str) -> list[dict[str, object]]:
    out = subprocess.run([helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args],
                         capture_output=True, text=True, check=True)
    return [unhelm(d) for d in yaml.safe_load_all(out.stdout) if d]  # type: ignore[misc]


def unhelm(node: object) -> object:
    """Labels say what manages the objects: kubectl, not Helm."""
    if isinstance(node, dict):
        out = {k: unhelm(v) for k, v in node.items()}
        labels = out.get("labels")
        if isinstance(labels, dict):
            labels.pop("helm.sh/chart", None)
            if labels.get("app.kubernetes.io/managed-by") == "Helm":
                labels["app.kubernetes.io/managed-by"] = "kubectl"
        return out
    if isinstance(node, list):
        return [unhelm(v) for v in node]
    return node


def dump(docs: list[dict[str, object]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True, width=100)


def render() -> dict[Path, str]:
    helm = helm_path()
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": NAMESPACE, "labels": {
            # The operator's pods meet the restricted Pod Security Standard.
            "pod-security.kubernetes.io/enforce": "restricted"}}}
    base = template(helm, "--include-crds", *KUBECTL_SETS)
    crds = [d for d in base if d["kind"] == "CustomResourceDefinition"]
    rest = [d for d in base if d["kind"] != "CustomResourceDefinition"]
    sets = [a for s in MONITORING for a in ("--set", s)]
    monitoring = [d for d in template(helm, *KUBECTL_SETS, *sets)
                  if d["kind"] in ("ServiceMonitor", "PrometheusRule")
                  or (d["kind"] == "ConfigMap" and "grafana_dashboard" in str(d["metadata"]))]
    return {
        OUT / "videojob-operator.yaml": HEADER.format(
            what="kubectl apply --server-side -f manifests/videojob-operator.yaml\n# Then, "
                 "once, the key of progress tokens (docs/tenancy.md): kubectl -n "
                 f"{NAMESPACE} create secret generic {PROGRESS_KEY_SECRET} "
                 "--from-literal=key=\"$(head -c 32 /dev/urandom | base64)\" && kubectl -n "
                 f"{NAMESPACE} rollout restart deployment/{RELEASE}") + dump(
                [*crds, namespace, *rest]),
        OUT / "monitoring.yaml": HEADER.format(
            what="kubectl apply -f manifests/monitoring.yaml (needs the Prometheus Operator)")
        + dump(monitoring),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if manifests/ is stale")
    args = parser.parse_args()
    stale = []
    for path, text in render().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.relative_to(REPO))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print(f"stale (run `make manifests`): {', '.join(map(str, stale))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
