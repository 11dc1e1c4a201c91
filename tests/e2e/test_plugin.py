"""`kubectl videojob` against a real cluster and the real operator, run as users run it: the
installed `kubectl-videojob` console script in a subprocess, with `--kubeconfig` and `-n`.

Stage pods run the scripted worker (scripted_worker.py), steered by directives in the prompt.
Two things it does not do that a real worker does, and how the tests stand in for them:

- it prints nothing while it succeeds, so the worker output `logs` is tested on comes from a
  stage told to fail: `sleep:plan:oops` makes it die on a malformed number with a Python
  traceback on stderr, which is what a crashing worker leaves in its pod's log;
- its publish stage reports `{"uri": …, "bytes": 1234}` without writing a file, so the download
  test writes those 1234 bytes to the output URI itself, standing in for publish's upload, and
  first shows that `download` refuses what does not match the recorded size.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiException

from videojob_common.pipeline import stages_of
from videojob_testkit import videojobs as vjs
from videojob_testkit.kube import Cluster, wait_for
from videojob_testkit.operator_process import Operator

STAGES = stages_of(narrated=False)  # the stages of a VideoJob without narration

pytestmark = pytest.mark.e2e

PLUGIN = str(Path(sys.executable).parent / "kubectl-videojob")
FAST = {"durationSeconds": 2, "fps": 4, "resolution": "64x64"}


@dataclass
class Plugin:
    """`kubectl-videojob --kubeconfig … -n NAMESPACE ARGS…` as a subprocess."""

    cluster: Cluster
    namespace: str

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 150,
                 **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PLUGIN, "--kubeconfig", str(self.cluster.kubeconfig), "-n", self.namespace, *args],
            input=stdin, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture
def plugin(cluster: Cluster, namespace: str) -> Plugin:
    return Plugin(cluster, namespace)


def manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "videojob.dev/v1alpha1", "kind": "VideoJob",
            "metadata": {"name": name}, "spec": {**FAST, **spec}}


def write(path: Path, *docs: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def pods_of(cluster: Cluster, namespace: str, name: str, stage: str) -> list[str]:
    pods = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"videojob.dev/name={name},videojob.dev/stage={stage}").items
    return sorted(p.metadata.name for p in pods)


def test_submit_then_watch_ends_with_the_output_uri_and_get_shows_it(
        cluster: Cluster, namespace: str, running_operator: Operator, plugin: Plugin,
        tmp_path: Path) -> None:
    path = write(tmp_path / "clips.yaml",
                 manifest("clip", prompt="a coastal city at sunset sleep:stitch:3"),
                 manifest("clip-b", prompt="a forest at dawn"))
    submitted = plugin("submit", "-f", path)
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.splitlines() == ["videojob.videojob.dev/clip created",
                                             "videojob.videojob.dev/clip-b created"]

    watched = plugin("watch", "clip", "--timeout", "120")
    assert watched.returncode == 0, watched.stderr
    status = vjs.get(cluster, namespace, "clip")["status"]
    lines = watched.stdout.splitlines()
    assert lines[-1] == f"output: {status['outputURI']}"
    assert "\x1b" not in watched.stdout  # stdout is a pipe: plain lines, no terminal control
    for stage in STAGES:  # each stage ends with a full bar, printed once: no repeated lines
        final = f"  {stage:<9}  [{'#' * 20}] 100%  Succeeded  done"  # segments adds scenes
        assert len([line for line in lines if line.startswith(final)]) == 1, watched.stdout
    assert any(line.startswith("  stitch") and "Running    frame " in line for line in lines), (
        "stitch's progress messages should show while it runs: " + watched.stdout)

    table = plugin("get")
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    assert rows[0] == ["NAME", "PHASE", "PROGRESS", "STAGE", "QUEUE", "AGE"]
    assert rows[1][:4] == ["clip", "Succeeded", "100%", "publish"]
    assert len(rows[1]) == 5  # QUEUE is an empty cell: the VideoJob is not queued
    assert rows[2][0] == "clip-b"
    wide = plugin("get", "clip", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[6:] == ["OUTPUT", "MESSAGE"]
    assert status["outputURI"] in wide[1]
    as_json = json.loads(plugin("get", "clip", "-o", "json").stdout)
    assert (as_json["metadata"]["name"], as_json["status"]["phase"]) == ("clip", "Succeeded")
    everywhere = plugin("get", "-A").stdout.splitlines()
    assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [namespace, "clip", "Succeeded"] in [r.split()[:3] for r in everywhere]

    # No -n and no --kubeconfig: $KUBECONFIG and its current context's namespace, as kubectl.
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = namespace
    scoped = tmp_path / "kubeconfig"
    scoped.write_text(yaml.safe_dump(config))
    by_context = subprocess.run([PLUGIN, "get", "clip-b", "-o", "name"], capture_output=True,
                                text=True, timeout=60, env={"KUBECONFIG": str(scoped),
                                                            "PATH": "/usr/bin:/bin"})
    assert by_context.returncode == 0, by_context.stderr
    assert by_context.stdout == "videojob.videojob.dev/clip-b\n"


def test_submit_from_stdin_with_watch(cluster: Cluster, namespace: str,
                                      running_operator: Operator, plugin: Plugin) -> None:
    result = plugin("submit", "-f", "-", "--watch",
                    stdin=yaml.safe_dump(manifest("piped", prompt="rain on a window")))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "videojob.videojob.dev/piped created"
    uri = vjs.get(cluster, namespace, "piped")["status"]["outputURI"]
    assert lines[-1] == f"output: {uri}"


def test_an_invalid_manifest_exits_1_naming_the_field(
        cluster: Cluster, namespace: str, running_operator: Operator, plugin: Plugin,
        tmp_path: Path) -> None:
    path = write(tmp_path / "mixed.yaml", manifest("good", prompt="x", suspend=True),
                 manifest("bad", prompt="x", fps=61))
    result = plugin("submit", "-f", path)
    assert result.returncode == 1
    assert result.stdout == "videojob.videojob.dev/good created\n"  # kubectl goes on, too
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "spec.fps" in result.stderr and "less than or equal to 60" in result.stderr
    with pytest.raises(ApiException) as err:
        vjs.get(cluster, namespace, "bad")
    assert err.value.status == 404

    for command in (["get", "bad"], ["watch", "bad"], ["logs", "bad"], ["download", "bad"]):
        missing = plugin(*command)
        assert missing.returncode == 1, command
        assert missing.stderr == 'error: videojobs.videojob.dev "bad" not found\n', command


def test_suspend_and_resume_change_the_spec_and_phase(
        cluster: Cluster, namespace: str, running_operator: Operator, plugin: Plugin,
        tmp_path: Path) -> None:
    path = write(tmp_path / "pausable.yaml", manifest("pausable", prompt="sleep:keyframes:3"))
    assert plugin("submit", "-f", path).returncode == 0
    unchanged = plugin("resume", "pausable")
    assert unchanged.stdout == "videojob.videojob.dev/pausable resumed (no change)\n"
    vjs.wait(cluster, namespace, "pausable",
             lambda vj: (vj.get("status") or {}).get("currentStage") == "keyframes"
             and vj["status"].get("phase") == "Running", timeout=60, what="keyframes running")

    suspended = plugin("suspend", "pausable")
    assert suspended.returncode == 0, suspended.stderr
    assert suspended.stdout == "videojob.videojob.dev/pausable suspended\n"
    assert vjs.get(cluster, namespace, "pausable")["spec"]["suspend"] is True
    vjs.wait(cluster, namespace, "pausable", vjs.phase_is("Suspended"), timeout=30)
    row = plugin("get", "pausable").stdout.splitlines()[1].split()
    assert row[:2] == ["pausable", "Suspended"]
    early = plugin("download", "pausable", "-o", str(tmp_path / "early.mp4"))
    assert early.returncode == 1
    assert "has no output to download: it is Suspended" in early.stderr
    assert not (tmp_path / "early.mp4").exists()

    resumed = plugin("resume", "pausable")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == "videojob.videojob.dev/pausable resumed\n"
    assert vjs.get(cluster, namespace, "pausable")["spec"]["suspend"] is False
    watched = plugin("watch", "pausable", "--timeout", "120")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    late = plugin("suspend", "pausable")
    assert late.returncode == 1
    assert late.stderr == ("error: videojob pausable has already Succeeded; there is nothing "
                           "to suspend\n")


def test_logs_show_the_workers_output_and_watch_reports_the_failure(
        cluster: Cluster, namespace: str, running_operator: Operator, plugin: Plugin,
        tmp_path: Path) -> None:
    # One retry: the plan stage runs two pods, each dying with a traceback.
    path = write(tmp_path / "broken.yaml",
                 manifest("broken", prompt="sleep:plan:oops", retry={"limit": 1}))
    assert plugin("submit", "-f", path).returncode == 0
    watched = plugin("watch", "broken", "--timeout", "120")
    assert watched.returncode == 1
    assert watched.stderr.startswith(
        "error: videojob broken failed in stage plan (RetriesExhausted): failed after 2 "
        "attempts"), watched.stderr
    assert watched.stderr.count("\n") == 1
    assert any(line.startswith("  plan") and "Failed" in line
               for line in watched.stdout.splitlines()), watched.stdout

    pods = pods_of(cluster, namespace, "broken", "plan")
    assert len(pods) == 2
    error = "ValueError: could not convert string to float: 'oops'"
    shown = plugin("logs", "broken")  # the stage it failed in
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    for pod in pods:
        assert f"[pod/{pod}/worker] Traceback (most recent call last):" in lines, shown.stdout
        assert f"[pod/{pod}/worker] {error}" in lines, shown.stdout
    assert all(line.startswith(tuple(f"[pod/{p}/worker] " for p in pods)) for line in lines)

    tail = plugin("logs", "broken", "--stage", "plan", "--tail", "1")
    assert sorted(tail.stdout.splitlines()) == sorted(f"[pod/{p}/worker] {error}" for p in pods)
    followed = plugin("logs", "broken", "-f")  # ends on its own: the containers have exited
    assert followed.returncode == 0, followed.stderr
    assert sorted(followed.stdout.splitlines()) == sorted(lines)
    none_yet = plugin("logs", "broken", "--stage", "segments")
    assert none_yet.returncode == 1
    assert none_yet.stderr == ("error: videojob broken has no pods in stage segments (the stage "
                               "has not started, or its pods were removed)\n")


def test_logs_of_a_single_pod_are_not_prefixed(
        cluster: Cluster, namespace: str, running_operator: Operator, plugin: Plugin,
        tmp_path: Path) -> None:
    path = write(tmp_path / "once.yaml",
                 manifest("once", prompt="sleep:keyframes:oops", retry={"limit": 0}))
    assert plugin("submit", "-f", path).returncode == 0
    assert plugin("watch", "once", "--timeout", "120").returncode == 1
    shown = plugin("logs", "once", "--stage", "keyframes")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == "Traceback (most recent call last):"
    assert shown.stdout.splitlines()[-1] == (
        "ValueError: could not convert string to float: 'oops'")
    quiet = plugin("logs", "once", "--stage", "plan")  # a stage that succeeded silently
    assert (quiet.returncode, quiet.stdout) == (0, "")


def test_cancel_deletes_the_videojob_and_waits_until_it_is_gone(
        cluster: Cluster, namespace: str, running_operator: Operator, plugin: Plugin,
        tmp_path: Path) -> None:
    path = write(tmp_path / "doomed.yaml",
                 manifest("doomed", prompt="sleep:segments:60", scenes=2))
    assert plugin("submit", "-f", path).returncode == 0
    wait_for(cluster.core.list_namespaced_pod, lambda p: p.status.phase == "Running",
             namespace=namespace, label_selector="videojob.dev/stage=segments", timeout=60,
             what="a segments pod running")
    cancelled = plugin("cancel", "doomed", "--wait", "--timeout", "60")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == "videojob.videojob.dev/doomed deleted\n"
    with pytest.raises(ApiException) as err:
        vjs.get(cluster, namespace, "doomed")
    assert err.value.status == 404
    # The operator released it only once nothing it started was left.
    assert pods_of(cluster, namespace, "doomed", "segments") == []
    again = plugin("cancel", "doomed")
    assert again.returncode == 1
    assert again.stderr == 'error: videojobs.videojob.dev "doomed" not found\n'


def test_download_copies_the_published_file_after_checking_its_size(
        cluster: Cluster, namespace: str, running_operator: Operator, plugin: Plugin,
        tmp_path: Path) -> None:
    # Under the namespace's prefix of the storage root: the only place a VideoJob may write.
    published = running_operator.workdir / "artifacts" / namespace / "published" / "clip.mp4"
    published.parent.mkdir(parents=True)
    path = write(tmp_path / "clip.yaml",
                 manifest("clip", prompt="a lighthouse", output={"uri": published.as_uri()}))
    assert plugin("submit", "-f", path).returncode == 0
    watched = plugin("watch", "clip", "--timeout", "120")
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.splitlines()[-1] == f"output: {published.as_uri()}"
    status = vjs.get(cluster, namespace, "clip")["status"]
    assert status["output"] == {"uri": published.as_uri(), "bytes": 1234}  # no md5 recorded

    target = tmp_path / "downloads" / "clip.mp4"
    target.parent.mkdir()
    missing = plugin("download", "clip", "-o", str(target))
    assert missing.returncode == 1
    assert "no such file on this machine" in missing.stderr
    published.write_bytes(b"partial")
    short = plugin("download", "clip", "-o", str(target))
    assert short.returncode == 1
    assert "got 7 bytes, but status.output.bytes is 1234" in short.stderr
    assert list(target.parent.iterdir()) == []  # nothing half-written left behind

    video = (bytes(range(256)) * 5)[:1234]  # what publish reported writing
    published.write_bytes(video)
    fetched = plugin("download", "clip", "-o", str(target))
    assert fetched.returncode == 0, fetched.stderr
    assert target.read_bytes() == video
    assert fetched.stdout == (f"videojob.videojob.dev/clip downloaded {published.as_uri()} to "
                              f"{target} (1234 bytes, size checked; the status records no "
                              "MD5)\n")
    to_stdout = subprocess.run(
        [PLUGIN, "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, "download", "clip",
         "-o", "-"], capture_output=True, timeout=60)
    assert (to_stdout.returncode, to_stdout.stdout) == (0, video)
    into_dir = plugin("download", "clip", "-o", str(tmp_path))
    assert into_dir.returncode == 0, into_dir.stderr
    assert (tmp_path / "clip.mp4").read_bytes() == video
