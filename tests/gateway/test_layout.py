"""Where the gateway may write and read: the namespace's lane of the storage root, the same
lane the operator enforces (videojob_operator.storage_policy), checked on the same URIs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from videojob_gateway import layout, sniff, uploads
from videojob_gateway.layout import StorageRoot
from videojob_operator import storage_policy

ROOTS = ["file:///var/lib/videojob/artifacts", "gs://videos/videojob", "gs://videos"]
ODD_NAMES = ["../../etc/passwd", "..\\..\\boot.ini", "/etc/shadow.png", "a\x00b.png",
             "\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fx.png", "café au lait.jpg", "写真.jpg",
             "%2e%2e%2fx.png", "x?y#z.png",
             " .hidden", "a" * 300 + ".png", "CON", "", None, "x.png\r\nX-Evil: 1",
             "\u202egnp.exe"]


def test_a_storage_root_is_a_clean_gs_or_file_uri() -> None:
    assert StorageRoot.parse("file:///data/").uri == "file:///data"
    assert StorageRoot.parse("gs://b/p/").uri == "gs://b/p"
    assert StorageRoot.parse("gs://b").scheme == "gs"
    assert StorageRoot.parse("file:///data").scheme == "file"
    for bad in ["/data", "s3://b/p", "file://host/data", "file:///", "gs://", "gs:///p",
                "file:///data/../etc", "gs://b/p/./q", "gs://b/p%2F..", "file:///a//b",
                "gs://b/p?x=1", "file:///da ta", "http://example.com/x"]:
        with pytest.raises(ValueError):
            StorageRoot.parse(bad)


def test_lanes_and_the_uploads_folder() -> None:
    root = StorageRoot.parse("gs://videos/videojob")
    assert root.lane("team-a") == "gs://videos/videojob/team-a/"
    assert root.uploads("team-a") == "gs://videos/videojob/team-a/_uploads/"
    upload_id = layout.new_upload_id(datetime(2026, 12, 6, 11, 19, 15, tzinfo=UTC),
                                     "3f9c2a1b7d4e5f60")
    assert upload_id == "20261206-111915-3f9c2a1b7d4e5f60"
    assert root.upload("team-a", upload_id) == \
        "gs://videos/videojob/team-a/_uploads/20261206-111915-3f9c2a1b7d4e5f60/"
    assert layout.valid_upload_id(layout.new_upload_id(datetime.now(UTC)))
    for bad_ns in ["..", "Team-A", "a/b", "", "-a", "a" * 64, "team_a"]:
        with pytest.raises(ValueError):
            root.lane(bad_ns)
    for bad_id in ["..", "x", "20261206-111915-3F9C2A1B7D4E5F60", upload_id + "/x"]:
        with pytest.raises(ValueError):
            root.upload("team-a", bad_id)
    assert root.parts("gs://videos/videojob/team-a/x/y.mp4") == ["team-a", "x", "y.mp4"]
    with pytest.raises(ValueError):
        root.parts("gs://videos/other/team-a/x.mp4")


@pytest.mark.parametrize(("uri", "served"), [
    ("gs://videos/videojob/team-a/hello/5704bf43/output.mp4", True),
    ("gs://videos/videojob/team-a/_uploads/x.mp4", True),
    ("gs://videos/videojob/team-b/hello/output.mp4", False),  # another namespace
    ("gs://videos/videojob/team-a-evil/output.mp4", False),  # a name that starts the same
    ("gs://videos/videojob/team-a", False),
    ("gs://videos/videojob/team-a/", False),  # the lane, not a file
    ("gs://videos/videojob/team-a/out/", False),
    ("gs://videos/videojob/team-a/../team-b/output.mp4", False),
    ("gs://videos/videojob/team-a/%2e%2e/team-b/output.mp4", False),
    ("gs://videos/videojob/team-a//output.mp4", False),
    ("gs://videos/videojob/team-a/./output.mp4", False),
    ("gs://videos/videojob/team-a/output.mp4?alt=media", False),
    ("gs://videos/videojob/team-a/output.mp4#x", False),
    ("gs://videos/videojob/team-a/a\\..\\b.mp4", False),
    ("gs://other/videojob/team-a/output.mp4", False),  # another bucket
    ("gs://videos/videojobx/team-a/output.mp4", False),
    ("file:///videos/videojob/team-a/output.mp4", False),  # another scheme
    ("https://example.com/team-a/output.mp4", False),
    ("gs://videos/videojob/team-a/out\nput.mp4", False),
    ("", False),
])
def test_a_download_is_served_only_from_the_namespaces_lane(uri: str, served: bool) -> None:
    root = StorageRoot.parse("gs://videos/videojob")
    assert (root.outside(uri, "team-a") is None) == served
    if served:  # the operator would have let the VideoJob write it too
        assert storage_policy.problems(uri, [], None, storage_root=root.uri, namespace="team-a",
                                       read_prefixes={}, http=storage_policy.HttpInputs()) == []


@pytest.mark.parametrize("uri", [
    "gs://b/p/a/../b", "gs://b/p/%41", "gs://b/p//a", "gs://b/p/./a", "gs://b/p/a?x",
    "gs://b/p/a#x", "file://h/p/a", "file:///p/a\\b", "gs://b/p/a", "file:///p/a",
    "file:///p/.", "gs://b/p/..", "gs://b/p/a/", "file:///p/a b",
])
def test_the_gateway_refuses_every_uri_the_operator_refuses(uri: str) -> None:
    operator_refuses = storage_policy._unclean(uri) is not None
    if operator_refuses:
        assert layout.unclean(uri) is not None


@pytest.mark.parametrize("root_uri", ROOTS)
def test_uploaded_files_are_inputs_the_operator_accepts(root_uri: str) -> None:
    root = StorageRoot.parse(root_uri)
    prefix = root.upload("team-a", layout.new_upload_id(datetime.now(UTC)))
    images = [prefix + uploads.stored_name(i, name, sniff.PNG) for i, name in enumerate(ODD_NAMES)]
    audio = prefix + uploads.stored_name(len(images), "../../song.wav", sniff.WAV)
    for uri in [*images, audio]:
        assert uri.startswith(root.uploads("team-a"))
        assert "/".join(root.parts(uri)[:3]) == f"team-a/{layout.UPLOADS}/{root.parts(uri)[2]}"
        assert len(root.parts(uri)) == 4  # no name adds a folder
    # The operator's rule, as the planner applies it to a VideoJob in team-a.
    assert storage_policy.problems(None, images, audio, storage_root=root_uri,
                                   namespace="team-a", read_prefixes={},
                                   http=storage_policy.HttpInputs()) == []
    # ...and not in another namespace.
    assert len(storage_policy.problems(None, images, audio, storage_root=root_uri,
                                       namespace="team-b", read_prefixes={},
                                       http=storage_policy.HttpInputs())) == len(images) + 1
