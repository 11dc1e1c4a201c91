"""`kubectl videojob history` against a real PostgreSQL (tests/conftest.py), with rows the data
layer itself builds (`rows.row` from a finished VideoJob and its pods) and writes
(`Archive.upsert`). No cluster exists for these tests: the kubeconfig points nowhere, as it
would on an administrator's laptop after the VideoJobs were deleted.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from videojob_cli import history
from videojob_cli.__main__ import main
from videojob_cli.errors import CommandError
from videojob_common.archive.rows import row
from videojob_common.archive.store import Archive
from videojob_testkit.finished import T0, run_pods, videojob

NOW = T0 + dt.timedelta(days=3)


def finished(name: str, namespace: str, minutes: int, phase: str = "Succeeded",
             labels: dict[str, str] | None = None) -> tuple[str, Any]:
    """A VideoJob that finished `minutes` after T0, as the operator would archive it."""
    uid = str(uuid.uuid4())
    t0 = T0 + dt.timedelta(minutes=minutes)
    extra: dict[str, Any] = {}
    if phase == "Failed":
        extra = {"reason": "RetriesExhausted", "message": "segments: scene 1 failed 3 times"}
    obj = videojob(phase, uid=uid, name=name, namespace=namespace, t0=t0,
                   labels={"team": "brand"} if labels is None else labels, **extra)
    if phase == "Failed":
        obj["status"]["stages"][2]["phase"] = "Failed"
    return uid, row(obj, run_pods(uid), NOW)


@pytest.fixture
def dsn(archive_dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """An archive with 7 VideoJobs in studio (one failed, two labelled team=ads) and one in
    lab; no cluster, no DSN in the environment, and no local cluster folder."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv(history.DSN_ENV, raising=False)
    monkeypatch.setenv("LOCALCLUSTER_ROOT", str(tmp_path / "no-cluster"))
    rows = [finished(f"clip-{i}", "studio", i) for i in range(4)]
    rows.append(finished("broken", "studio", 10, phase="Failed"))
    rows += [finished(f"ad-{i}", "studio", 20 + i, labels={"team": "ads"}) for i in range(2)]
    rows.append(finished("elsewhere", "lab", 30))
    with Archive(archive_dsn) as a:
        a.migrate()
        a.upsert([r for _, r in rows])
        with a.pool.connection() as conn:
            conn.execute("ANALYZE")  # the estimates come from the statistics
    yield archive_dsn


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def names(table: str) -> list[str]:
    return [line.split()[0] for line in table.splitlines()[1:]]


def test_a_namespace_lists_newest_first_with_an_estimate_and_no_cluster(
        dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "history", "-n", "studio", "--dsn", dsn)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "REASON", "GPU-SECONDS", "DURATION", "FINISHED"]
    assert names(out) == ["ad-1", "ad-0", "broken", "clip-3", "clip-2", "clip-1", "clip-0"]
    broken = next(line for line in lines if line.startswith("broken"))
    # 1060 GPU-seconds: keyframes 60 s x 2 GPUs, segments (200 + 50 + 220) s x 2; run 7m40s.
    assert broken.split()[:5] == ["broken", "Failed", "RetriesExhausted", "1060.0", "7m40s"]
    assert "~7 archived VideoJobs in namespace studio (an estimate)" in err
    assert "next page" not in err


