"""Bad input (issue 17): each mistake is a one-line error naming the file, field or flag and the fix, a non-zero
exit, nothing half-written, and a campaign that can still be resumed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evotrain.cli import app
from evotrain.records.layout import CampaignPaths

from .campaign_helpers import EXAMPLES, make_tiny_campaign

runner = CliRunner()


def _error(result_output: str) -> str:
    """The error line the CLI printed (the first line; the fix follows on the next)."""
    lines = [line for line in result_output.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), result_output
    assert "Traceback" not in result_output
    return " ".join(lines)


# ---- evotrain.toml, checked by init ------------------------------------------------------------------------------
def _tiny_with(tmp_path: Path, spec_edit: tuple[str, str] | None = None, recipe_edit: tuple[str, str] | None = None):
    substrate = tmp_path / "tiny"
    shutil.copytree(EXAMPLES / "tiny", substrate, ignore=shutil.ignore_patterns("__pycache__"))
    for name, edit in (("evotrain.toml", spec_edit), ("recipe.toml", recipe_edit)):
        if edit is not None:
            text = (substrate / name).read_text()
            assert edit[0] in text
            (substrate / name).write_text(text.replace(edit[0], edit[1], 1))
    return substrate


SPEC_MISTAKES = {
    "editable glob matching nothing": (
        ('editable = ["recipe.toml", "prepare.py", "train.py"]', 'editable = ["recipe.toml", "src/**", "train.py"]'),
        None,
        ["evotrain.toml", "`editable`", "'src/**' matches no file"],
    ),
    "frozen glob matching nothing": (
        ('frozen = ["eval/**"', 'frozen = ["evals/**"'),
        None,
        ["evotrain.toml", "`frozen`", "'evals/**' matches no file"],
    ),
    "a path both editable and frozen": (
        ('frozen = ["eval/**"', 'frozen = ["train.py", "eval/**"'),
        None,
        ["evotrain.toml", "'train.py' is both editable ('train.py') and frozen ('train.py')", "must not overlap"],
    ),
    "a knob key missing from its file": (
        ('key = "train.l2"', 'key = "train.weight_decay"'),
        None,
        ["recipe.toml", "key `train.weight_decay` is missing", "search.axes.regularization.knobs.l2"],
    ),
    "a weights knob pointing at a number": (
        None,
        ("[data.mix]\nalpha = 1.0\nbeta = 1.0\ngamma = 1.0", "mix = 1.0"),  # under [data], a number
        ["recipe.toml", "key `data.mix` (weights knob)", "expected a non-empty table", "search.axes.data_mix"],
    ),
}


@pytest.mark.parametrize("mistake", list(SPEC_MISTAKES))
def test_init_refuses_a_substrate_it_cannot_run(tmp_path: Path, mistake: str) -> None:
    spec_edit, recipe_edit, expected = SPEC_MISTAKES[mistake]
    substrate = _tiny_with(tmp_path, spec_edit, recipe_edit)
    run = tmp_path / "run"
    result = runner.invoke(app, ["init", str(run), "--substrate", str(substrate)])
    assert result.exit_code == 2, result.output
    message = _error(result.output)
    for part in expected:
        assert part in message, message
    assert "fix:" in message
    assert not run.exists(), "nothing half-written"


def test_init_refuses_a_non_utf8_evotrain_toml(tmp_path: Path) -> None:
    substrate = _tiny_with(tmp_path)
    spec = substrate / "evotrain.toml"
    spec.write_bytes(spec.read_bytes().replace(b"numpy logistic", b"numpy logistic \xe9\xff"))
    run = tmp_path / "run"
    result = runner.invoke(app, ["init", str(run), "--substrate", str(substrate)])
    assert result.exit_code == 2, result.output
    message = _error(result.output)
    assert str(spec) in message and "not UTF-8 text" in message and "save the file as UTF-8" in message
    assert not run.exists()


# ---- run's flags ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--workers", "0"], "--workers 0: a round needs the anchor and at least one worker"),
        (["--workers", "-3"], "--workers -3: a round needs the anchor and at least one worker"),
        (["--workers", "1"], "--workers 1: a round needs the anchor and at least one worker"),
        (["--rounds", "-1"], "--rounds -1"),
        (["--rounds", "0"], "--rounds 0"),
        (["--parallel", "-1"], "--parallel -1: at least one candidate runs at a time"),
        (["--parallel", "0"], "--parallel 0"),
    ],
)
def test_run_refuses_counts_before_writing_anything(tmp_path: Path, flags: list[str], expected: str) -> None:
    run = make_tiny_campaign(tmp_path)
    result = runner.invoke(app, ["run", str(run), "--rounds", "1", "--workers", "2", *flags])
    assert result.exit_code == 2, result.output
    message = _error(result.output)
    assert expected in message and "fix: pass " in message, message
    assert not CampaignPaths(run).round(1).trace.exists(), "no round was planned"


@pytest.mark.slow
def test_a_refused_flag_leaves_the_campaign_to_resume(tmp_path: Path) -> None:
    run = make_tiny_campaign(tmp_path)
    refused = runner.invoke(app, ["run", str(run), "--rounds", "1", "--workers", "2", "--parallel", "-1"])
    assert refused.exit_code == 2, refused.output
    result = runner.invoke(app, ["run", str(run), "--rounds", "1", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["audit", str(run)]).exit_code == 0
