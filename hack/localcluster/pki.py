"""Certificates and kubeconfigs of the local cluster, made with the openssl command line.

One CA signs everything: the API server's serving certificate, a client certificate per component
(each with the identity RBAC expects: `system:kube-controller-manager`, `system:kube-scheduler`,
`system:masters` for the admin), the node agent's serving certificate for its log endpoint, and
the API server's client certificate towards it. A separate RSA key pair signs service-account
tokens. Files are created once and kept, so restarts keep every issued token valid.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from .network import Addresses

DAYS = "3650"
_ADDRS = Addresses()
API_SANS = [
    "DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local", "IP:127.0.0.1",
    f"IP:{_ADDRS.kubernetes_service}",
    # The real-node mode's API server address: pods reach it there through the Service.
    f"IP:{_ADDRS.api_server}",
]


@dataclass(frozen=True)
class Identity:
    name: str  # file stem
    cn: str
    groups: tuple[str, ...] = ()
    usage: str = "clientAuth"
    sans: tuple[str, ...] = ()


IDENTITIES = [
    Identity("apiserver", "kube-apiserver", usage="serverAuth", sans=tuple(API_SANS)),
    Identity("admin", "localcluster-admin", ("system:masters",)),
    Identity("controller-manager", "system:kube-controller-manager"),
    Identity("scheduler", "system:kube-scheduler"),
    # One agent serves several nodes, so it cannot use the per-node identity the Node
    # authorizer expects (system:node:<name>); it runs with cluster-admin rights instead.
    Identity("node-agent", "localcluster-node-agent", ("system:masters",)),
    Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
    Identity("node-agent-serving", "localcluster-node-agent", usage="serverAuth",
             sans=("IP:127.0.0.1", "DNS:localhost")),
]


def kubelet_identities(node: str, ip: str) -> list[Identity]:
    """A real node's kubelet: its client identity is the one the Node authorizer and
    NodeRestriction expect; its serving certificate names the node's IP, or the API server's
    `kubectl logs`/`exec` requests fail TLS verification."""
    return [Identity(f"kubelet-{node}", f"system:node:{node}", ("system:nodes",)),
            Identity(f"kubelet-{node}-serving", f"system:node:{node}", usage="serverAuth",
                     sans=(f"IP:{ip}", f"DNS:{node}"))]


# kube-proxy's user, bound to the built-in `system:node-proxier` ClusterRole.
KUBE_PROXY = Identity("kube-proxy", "system:kube-proxy")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ec_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(path))
    path.chmod(0o600)


def ensure(pki: Path, extra: list[Identity] | None = None) -> None:
    """Creates what is missing: the CA, every identity's key and certificate (those of `extra`
    too), the service-account key pair. A certificate whose SANs no longer match is reissued."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = pki / "ca.key", pki / "ca.crt"
    if not ca_crt.exists():
        _ec_key(ca_key)
        _openssl("req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=localcluster-ca",
                 "-days", DAYS, "-out", str(ca_crt),
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature")
    for ident in [*IDENTITIES, *(extra or [])]:
        key, crt = pki / f"{ident.name}.key", pki / f"{ident.name}.crt"
        sans_file = pki / f"{ident.name}.sans"
        issued = sans_file.read_text() if sans_file.exists() else ""
        if crt.exists() and issued == ",".join(ident.sans):
            continue
        _ec_key(key)
        subject = f"/CN={ident.cn}" + "".join(f"/O={g}" for g in ident.groups)
        csr = pki / f"{ident.name}.csr"
        ext = pki / f"{ident.name}.ext"
        lines = ["basicConstraints=CA:FALSE",
                 "keyUsage=critical,digitalSignature,keyEncipherment",
                 f"extendedKeyUsage={ident.usage}"]
        if ident.sans:
            lines.append("subjectAltName=" + ",".join(ident.sans))
        ext.write_text("\n".join(lines) + "\n")
        _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
                 "-CAcreateserial", "-days", DAYS, "-extfile", str(ext), "-out", str(crt))
        csr.unlink()
        ext.unlink()
        sans_file.write_text(",".join(ident.sans))
    sa_key = pki / "sa.key"
    if not sa_key.exists():
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                 "-out", str(sa_key))
        sa_key.chmod(0o600)
        _openssl("pkey", "-in", str(sa_key), "-pubout", "-out", str(pki / "sa.pub"))


def kubeconfig(pki: Path, identity: str, server: str, path: Path, cluster: str = "localcluster"
               ) -> None:
    """A self-contained kubeconfig (certificates embedded) for one identity."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {
            "server": server, "certificate-authority-data": b64(pki / "ca.crt")}}],
        "users": [{"name": identity, "user": {
            "client-certificate-data": b64(pki / f"{identity}.crt"),
            "client-key-data": b64(pki / f"{identity}.key")}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": identity}}],
        "current-context": cluster,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)
