"""The kubectl plugin without a cluster: what it prints, how it reads its command line and
kubeconfig, manifests, log streams, and how `download` fetches and checks a video.

Statuses are built with the operator's own models and serialized as the operator writes them
(`model_dump(by_alias=True, exclude_none=True)`), so a renamed or re-aliased status field shows
up here rather than as a blank column on a real cluster.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from localcluster import controlplane
from videojob_cli import download, flags, logs, render, submit
from videojob_cli.__main__ import main
from videojob_cli.cluster import Target, connect, server_message
from videojob_cli.errors import CommandError
from videojob_cli.watch import ChangedLines, LiveBlock, display_for
from videojob_common.pipeline import STAGES, Stage, stages_of
from videojob_operator.api import OutputStatus, StageStatus, VideoJobStatus

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
URI = "file:///data/videojob/ns/clip/u1/output.mp4"


def videojob(name: str = "clip", age_seconds: int = 42, namespace: str = "ns",
             status: VideoJobStatus | None = None) -> dict[str, Any]:
    created = (NOW - dt.timedelta(seconds=age_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    obj: dict[str, Any] = {
        "apiVersion": "videojob.dev/v1alpha1", "kind": "VideoJob",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created,
                     "resourceVersion": "7"},
        "spec": {"prompt": "a coastal city at sunset", "suspend": False}}
    if status is not None:
        obj["status"] = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    return obj


def done(name: Stage) -> StageStatus:
    return StageStatus(name=name, phase="Succeeded", progress=100, message="done")


def running_in_segments() -> VideoJobStatus:
    return VideoJobStatus(
        phase="Running", progress=58, current_stage="segments",
        message="stage segments: frame 120/288, 2/4 scenes rendered",
        stages=[done("plan"), done("keyframes"),
                StageStatus(name="segments", phase="Running", progress=41, completed=2, total=4,
                            message="frame 120/288, 2/4 scenes rendered"),
                StageStatus(name="stitch", phase="Pending"),
                StageStatus(name="publish", phase="Pending")])


def succeeded(md5: str | None = None, size: int | None = 1234) -> VideoJobStatus:
    return VideoJobStatus(
        phase="Succeeded", progress=100, current_stage="publish",
        message=f"video published to {URI}", stages=[done(s) for s in STAGES],
        output_uri=URI, output=OutputStatus(uri=URI, bytes=size, md5=md5))


def failed() -> VideoJobStatus:
    return VideoJobStatus(
        phase="Failed", progress=10, current_stage="keyframes", reason="PermanentError",
        message="permanent: scripted failure in keyframes",
        stages=[done("plan"), StageStatus(name="keyframes", phase="Failed",
                                          message="permanent: scripted failure in keyframes")])


# --- rendering ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("percent", "bar"), [
    (0, "[--------------------]"),
    (42, "[########------------]"),
    (99, "[###################-]"),  # only a finished stage shows a full bar
    (100, "[####################]"),
    (150, "[####################]"),
    (-5, "[--------------------]"),
])
def test_progress_bar_fills_in_proportion(percent: int, bar: str) -> None:
    assert render.progress_bar(percent) == bar


def test_progress_bar_on_a_unicode_terminal_uses_blocks() -> None:
    assert render.progress_bar(50, width=4, unicode=True) == "[\u2588\u2588\u2591\u2591]"


@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (150, "2m30s"),
    (599, "9m59s"), (600, "10m"), (3 * 3600 - 1, "179m"), (3 * 3600, "3h"),
    (3 * 3600 + 300, "3h5m"), (8 * 3600, "8h"), (47 * 3600, "47h"), (48 * 3600, "2d"),
    (50 * 3600, "2d2h"), (8 * 86400, "8d"), (2 * 365 * 86400 + 3 * 86400, "2y3d"),
    (9 * 365 * 86400, "9y"),
])
def test_ages_read_as_kubectl_writes_them(seconds: int, text: str) -> None:
    assert render.human_duration(seconds) == text


def cells(table: str) -> list[list[str]]:
    """A printed table back as cells, cut at the header's column starts (cells may be empty)."""
    header, *rows = table.splitlines()
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [[line[a:b].strip() for a, b in bounds] for line in (header, *rows)]


