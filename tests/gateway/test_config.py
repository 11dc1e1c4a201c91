"""Settings: flags over environment over defaults, checked once."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from videojob_gateway.config import load


def test_defaults_and_the_kubeconfig_from_the_environment() -> None:
    s = load([], {"KUBECONFIG": "/k/config:/other"})
    assert (s.host, s.port, s.auth_modes, s.max_body_bytes) == (
        "127.0.0.1", 8080, frozenset({"token"}), 262144)
    assert s.kubeconfig == Path("/k/config")
    assert load([], {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}).kubeconfig is None  # in-cluster
    assert load([], {}).continue_key != load([], {}).continue_key  # random per process


def test_a_flag_wins_over_the_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"shared-secret\n")
    env = {"VIDEOJOB_GATEWAY_PORT": "9000", "VIDEOJOB_GATEWAY_AUTH_MODES": "token, key",
           "VIDEOJOB_GATEWAY_KEY_NAMESPACE": "gw", "KUBECONFIG": "/k"}
    s = load(["--port", "9100", "--continue-key-file", str(key_file)], env)
    assert (s.port, s.auth_modes, s.key_namespace) == (9100, frozenset({"token", "key"}), "gw")
    assert s.continue_key.get_secret_value() == b"shared-secret"
    assert "shared-secret" not in repr(s)


def test_inconsistent_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="key-namespace"):
        load(["--auth-modes", "key"], {"KUBECONFIG": "/k"})
    with pytest.raises(ValidationError):
        load(["--auth-modes", "password"], {"KUBECONFIG": "/k"})
    with pytest.raises(ValidationError, match="list-default"):
        load(["--list-default", "600"], {"KUBECONFIG": "/k"})


def test_trigger_settings() -> None:
    s = load([], {"KUBECONFIG": "/k"})
    assert (s.triggers, s.trigger_timestamp_tolerance_seconds, s.trigger_replay_entries,
            s.trigger_key_cache_seconds) == (True, 300.0, 100_000, 10.0)
    s = load(["--triggers", "false", "--trigger-timestamp-tolerance-seconds", "60"],
             {"KUBECONFIG": "/k", "VIDEOJOB_GATEWAY_TRIGGER_REPLAY_ENTRIES": "5"})
    assert (s.triggers, s.trigger_timestamp_tolerance_seconds, s.trigger_replay_entries) == (
        False, 60.0, 5)
    with pytest.raises(ValidationError):
        load(["--trigger-timestamp-tolerance-seconds", "0"], {"KUBECONFIG": "/k"})


def test_the_download_link_key_and_lifetime(tmp_path: Path) -> None:
    assert load([], {}).download_link_key != load([], {}).download_link_key  # random per process
    assert load([], {}).download_link_seconds == 300
    key_file = tmp_path / "link-key"
    key_file.write_bytes(b"a key replicas share, 32 bytes.\n")
    s = load(["--download-link-key-file", str(key_file), "--download-link-seconds", "60"], {})
    assert s.download_link_key.get_secret_value() == b"a key replicas share, 32 bytes."
    assert s.download_link_seconds == 60
    assert "replicas share" not in repr(s)
    key_file.write_bytes(b"short\n")
    with pytest.raises(ValidationError, match="at least 16 bytes"):
        load(["--download-link-key-file", str(key_file)], {})
    with pytest.raises(ValidationError):  # no link lives longer than 5 minutes
        load(["--download-link-seconds", "301"], {})
