from __future__ import annotations

from pathlib import Path

import pytest

from videojob_operator.api import VideoJobSpec
from videojob_operator.config import ConfigError, effective, load


def test_precedence_spec_over_operator_over_builtin(tmp_path: Path) -> None:
    f = tmp_path / "config.yaml"
    f.write_text("defaults:\n  retry_limit: 7\n  stage_seconds: 120\n")
    config = load(str(f), environ={})
    spec = VideoJobSpec.model_validate({"prompt": "x", "retry": {"limit": 1}})
    eff = effective(spec, config, "ns", "n", "u")
    assert eff.retry_limit == 1  # spec
    assert eff.stage_seconds == 120  # operator default
    assert eff.total_seconds == 3600  # built-in
    assert eff.retry_backoff_seconds == 5


def test_zero_in_the_spec_is_a_value_not_unset() -> None:
    config = load(None, environ={})
    spec = VideoJobSpec.model_validate({"prompt": "x", "retry": {"limit": 0}, "gpu": {"count": 0}})
    eff = effective(spec, config, "ns", "n", "u")
    assert eff.retry_limit == 0 and eff.gpu_count == 0


def test_slideshow_scenes_default_to_the_image_count() -> None:
    spec = VideoJobSpec.model_validate({"images": ["file:///a.png", "file:///b.png"]})
    assert effective(spec, load(None, environ={}), "ns", "n", "u").scenes == 2


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    f = tmp_path / "config.yaml"
    f.write_text("storage_root: gs://bucket/root\n")
    config = load(str(f), environ={"VIDEOJOB_REDIS_URL": "redis://r:6379/0"})
    assert config.storage_root == "gs://bucket/root" and config.redis_url == "redis://r:6379/0"
    eff = effective(VideoJobSpec.model_validate({"prompt": "x"}), config, "ns", "n", "u")
    assert eff.output_uri == "gs://bucket/root/ns/n/u/output.mp4"


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    f = tmp_path / "config.yaml"
    f.write_text("defaults:\n  retry_limt: 2\n")
    with pytest.raises(ConfigError, match=r"defaults\.retry_limt"):
        load(str(f), environ={})


def test_worker_secrets_and_volumes_are_checked(tmp_path: Path) -> None:
    f = tmp_path / "config.yaml"
    f.write_text("worker_secret_env:\n  VIDEOJOB_REDIS_URL: {name: redis}\n")
    with pytest.raises(ConfigError, match=r"worker_secret_env\.VIDEOJOB_REDIS_URL\.key"):
        load(str(f), environ={})
    f.write_text("worker_volume_mounts:\n  - {name: gcs-key, mountPath: /var/run/gcs}\n")
    with pytest.raises(ConfigError, match="'gcs-key' is not in worker_volumes"):
        load(str(f), environ={})
    f.write_text("worker_volumes:\n  - {secret: {secretName: k}}\n")
    with pytest.raises(ConfigError, match=r"worker_volumes.*item 0 needs a name"):
        load(str(f), environ={})
