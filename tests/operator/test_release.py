"""The uninstall hook's patch (release.py): only the operator's finalizer goes, for the version
read."""

from __future__ import annotations

from videojob_operator.api import FINALIZER
from videojob_operator.release import without_finalizer


def test_only_the_operators_finalizer_is_removed_for_the_version_read() -> None:
    vj = {"metadata": {"name": "a", "namespace": "ns", "resourceVersion": "7",
                       "finalizers": ["example.com/keep", FINALIZER]}}
    assert without_finalizer(vj) == {"metadata": {"finalizers": ["example.com/keep"],
                                                  "resourceVersion": "7"}}
    assert without_finalizer({"metadata": {"resourceVersion": "7"}}) is None
    assert without_finalizer({"metadata": {"resourceVersion": "7",
                                           "finalizers": ["example.com/keep"]}}) is None