def test_table_has_kubectl_get_columns_and_empty_cells_for_absent_values() -> None:
    queued = VideoJobStatus(phase="Queued", progress=0, current_stage="plan", queue_position=3,
                            message="stage plan is queued in pool cpu at position 3")
    table = render.table([videojob("clip", 42, status=running_in_segments()),
                          videojob("waiting", 150, status=queued),
                          videojob("fresh", 5)], NOW)
    assert cells(table) == [
        ["NAME", "PHASE", "PROGRESS", "STAGE", "QUEUE", "AGE"],
        ["clip", "Running", "58%", "segments", "", "42s"],
        ["waiting", "Queued", "0%", "plan", "3", "2m30s"],
        ["fresh", "", "", "", "", "5s"],
    ]
    # Columns are aligned three spaces apart, as kubectl's tabwriter does.
    rows = table.splitlines()
    assert rows[0].index("PHASE") == rows[1].index("Running") == len("waiting") + 3


def test_wide_table_adds_output_and_message() -> None:
    header, row = cells(render.table([videojob(status=succeeded())], NOW, wide=True))
    assert header == ["NAME", "PHASE", "PROGRESS", "STAGE", "QUEUE", "AGE", "OUTPUT",
                      "MESSAGE"]
    assert row == ["clip", "Succeeded", "100%", "publish", "", "42s", URI,
                   f"video published to {URI}"]


def test_all_namespaces_table_starts_with_the_namespace() -> None:
    rows = render.table([videojob("a", namespace="team-a"), videojob("b", namespace="team-b")],
                        NOW, all_namespaces=True).splitlines()
    assert [r.split()[:2] for r in rows] == [["NAMESPACE", "NAME"], ["team-a", "a"],
                                              ["team-b", "b"]]


def test_watch_lines_show_a_bar_and_message_per_stage() -> None:
    lines = render.watch_lines(videojob(status=running_in_segments()), live=True)
    assert lines[0] == "clip   Running   58%   stage segments: frame 120/288, 2/4 scenes rendered"
    assert [line.split()[0] for line in lines[1:]] == list(stages_of(narrated=False))
    assert lines[1] == "  plan       [####################] 100%  Succeeded  done"
    assert lines[3] == ("  segments   [########------------]  41%  Running    "
                        "frame 120/288, 2/4 scenes rendered")
    assert lines[5] == "  publish    [--------------------]   0%  Pending"


def test_stages_the_operator_has_not_reported_yet_are_pending() -> None:
    lines = render.watch_lines(videojob())
    assert lines[0] == "clip   Pending"
    assert all(line.endswith("0%  Pending") for line in lines[1:]), lines


def test_a_segments_message_without_scenes_gets_the_scene_count() -> None:
    stage = StageStatus(name="segments", phase="Running", progress=50, completed=1, total=2,
                        message="running")
    status = VideoJobStatus(phase="Running", stages=[stage])
    assert render.watch_lines(videojob(status=status))[3].endswith("running (1/2 scenes)")


def test_the_header_in_a_log_leaves_out_moving_figures() -> None:
    running = render.header(videojob(status=running_in_segments()), live=False)
    assert running == "clip   Running   stage segments"
    queued = VideoJobStatus(phase="Queued", queue_position=2,
                            message="stage plan is queued in pool cpu at position 2")
    assert render.header(videojob(status=queued), live=False) == (
        "clip   Queued   stage plan is queued in pool cpu at position 2")


def test_a_finished_watch_ends_with_the_output_uri() -> None:
    assert render.output_line(videojob(status=succeeded())) == f"output: {URI}"


