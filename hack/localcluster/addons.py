"""Cluster add-ons of the real-node mode: CoreDNS, as kubeadm installs it.

kubeadm runs CoreDNS as the Deployment `coredns` in kube-system behind the Service `kube-dns`,
with the ServiceAccount, ClusterRole and ConfigMap below. Two differences, both deliberate:
- the Corefile has no `forward` plugin (and the binary has none compiled in, hack/coredns): the
  cluster answers `cluster.local` and nothing else, so no query ever leaves this machine;
- it listens on 1053 as a non-root user without capabilities (the Service maps 53 to it), so
  the pod runs under the restricted Pod Security Standard with a read-only root filesystem.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import yaml

from videojob_common.pipeline import Obj

from .kube import ApiError, Kube

COREDNS_PORT = 1053
COREFILE = f"""\
.:{COREDNS_PORT} {{
    errors
    health {{
        lameduck 5s
    }}
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    prometheus :9153
    cache 30
    loop
    reload
    loadbalance
}}
"""


def coredns(image: str, cluster_ip: str) -> list[Obj]:
    labels = {"k8s-app": "kube-dns"}
    meta = {"name": "coredns", "namespace": "kube-system"}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "system:coredns"},
         "rules": [
             {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
              "verbs": ["list", "watch"]},
             {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
              "verbs": ["list", "watch"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "system:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "system:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": "coredns",
                       "namespace": "kube-system"}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
         "data": {"Corefile": COREFILE}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {**meta, "labels": labels},
         "spec": {
             "replicas": 1,
             "selector": {"matchLabels": labels},
             "template": {
                 "metadata": {"labels": labels},
                 "spec": {
                     "serviceAccountName": "coredns",
                     "priorityClassName": "system-cluster-critical",
                     # Its own answers come from the API server; it needs no cluster DNS.
                     "dnsPolicy": "Default",
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{
                         "name": "coredns",
                         "image": image,
                         "args": ["-conf", "/etc/coredns/Corefile"],
                         "ports": [
                             {"name": "dns", "containerPort": COREDNS_PORT, "protocol": "UDP"},
                             {"name": "dns-tcp", "containerPort": COREDNS_PORT,
                              "protocol": "TCP"},
                             {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
                         ],
                         "resources": {"requests": {"cpu": "50m", "memory": "32Mi"},
                                       "limits": {"memory": "128Mi"}},
                         "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns",
                                           "readOnly": True}],
                         "livenessProbe": {"httpGet": {"path": "/health", "port": 8080},
                                           "initialDelaySeconds": 10, "periodSeconds": 10},
                         "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181},
                                            "periodSeconds": 2},
                         "securityContext": {"allowPrivilegeEscalation": False,
                                             "readOnlyRootFilesystem": True,
                                             "capabilities": {"drop": ["ALL"]}},
                     }],
                     "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                 },
             },
         }},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": "kube-system",
                      "labels": {**labels, "kubernetes.io/name": "CoreDNS"}},
         "spec": {
             "selector": labels,
             "clusterIP": cluster_ip,
             "ports": [
                 {"name": "dns", "port": 53, "targetPort": COREDNS_PORT, "protocol": "UDP"},
                 {"name": "dns-tcp", "port": 53, "targetPort": COREDNS_PORT, "protocol": "TCP"},
                 {"name": "metrics", "port": 9153, "targetPort": 9153, "protocol": "TCP"},
             ],
         }},
    ]


def apply(kubectl: Path, kubeconfig: Path, docs: list[Obj]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump_all(docs, f, sort_keys=False)
        f.flush()
        subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", "apply", "--server-side",
                        "--force-conflicts", "--field-manager=localcluster", "-f", f.name],
                       check=True, capture_output=True)


def coredns_available(api: Kube) -> bool:
    try:
        dep = api.get("/apis/apps/v1/namespaces/kube-system/deployments/coredns")
    except ApiError:
        return False
    return bool(dep.get("status", {}).get("availableReplicas", 0) >= 1)
