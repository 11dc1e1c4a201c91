"""API keys (key mode): a key stands for one ServiceAccount in one namespace.

The administrator creates, per key, a Secret in the gateway's key namespace (`--key-namespace`),
labelled `videojob.dev/api-key: "true"`, with three data keys:

- `sha256`: the key's SHA-256, 64 hex digits (the key itself is never stored);
- `namespace`: the only namespace the key may act in;
- `serviceAccount`: the ServiceAccount of that namespace whose RBAC decides what it may do.

The Secret's name identifies the key in the gateway's log; deleting the Secret revokes the key
(the cache watches them). `videojob-gateway new-key` makes a key and prints its Secret.

SHA-256 rather than a slow password hash: a key is 32 random bytes, not something a person
chose, so a dictionary gains nothing, and a fast hash keeps each request cheap. A presented key
is compared with every stored hash in constant time (`hmac.compare_digest`, no early exit).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from videojob_common.pipeline import Obj

PREFIX = "vjk_"  # so a key is told from a Kubernetes token in `Authorization: Bearer`
LABEL = "videojob.dev/api-key"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class InvalidKeySecret(ValueError):
    pass


@dataclass(frozen=True)
class ApiKey:
    """One key's record, from its Secret."""

    id: str  # the Secret's name
    sha256: str
    namespace: str
    service_account: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    @property
    def groups(self) -> tuple[str, ...]:
        # What the API server gives a ServiceAccount (and adds when it is impersonated).
        return ("system:serviceaccounts", f"system:serviceaccounts:{self.namespace}",
                "system:authenticated")


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def from_secret(secret: Obj) -> ApiKey:
    """The record a key Secret holds; InvalidKeySecret naming what is wrong."""
    meta = secret.get("metadata") or {}
    data = secret.get("data") or {}
    name = str(meta.get("name", ""))

    def field(key: str) -> str:
        raw = data.get(key)
        if not raw:
            raise InvalidKeySecret(f"Secret {name}: data.{key} is missing")
        try:
            return base64.b64decode(raw, validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError) as e:
            raise InvalidKeySecret(f"Secret {name}: data.{key} is not base64 text") from e

    sha, namespace, account = field("sha256").lower(), field("namespace"), field("serviceAccount")
    if not _HEX64.match(sha):
        raise InvalidKeySecret(f"Secret {name}: data.sha256 must be 64 hex digits")
    if not _DNS_LABEL.match(namespace):
        raise InvalidKeySecret(f"Secret {name}: data.namespace {namespace!r} is not a namespace")
    if not _DNS_SUBDOMAIN.match(account):
        raise InvalidKeySecret(f"Secret {name}: data.serviceAccount {account!r} is not a name")
    return ApiKey(id=name, sha256=sha, namespace=namespace, service_account=account)


class KeyRing:
    """The keys in force."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self.keys = tuple(keys)

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, presented: str) -> ApiKey | None:
        wanted = digest(presented).encode()
        found = None
        for key in self.keys:  # every one, whatever matched: the time says nothing
            if hmac.compare_digest(wanted, key.sha256.encode()):
                found = key
        return found


def secret_manifest(name: str, key_namespace: str, namespace: str, service_account: str,
                    key: str) -> Obj:
    """The Secret that makes `key` act as `service_account` in `namespace` (InvalidKeySecret
    for a name that is not one)."""
    data = {"sha256": digest(key), "namespace": namespace, "serviceAccount": service_account}
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": name, "namespace": key_namespace, "labels": {LABEL: "true"}},
              "type": "Opaque",
              "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
    from_secret(secret)  # what the gateway would refuse to load is refused here
    return secret