def test_a_failure_names_the_stage_reason_and_message() -> None:
    assert render.failure(videojob(status=failed())) == (
        "videojob clip failed in stage keyframes (PermanentError): "
        "permanent: scripted failure in keyframes")


def test_a_traceback_in_a_failure_message_is_cut_to_one_line() -> None:
    status = failed().model_copy(update={
        "reason": "RetriesExhausted",
        "message": "failed after 2 attempts: Traceback (most recent call last):\n"
                   '  File "<string>", line 97, in <module>\n'
                   "ValueError: could not convert string to float: 'oops'\n"})
    assert render.failure(videojob(status=status)) == (
        "videojob clip failed in stage keyframes (RetriesExhausted): failed after 2 attempts: "
        "Traceback (most recent call last): ... ValueError: could not convert string to float: "
        "'oops'")


def test_state_sums_up_where_a_videojob_stands() -> None:
    assert render.state(videojob(status=running_in_segments())) == "Running (stage segments, 58%)"
    assert render.state(videojob(status=succeeded())) == "Succeeded"
    assert render.state(videojob()) == "Pending"


def test_a_log_display_prints_only_lines_that_changed_without_escapes() -> None:
    out = io.StringIO()
    display = ChangedLines(out)
    display.show(["clip   Running", "  plan  10%"])
    display.show(["clip   Running", "  plan  10%"])
    display.show(["clip   Running", "  plan  60%"])
    assert out.getvalue() == "clip   Running\n  plan  10%\n  plan  60%\n"
    assert "\x1b" not in out.getvalue()


def test_a_terminal_display_redraws_the_block_in_place_within_the_width() -> None:
    out = io.StringIO()
    display = LiveBlock(out, width=30)
    display.show(["a" * 50, "b"])
    display.show(["c", "d"])
    first, second = out.getvalue().split("\x1b[2A\r", 1)
    assert first == f"\x1b[2K{'a' * 29}\n\x1b[2Kb\n"
    assert second == "\x1b[2Kc\n\x1b[2Kd\n"


def test_watch_writes_plain_lines_when_stdout_is_not_a_terminal() -> None:
    display, live, unicode = display_for(io.StringIO())
    assert isinstance(display, ChangedLines) and not live and not unicode


# --- command line -------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["-n", "team", "--context", "kind", "--kubeconfig", "/k", "get", "clip"],
    ["get", "clip", "-n", "team", "--context", "kind", "--kubeconfig", "/k"],
    ["--kubeconfig=/k", "get", "--namespace=team", "clip", "--context=kind"],
    ["-nteam", "get", "--context", "kind", "clip", "--kubeconfig", "/k"],
])
def test_connection_flags_go_before_or_after_the_subcommand(argv: list[str]) -> None:
    inv = flags.parse(argv)
    assert inv.kube == flags.KubeFlags(kubeconfig="/k", context="kind", namespace="team")
    assert (inv.command, inv.args.name) == ("get", "clip")


def test_without_connection_flags_nothing_is_assumed_yet() -> None:
    inv = flags.parse(["logs", "clip", "--stage", "segments", "-f", "--tail", "5"])
    assert inv.kube == flags.KubeFlags()
    assert (inv.args.stage, inv.args.follow, inv.args.tail) == ("segments", True, 5)


def test_subcommand_options_parse() -> None:
    assert flags.parse(["get", "-A", "-o", "wide"]).args.all_namespaces
    submit_args = flags.parse(["submit", "-f", "a.yaml", "-f", "-", "--watch",
                               "--timeout", "30"]).args
    assert (submit_args.filename, submit_args.watch, submit_args.timeout) == (
        ["a.yaml", "-"], True, 30.0)
    assert flags.parse(["cancel", "clip", "--wait"]).args.wait
    assert flags.parse(["download", "clip", "-o", "-"]).args.output == "-"