def test_pages_continue_with_the_printed_token_and_never_repeat(
        dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []
    token: str | None = None
    for _ in range(4):
        argv = ["history", "-n", "studio", "--dsn", dsn, "--limit", "3"]
        code, out, err = cli(capsys, *argv, *(["--continue", token] if token else []))
        assert code == 0, err
        seen += names(out)
        token = next((line.split("--continue ")[1] for line in err.splitlines()
                      if line.startswith("next page: --continue ")), None)
        if token is None:
            break
    assert seen == ["ad-1", "ad-0", "broken", "clip-3", "clip-2", "clip-1", "clip-0"]


def test_filters_phase_labels_since_and_every_namespace(
        dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, err = cli(capsys, "history", "-n", "studio", "--dsn", dsn, "--phase", "failed")
    assert names(out) == ["broken"]
    assert "(Failed)" in err
    _, out, err = cli(capsys, "history", "-n", "studio", "--dsn", dsn, "-l", "team=ads")
    assert names(out) == ["ad-1", "ad-0"]
    assert "before -l/--since" in err  # the estimate does not know the selector
    since = (T0 + dt.timedelta(minutes=20, seconds=470)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _, out, _ = cli(capsys, "history", "-n", "studio", "--dsn", dsn, "--since", since)
    assert names(out) == ["ad-1", "ad-0"]
    _, out, err = cli(capsys, "history", "-A", "--dsn", dsn, "--limit", "2", "-o", "wide")
    header = out.splitlines()[0].split()
    assert header[:2] == ["NAMESPACE", "NAME"] and "UID" in header and "LABELS" in header
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [
        ["lab", "elsewhere"], ["studio", "ad-1"]]
    assert "in all namespaces" in err and "next page: --continue " in err
    code, out, err = cli(capsys, "history", "-n", "nobody-here", "--dsn", dsn)
    assert (code, out) == (0, "") and "No archived VideoJobs found in nobody-here" in err


def test_json_is_the_http_apis_page(dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "history", "-n", "studio", "--dsn", dsn, "--limit", "2",
                       "-o", "json")
    assert code == 0
    doc = json.loads(out)
    assert [i["name"] for i in doc["items"]] == ["ad-1", "ad-0"]
    assert doc["continue"] and doc["estimatedTotal"] == 7
    first = doc["items"][0]
    assert first["finishedAt"].endswith("Z") and first["gpuSeconds"] == 1060.0
    assert first["labels"] == {"team": "ads"} and first["outputBytes"] == 18_400_112


def test_one_run_shows_stages_pods_gpu_seconds_and_why_it_failed(
        dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "history", "broken", "-n", "studio", "--dsn", dsn)
    assert code == 0, err
    fields = dict(line.split(":", 1) for line in out.splitlines()
                  if ":" in line and not line.startswith(" ") and not line.endswith(":"))
    assert fields["Phase"].strip() == "Failed"
    assert fields["Reason"].strip() == "RetriesExhausted"
    assert fields["Failed stage"].strip() == "segments"
    assert fields["Message"].strip() == "segments: scene 1 failed 3 times"
    assert fields["GPU-seconds"].strip() == "1060.0 in total"
    assert fields["Size"].strip() == "17.5Mi"
    stages = out.split("Stages:\n")[1].split("Pods:")[0].splitlines()
    by_stage = {line.split()[0]: line.split() for line in stages[1:]}
    assert list(by_stage) == ["plan", "keyframes", "segments", "stitch", "publish"]
    # STAGE PHASE ATTEMPTS PODS STARTED FINISHED DURATION GPU-SECONDS
    assert by_stage["segments"][1:4] == ["Failed", "3", "4"]
    assert by_stage["segments"][7] == "940.0" and by_stage["keyframes"][7] == "120.0"
    pods = out.split("Pods:\n")[1].split("Conditions:")[0]
    retried = next(line.split() for line in pods.splitlines() if "segments-1-b" in line)
    assert retried[:3] == ["segments", "1", "1"] and retried[9] == "440.0"
    never = next(line.split() for line in pods.splitlines() if "segments-1-c" in line)
    assert never[7:10] == ["-", "-", "0.0"]  # never started: no GPU-seconds


def test_a_run_by_uid_from_any_namespace_and_as_json(
        dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = cli(capsys, "history", "-n", "lab", "--dsn", dsn, "-o", "json", "--limit", "1")
    uid = json.loads(out)["items"][0]["uid"]
    code, out, err = cli(capsys, "history", uid, "-A", "--dsn", dsn, "-o", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["name"], doc["namespace"], doc["uid"]) == ("elsewhere", "lab", uid)
    assert [s["name"] for s in doc["stages"]][:3] == ["plan", "keyframes", "segments"]
    assert sum(s["gpuSeconds"] for s in doc["stages"]) == doc["gpuSeconds"] == 1060.0
    assert "s3cr3t" not in out  # the signed URL's token was redacted when archived
    code, _, err = cli(capsys, "history", "ghost", "-n", "studio", "--dsn", dsn)
    assert code == 1 and err == "error: no archived VideoJob 'ghost' in namespace studio\n"
    code, _, err = cli(capsys, "history", "broken", "-A", "--dsn", dsn)
    assert code == 1 and "drop -A" in err


@pytest.mark.parametrize(("argv", "flag", "words"), [
    (["-l", "tier in gold"], "-l/--selector", "requirement 'tier in gold'"),
    (["--since", "yesterday"], "--since", "expected a duration"),
    (["--since", "2026-12-01T09:00:00"], "--since", "needs its zone"),
    (["--continue", "bm90LWEtY3Vyc29y"], "--continue", "not a token this archive handed out"),
    (["--phase", "Running"], "--phase", "expected Failed or Succeeded"),
    (["--limit", "0"], "--limit", "must be 1 to 500"),
])
def test_bad_input_names_its_flag_before_any_database(
        argv: list[str], flag: str, words: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    # A DSN no server answers: the input is refused before it is tried.
    code, out, err = cli(capsys, "history", "-n", "studio", "--dsn",
                         "host=127.0.0.1 port=1 dbname=x", *argv)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {flag} ") and words in err, err


def test_the_dsn_comes_from_the_flag_then_the_environment_then_the_local_file(
        tmp_path: Path) -> None:
    file = tmp_path / "cluster" / "archive" / "dsn"
    env = {"LOCALCLUSTER_ROOT": str(tmp_path / "cluster")}
    with pytest.raises(CommandError) as refused:
        history.find_dsn(None, env, tmp_path)
    assert "--dsn" in str(refused.value) and history.DSN_ENV in str(refused.value)
    assert str(file) in str(refused.value)
    file.parent.mkdir(parents=True)
    file.write_text("host=from-file\n")
    assert history.find_dsn(None, env, tmp_path) == ("host=from-file", str(file))
    env[history.DSN_ENV] = "host=from-env"
    assert history.find_dsn(None, env, tmp_path) == ("host=from-env", "$VIDEOJOB_ARCHIVE_DSN")
    assert history.find_dsn("host=flag", env, tmp_path) == ("host=flag", "--dsn")
    # Without LOCALCLUSTER_ROOT: the Makefile's default root, .cluster in this folder.
    assert history.local_dsn_file({}, tmp_path) == tmp_path / ".cluster" / "archive" / "dsn"


def test_the_environment_and_the_local_file_reach_the_archive(
        dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv(history.DSN_ENV, dsn)
    code, out, _ = cli(capsys, "history", "-n", "lab")
    assert code == 0 and names(out) == ["elsewhere"]
    monkeypatch.delenv(history.DSN_ENV)
    root = tmp_path / "local"
    (root / "archive").mkdir(parents=True)
    (root / "archive" / "dsn").write_text(dsn + "\n")
    monkeypatch.setenv("LOCALCLUSTER_ROOT", str(root))
    code, out, _ = cli(capsys, "history", "-n", "lab")
    assert code == 0 and names(out) == ["elsewhere"]


def test_an_unreachable_archive_is_named_without_its_password(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv(history.DSN_ENV,
                       "host=127.0.0.1 port=1 dbname=archive user=x password=hunter2")
    code, _, err = cli(capsys, "history", "-n", "studio")
    assert code == 1
    assert err.startswith("error: cannot reach the archive at 127.0.0.1:1/archive "
                          "(from $VIDEOJOB_ARCHIVE_DSN): ")
    assert "hunter2" not in err


def test_an_archive_without_tables_says_who_makes_them(
        archive_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    code, _, err = cli(capsys, "history", "-n", "studio", "--dsn", archive_dsn)
    assert code == 1 and "has no tables yet: the operator creates them" in err


def test_the_namespace_comes_from_the_kubeconfig_context_without_a_cluster(
        dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u",
                                               "namespace": "lab"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(config))
    code, out, err = cli(capsys, "history", "--dsn", dsn)
    assert code == 0, err
    assert names(out) == ["elsewhere"]


def test_sizes_and_durations_read_as_kubectl_users_expect() -> None:
    assert [history.size(n) for n in (None, 0, 1023, 1024, 18_400_112, 5 * 2**40)] == [
        "", "0", "1023", "1.0Ki", "17.5Mi", "5.0Ti"]
    assert history.duration(T0, T0 + dt.timedelta(seconds=460)) == "7m40s"
    assert history.duration(None, T0) == ""
