"""Validated models remembered by the document's content (parsed.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from videojob_operator import parsed as parsed_module
from videojob_operator.api import VideoJobSpec, VideoJobStatus
from videojob_operator.parsed import parsed


def test_an_equal_document_gets_the_same_model_and_a_changed_one_a_new_one() -> None:
    spec = {"prompt": "a lighthouse", "scenes": 3}
    first = parsed(VideoJobSpec, spec)
    assert first == VideoJobSpec.model_validate(spec)
    # Equal content, another dict, keys in another order: the model validated before.
    assert parsed(VideoJobSpec, {"scenes": 3, "prompt": "a lighthouse"}) is first
    changed = parsed(VideoJobSpec, {**spec, "scenes": 4})
    assert changed is not first and changed.scenes == 4
    # The same document read as another model is that model's.
    assert isinstance(parsed(VideoJobStatus, {}), VideoJobStatus)


def test_an_invalid_document_raises_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ValidationError, match="scenes"):
            parsed(VideoJobSpec, {"prompt": "x", "scenes": -1})


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsed_module, "SIZE", 3)
    monkeypatch.setattr(parsed_module, "_seen", type(parsed_module._seen)())
    first = parsed(VideoJobSpec, {"prompt": "p0"})
    for i in range(1, 5):
        parsed(VideoJobSpec, {"prompt": f"p{i}"})
    assert len(parsed_module._seen) == 3
    assert all(len(digest) == 16 for _, digest in parsed_module._seen)  # no document kept
    assert parsed(VideoJobSpec, {"prompt": "p0"}) is not first  # dropped, validated again


def test_a_huge_document_is_validated_but_not_remembered() -> None:
    images = [f"gs://bucket/{'x' * 1000}/{i}.png" for i in range(32)]
    spec = {"prompt": "p", "images": images}
    first = parsed(VideoJobSpec, spec)
    assert first.images == images
    assert parsed(VideoJobSpec, spec) is not first  # validated again, nothing kept