@pytest.mark.parametrize(("argv", "complaint"), [
    (["logs", "clip", "--stage", "render"], "invalid choice: 'render'"),
    (["watch", "clip", "--timeout", "soon"], "not a number of seconds"),
    (["watch"], "the following arguments are required: NAME"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["logs", "clip", "--tail", "-3"], "--tail must be -1"),
])
def test_usage_errors_exit_1_with_one_line(argv: list[str], complaint: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and complaint in err
    assert err.count("\n") == 1


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "download" in capsys.readouterr().out


# --- kubeconfig, context and namespace ----------------------------------------------------------

def kubeconfig(path: Path, current: str, contexts: dict[str, str | None]) -> Path:
    """A kubeconfig with one cluster per context (https://<context>:6443) and token users."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": c, "cluster": {"server": f"https://{c}:6443"}} for c in contexts],
        "users": [{"name": c, "user": {"token": f"token-{c}"}} for c in contexts],
        "contexts": [{"name": c, "context": {"cluster": c, "user": c,
                                             **({"namespace": ns} if ns else {})}}
                     for c, ns in contexts.items()]}))
    return path


@pytest.fixture
def two_contexts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return kubeconfig(tmp_path / "config", "dev", {"dev": "team-a", "prod": None})


def test_namespace_comes_from_the_current_context(two_contexts: Path) -> None:
    target = connect(flags.KubeFlags(kubeconfig=str(two_contexts)))
    assert target.namespace == "team-a"
    assert target.api.configuration.host == "https://dev:6443"


def test_context_flag_picks_cluster_and_namespace(two_contexts: Path) -> None:
    target = connect(flags.KubeFlags(kubeconfig=str(two_contexts), context="prod"))
    assert (target.api.configuration.host, target.namespace) == ("https://prod:6443", "default")


def test_namespace_flag_wins_over_the_context(two_contexts: Path) -> None:
    target = connect(flags.KubeFlags(kubeconfig=str(two_contexts), namespace="mine"))
    assert target.namespace == "mine"


def test_kubeconfig_env_lists_files_merged_like_kubectl(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = kubeconfig(tmp_path / "a", "dev", {"dev": "team-a"})
    second = kubeconfig(tmp_path / "b", "dev", {"lab": "research"})
    monkeypatch.setenv("KUBECONFIG", f"{first}{os.pathsep}{second}")
    target = connect(flags.KubeFlags(context="lab"))
    assert (target.api.configuration.host, target.namespace) == ("https://lab:6443", "research")


def test_an_unknown_context_or_missing_kubeconfig_is_named(two_contexts: Path,
                                                           tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="nowhere"):
        connect(flags.KubeFlags(kubeconfig=str(two_contexts), context="nowhere"))
    with pytest.raises(CommandError, match=r"no kubeconfig found at .*absent"):
        connect(flags.KubeFlags(kubeconfig=str(tmp_path / "absent")))


def test_server_refusals_are_reported_with_the_servers_message() -> None:
    err = client.ApiException(status=422, reason="Unprocessable Entity")
    err.body = ('{"kind":"Status","message":"VideoJob.videojob.dev \\"bad\\" is invalid: '
                'spec.fps: Invalid value: 61: spec.fps in body should be less than or equal '
                'to 60","reason":"Invalid","code":422}')
    assert server_message(err) == ('VideoJob.videojob.dev "bad" is invalid: spec.fps: Invalid '
                                   'value: 61: spec.fps in body should be less than or equal '
                                   'to 60')
    assert server_message(client.ApiException(status=503, reason="Service Unavailable")) == (
        "503 Service Unavailable")


# --- manifests ----------------------------------------------------------------------------------

def manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "videojob.dev/v1alpha1", "kind": "VideoJob",
            "metadata": {"name": name}, "spec": {"prompt": "x", **spec}}


def test_manifests_come_from_files_directories_and_stdin(tmp_path: Path) -> None:
    (tmp_path / "two.yaml").write_text(yaml.safe_dump_all([manifest("a"), None, manifest("b")]))
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "c.json").write_text('{"apiVersion": "videojob.dev/v1alpha1", "kind": "VideoJob",'
                                   ' "metadata": {"name": "c"}, "spec": {"prompt": "x"}}')
    (folder / "notes.txt").write_text("not a manifest")
    stdin = io.StringIO(yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                                        "items": [manifest("d"), manifest("e")]}))
    found = submit.read([str(tmp_path / "two.yaml"), str(folder), "-"], stdin=stdin)
    assert [m.body["metadata"]["name"] for m in found] == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize(("doc", "complaint"), [
    ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
     "kind is 'Deployment', not 'VideoJob'"),
    ("apiVersion: videojob.dev/v2\nkind: VideoJob\nmetadata: {name: x}\n",
     "apiVersion videojob.dev/v2 is not served"),
    ("apiVersion: videojob.dev/v1alpha1\nkind: VideoJob\nspec: {prompt: x}\n",
     "metadata.name is required"),
    ("kind: VideoJob\n  spec: [\n", "not valid YAML"),
    ("- just\n- a list\n", "expected a VideoJob object, got a list"),
])
def test_what_is_not_a_videojob_is_refused_before_anything_is_created(
        tmp_path: Path, doc: str, complaint: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(doc)
    with pytest.raises(CommandError) as err:
        submit.read([str(path)])
    assert complaint in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_a_manifest_namespace_conflicting_with_the_flag_is_refused() -> None:
    body = manifest("a")
    body["metadata"]["namespace"] = "team-a"
    target = Target(api=client.ApiClient(), namespace="team-b")
    one = submit.Manifest("m.yaml", body)
    assert submit.namespace_of(one, target, explicit=False) == "team-a"
    with pytest.raises(CommandError, match="'team-a' does not match --namespace 'team-b'"):
        submit.namespace_of(one, target, explicit=True)


# --- logs ---------------------------------------------------------------------------------------

def test_log_streams_split_into_lines_across_chunks() -> None:
    chunks = [b"frame 1/4\nfra", b"me 2/4\n", "caf\u00e9 ".encode()[:4],
              "caf\u00e9 ".encode()[4:] + b"\n", b"no newline at the end"]
    assert list(logs.lines(chunks)) == ["frame 1/4", "frame 2/4", "caf\u00e9 ",
                                        "no newline at the end"]


def test_logs_default_to_the_current_stage_or_the_latest_with_pods() -> None:
    vj = videojob(status=running_in_segments())
    assert logs.default_stage(vj, ["plan", "keyframes", "segments"]) == "segments"
    # segments queued, no pod yet: the last stage that has pods
    assert logs.default_stage(vj, ["plan", "keyframes"]) == "keyframes"
    assert logs.default_stage(videojob(), []) is None


def test_lines_of_several_pods_carry_kubectls_prefix() -> None:
    assert logs.prefix("clip-segments-1a2b-0-x7k2p") == "[pod/clip-segments-1a2b-0-x7k2p/worker] "


# --- download: md5, size, schemes ---------------------------------------------------------------

VIDEO = bytes(range(256)) * 40


def md5_of(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def test_md5_is_base64_of_the_digest_as_gcs_reports_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert download.md5_base64(empty) == "1B2M2Y8AsgTpgAmY7PhCfg=="  # GCS's md5Hash of ""
    video = tmp_path / "video"
    video.write_bytes(VIDEO)
    assert download.md5_base64(video) == md5_of(VIDEO)


def test_verify_refuses_a_wrong_size_or_md5(tmp_path: Path) -> None:
    video = tmp_path / "video"
    video.write_bytes(VIDEO)
    download.verify(video, len(VIDEO), md5_of(VIDEO), "file:///v")
    download.verify(video, None, None, "file:///v")
    with pytest.raises(CommandError, match=r"got 10240 bytes, but status\.output\.bytes is 10"):
        download.verify(video, 10, None, "file:///v")
    with pytest.raises(CommandError, match=r"does not match status\.output\.md5"):
        download.verify(video, len(VIDEO), md5_of(b"other"), "file:///v")


def published(uri: str, data: bytes, md5: bool = True) -> dict[str, Any]:
    status = succeeded(md5=md5_of(data) if md5 else None, size=len(data))
    vj = videojob(status=status)
    vj["status"]["outputURI"] = vj["status"]["output"]["uri"] = uri
    return vj


def test_download_copies_a_file_output_after_checking_it(tmp_path: Path) -> None:
    source = tmp_path / "store" / "output.mp4"
    source.parent.mkdir()
    source.write_bytes(VIDEO)
    vj = published(source.as_uri(), VIDEO)
    dest = download.destination(vj, str(tmp_path))
    assert dest == tmp_path / "clip.mp4"
    assert download.save(vj, dest) == len(VIDEO)
    assert dest.read_bytes() == VIDEO
    assert download.checks(vj) == "size and MD5 checked"


def test_a_corrupted_download_leaves_no_file_behind(tmp_path: Path) -> None:
    source = tmp_path / "output.mp4"
    source.write_bytes(VIDEO[:-1] + b"!")
    dest = tmp_path / "out" / "clip.mp4"
    dest.parent.mkdir()
    with pytest.raises(CommandError, match="MD5"):
        download.save(published(source.as_uri(), VIDEO), dest)
    assert list(dest.parent.iterdir()) == []


def test_download_refuses_a_videojob_that_has_not_succeeded(tmp_path: Path) -> None:
    with pytest.raises(CommandError) as err:
        download.save(videojob(status=running_in_segments()), tmp_path / "x.mp4")
    assert str(err.value) == ("videojob clip has no output to download: it is Running (stage "
                              "segments, 58%); only a Succeeded VideoJob has one")
    with pytest.raises(CommandError, match="it is Failed"):
        download.save(videojob(status=failed()), tmp_path / "x.mp4")


def test_download_names_a_missing_file_and_unknown_schemes(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file on this machine"):
        download.save(published((tmp_path / "gone.mp4").as_uri(), VIDEO), tmp_path / "x.mp4")
    with pytest.raises(CommandError, match="cannot download s3 URIs"):
        download.fetch("s3://bucket/x.mp4", tmp_path / "x.mp4")


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "clip.mp4").write_bytes(VIDEO)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_fetches_http_outputs(http_server: str, tmp_path: Path) -> None:
    dest = tmp_path / "clip.mp4"
    assert download.save(published(f"{http_server}/clip.mp4", VIDEO), dest) == len(VIDEO)
    assert dest.read_bytes() == VIDEO
    with pytest.raises(CommandError, match="HTTP 404"):
        download.save(published(f"{http_server}/absent.mp4", VIDEO), dest)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gcs_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An in-memory GCS emulator (gcp-storage-emulator) with the bucket `videos`."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
         "--port", str(port), "--in-memory", "--default-bucket", "videos"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        if process.poll() is not None:
            return True  # exited: no point waiting
        with urllib.request.urlopen(f"{host}/storage/v1/b/videos", timeout=0.5) as r:
            return bool(r.status == 200)

    controlplane.wait_for("the GCS emulator to serve its bucket", serving, 15, interval=0.05)
    assert process.poll() is None, f"the GCS emulator exited with {process.returncode}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    yield host
    process.terminate()
    process.wait(timeout=10)


def test_download_fetches_gs_outputs_through_storage_emulator_host(
        gcs_emulator: str, tmp_path: Path) -> None:
    from google.cloud import storage

    storage.Client(project="test").bucket("videos").blob("ns/clip/output.mp4").upload_from_string(
        VIDEO)
    dest = tmp_path / "clip.mp4"
    assert download.save(published("gs://videos/ns/clip/output.mp4", VIDEO), dest) == len(VIDEO)
    assert dest.read_bytes() == VIDEO
    with pytest.raises(CommandError, match=r"gs://videos/ns/other\.mp4 does not exist"):
        download.save(published("gs://videos/ns/other.mp4", VIDEO), dest)
