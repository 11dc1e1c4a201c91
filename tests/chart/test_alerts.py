"""The alert rules shipped in the chart, checked and unit-tested by the real promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from videojob_testkit import REPO

RULES = REPO / "helm" / "videojob-operator" / "alerts" / "videojob-alerts.yaml"
TESTS = Path(__file__).with_name("alerts_test.yaml")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool missing: run hack/install-system-deps.sh"
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=TESTS.parent)


def test_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", str(TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
