"""`evotrain check SUBSTRATE`: the anchor trial once, outside any campaign, every output validated."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from evotrain.cli import app

from .campaign_helpers import EXAMPLES
from .test_failures_visible import broken_substrate

runner = CliRunner()


def flat(text: str) -> str:
    return " ".join(text.split())  # the terminal wraps long lines


def test_check_passes_on_the_tiny_substrate(tmp_path: Path) -> None:
    folder = tmp_path / "check"
    result = runner.invoke(app, ["check", str(EXAMPLES / "tiny"), "--dir", str(folder)])
    out = flat(result.output)
    assert result.exit_code == 0, result.output
    for step in ("prepare", "train", "evaluate/step-000050", "evaluate/step-000200"):
        assert f"│ {step} " in result.output and "succeeded" in out
    assert "evaluation reports (valid; metric accuracy)" in out
    assert "alpha (n)" in out and "beta (n)" in out and "gamma (n)" in out and "(150)" in out
    assert "selected step-" in out
    assert "predictions: 450 items in" in out and "(valid)" in out
    assert "check passed" in out
    assert list((folder / "c01-anchor" / "work" / "eval").glob("step-*.json"))


def test_check_names_the_missing_domain_and_the_fix(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(broken_substrate(tmp_path)), "--dir", str(tmp_path / "check")])
    out = flat(result.output)
    assert result.exit_code == 1, result.output
    assert "check failed: 1 problem(s)" in out
    assert "✗ bad_output at evaluate/step-000050: " in out
    assert "step-000050.json: invalid evaluation report: field `domains` lacks ['delta']" in out
    assert "— fix: report every domain of [metric].domains" in out
    assert "predictions:" not in out  # no checkpoint was selected, so predict did not run


def test_check_shows_a_failing_train_step_with_its_logs(tmp_path: Path) -> None:
    substrate = tmp_path / "tiny-train-fails"
    shutil.copytree(EXAMPLES / "tiny", substrate, ignore=shutil.ignore_patterns("__pycache__"))
    (substrate / "train.py").write_text("import sys\nprint('no GPU found', file=sys.stderr)\nsys.exit(3)\n")
    result = runner.invoke(app, ["check", str(substrate), "--dir", str(tmp_path / "check")])
    out = flat(result.output)
    assert result.exit_code == 1, result.output
    assert "│ prepare " in result.output and "│ train " in result.output and "failed" in out
    assert "✗ step_failed at train: " in out and "logs/train.err" in out.replace(" ", "")
    assert "no GPU found" in out.split("the failed step's stderr ends:")[1]
    assert "evaluate/" not in out


def test_check_refuses_a_folder_in_use_and_a_bad_substrate(tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("")
    result = runner.invoke(app, ["check", str(EXAMPLES / "tiny"), "--dir", str(used)])
    assert result.exit_code == 2 and "the check folder is not empty" in flat(result.output)
    result = runner.invoke(app, ["check", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output
