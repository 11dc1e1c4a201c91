"""API keys: their Secrets, hashing and lookup."""

from __future__ import annotations

import base64
import hashlib

import pytest

from videojob_gateway import keys
from videojob_gateway.keys import ApiKey, InvalidKeySecret, KeyRing


def secret(name: str = "k1", **data: str) -> dict[str, object]:
    values = {"sha256": "a" * 64, "namespace": "team-a", "serviceAccount": "uploader", **data}
    return {"metadata": {"name": name, "labels": {keys.LABEL: "true"}},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items() if v}}


def test_a_new_key_is_long_random_and_prefixed() -> None:
    a, b = keys.new_key(), keys.new_key()
    assert a.startswith("vjk_") and len(a) >= 40 and a != b
    assert keys.digest(a) == hashlib.sha256(a.encode()).hexdigest()


def test_the_secret_printed_for_a_key_is_the_one_the_gateway_reads() -> None:
    key = keys.new_key()
    doc = keys.secret_manifest("uploader-key", "videojob-system", "team-a", "uploader", key)
    assert doc["metadata"] == {"name": "uploader-key", "namespace": "videojob-system",
                               "labels": {"videojob.dev/api-key": "true"}}
    assert key not in str(doc)  # only its hash
    record = keys.from_secret(doc)
    assert record == ApiKey(id="uploader-key", sha256=keys.digest(key), namespace="team-a",
                            service_account="uploader")
    assert KeyRing([record]).find(key) == record
    with pytest.raises(InvalidKeySecret, match="namespace"):
        keys.secret_manifest("k", "videojob-system", "Team_A", "uploader", key)


def test_a_secret_missing_or_mangling_a_field_is_refused_with_the_field_named() -> None:
    with pytest.raises(InvalidKeySecret, match=r"data\.sha256 is missing"):
        keys.from_secret(secret(sha256=""))
    with pytest.raises(InvalidKeySecret, match=r"data\.sha256 must be 64 hex"):
        keys.from_secret(secret(sha256="xyz"))
    with pytest.raises(InvalidKeySecret, match=r"data\.serviceAccount"):
        keys.from_secret(secret(serviceAccount="No Such"))
    bad = secret()
    bad["data"]["namespace"] = "%%%"  # type: ignore[index]
    with pytest.raises(InvalidKeySecret, match="not base64"):
        keys.from_secret(bad)
    assert keys.from_secret(secret(sha256="A" * 64)).sha256 == "a" * 64  # hex in any case


def test_a_ring_finds_the_key_presented_and_nothing_else() -> None:
    k1, k2 = keys.new_key(), keys.new_key()
    ring = KeyRing([ApiKey("one", keys.digest(k1), "team-a", "sa"),
                    ApiKey("two", keys.digest(k2), "team-b", "sa")])
    found = ring.find(k2)
    assert found is not None and found.id == "two"
    assert ring.find(k1 + "x") is None
    assert ring.find(keys.digest(k1)) is None  # the hash is not the key
    assert KeyRing().find(k1) is None
