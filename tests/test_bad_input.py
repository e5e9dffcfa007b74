"""Bad input (issue 17): each mistake is a one-line error naming the file, field or flag and the fix, a non-zero
exit, nothing half-written, and a campaign that can still be resumed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evotrain.campaign.init import init_campaign
from evotrain.cli import app
from evotrain.external.config import CommandTargetConfig
from evotrain.fileio import read_jsonl
from evotrain.records.layout import CampaignPaths

from .campaign_helpers import EXAMPLES, make_tiny_campaign, manifests

runner = CliRunner()


def _error(result_output: str) -> str:
    """The error line the CLI printed (the first line; the fix follows on the next)."""
    assert result_output.lstrip().startswith("error:"), result_output
    assert "Traceback" not in result_output
    return " ".join(result_output.split())


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


# ---- what a scorer or a training run returns -------------------------------------------------------------------
def test_a_nan_external_score_and_a_nan_loss_are_reported_and_the_campaign_goes_on(tmp_path: Path) -> None:
    substrate = _tiny_with(tmp_path)
    train = substrate / "train.py"
    train.write_text(train.read_text().replace('"final_loss": loss,', '"final_loss": float("nan"),'))
    run = tmp_path / "run"
    init_campaign(run, substrate, external=CommandTargetConfig(command="echo nan"))
    result = runner.invoke(app, ["run", str(run), "--rounds", "1", "--workers", "2"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # rich wraps at the runner's 80 columns
    assert "warning: r0001/c01-anchor: training summary final_loss = nan is not a finite number" in output
    found = manifests(run)
    assert all(m.training_warnings == ["final_loss = nan"] and "final_loss" not in m.training for m in found.values())
    assert all(m.external is None for m in found.values())
    failed = [
        e["data"]["reason"]
        for cp in CampaignPaths(run).round(1).candidates()
        for e in read_jsonl(cp.trace)
        if e["kind"] == "external_failed"
    ]
    assert failed and all("printed a score that is not a finite number ('nan')" in r for r in failed), failed
    for command in (["status", str(run)], ["run", str(run), "--rounds", "1"], ["audit", str(run)]):
        again = runner.invoke(app, command)
        assert again.exit_code == 0, (command, again.output)


# ---- damaged files ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def closed_round(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A campaign with round 1 (2 candidates) closed, copied by each test that damages it."""
    run = make_tiny_campaign(tmp_path_factory.mktemp("closed"))
    result = runner.invoke(app, ["run", str(run), "--rounds", "1", "--workers", "2"])
    assert result.exit_code == 0, result.output
    return run


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest, symlinks=True)
    return dest


def _tear_middle(path: Path) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1][: len(lines[1]) // 2]
    _replace(path, b"\n".join(lines))


def _truncate(path: Path) -> None:
    _replace(path, path.read_bytes()[:40])


def _replace(path: Path, data: bytes) -> None:
    mode = path.stat().st_mode
    path.chmod(0o644)
    path.write_bytes(data)
    path.chmod(mode)


TORN = "line 2 is not valid JSON (damaged in the middle of the file, not torn by a kill)"
# file → how it is damaged → what `run` and `status` say (None: exits 0, it does not read that file)
DAMAGE = {
    "a torn line in the middle of round.jsonl": ("rounds/r0001/round.jsonl", _tear_middle, TORN, TORN),
    "a torn line in the middle of a candidate's trace": (
        "rounds/r0001/candidates/c01-anchor/trace.jsonl",
        _tear_middle,
        TORN,
        None,  # status reads a finished candidate's manifest, not its trace
    ),
    "a truncated closed-round manifest": (
        "rounds/r0001/candidates/c01-anchor/manifest.json",
        _truncate,
        "changed since the harness wrote it",  # run checks the hash before reading it
        "not a valid manifest",
    ),
    "a truncated pending policy": ("rounds/r0002/policy.json", _truncate, "not a valid policy", None),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_file_is_named_and_restoring_it_resumes(closed_round: Path, tmp_path: Path, damage: str) -> None:
    relpath, how, by_run, by_status = DAMAGE[damage]
    run = _copy(closed_round, tmp_path / "run")
    path = run / relpath
    original = path.read_bytes()
    how(path)
    damaged = path.read_bytes()
    for command, expected in (
        (["run", str(run), "--rounds", "2", "--workers", "2"], by_run),
        (["status", str(run)], by_status),
    ):
        result = runner.invoke(app, command)
        if expected is None:
            assert result.exit_code == 0, (command, result.output)
            continue
        assert result.exit_code == 2, (command, result.output)
        message = _error(result.output)
        assert f"error: {path}: {expected}" in message and "fix: restore the file" in message, message
    audit = runner.invoke(app, ["audit", str(run)])
    assert audit.exit_code in (1, 2) and str(path) in audit.output and "Traceback" not in audit.output, audit.output
    assert path.read_bytes() == damaged, "left as it was"
    assert not CampaignPaths(run).round(2).trace.exists(), "round 2 never started"
    _replace(path, original)
    assert runner.invoke(app, ["audit", str(run)]).exit_code == 0


def test_a_torn_last_trace_line_is_skipped(closed_round: Path, tmp_path: Path) -> None:
    """What a kill mid-append leaves: the last line half-written. Every reader skips it."""
    run = _copy(closed_round, tmp_path / "run")
    trace = run / "rounds/r0001/candidates/c02-optimizer/trace.jsonl"
    if not trace.exists():
        trace = next((run / "rounds/r0001/candidates").glob("c02-*/trace.jsonl"))
    _replace(trace, trace.read_bytes() + b'{"seq": 99, "ts": 17')
    for command in (["status", str(run)], ["audit", str(run)], ["run", str(run), "--rounds", "1"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, (command, result.output)


# ---- run verifies what it plans on; audit names the file that changed ------------------------------------------
def _edit_json(path: Path, field: str, value: object) -> None:
    data = json.loads(path.read_text())
    assert field in data
    data[field] = value
    _replace(path, json.dumps(data, indent=2).encode())


HAND_EDITS = {
    "a closed round's manifest": (
        "rounds/r0001/candidates/c01-anchor/manifest.json",
        "rationale",
        "edited by hand",
        "changed since the harness wrote it",
    ),
    "a closed round's evidence": (
        "rounds/r0001/evidence.json",
        "surprises",
        [],
        "changed since it was written",
    ),
    "a closed round's policy": ("rounds/r0001/policy.json", "rounds_without_external_gain", 7, "changed after"),
    "the pending policy": (
        "rounds/r0002/policy.json",
        "rounds_without_external_gain",
        7,
        "changed since round 1 wrote it",
    ),
}


@pytest.mark.parametrize("edit", list(HAND_EDITS))
def test_run_refuses_a_hand_edited_round_before_a_step_runs(closed_round: Path, tmp_path: Path, edit: str) -> None:
    relpath, field, value, expected = HAND_EDITS[edit]
    run = _copy(closed_round, tmp_path / "run")
    path = run / relpath
    original = path.read_bytes()
    if field == "surprises":  # evidence: any change of content
        value = [*json.loads(original)["surprises"], {"edited": True}]
    _edit_json(path, field, value)
    result = runner.invoke(app, ["run", str(run), "--rounds", "2", "--workers", "2"])
    assert result.exit_code == 2, result.output
    message = _error(result.output)
    assert f"error: {path}: {expected}" in message and "fix: restore the file" in message, message
    assert not CampaignPaths(run).round(2).trace.exists(), "round 2 never started"
    audit = runner.invoke(app, ["audit", str(run)])
    assert audit.exit_code == 1 and str(path) in audit.output, audit.output
    _replace(path, original)
    assert runner.invoke(app, ["audit", str(run)]).exit_code == 0


def _delete_event(trace: Path, kind: str) -> None:
    lines = trace.read_text().splitlines(keepends=True)
    kept = [line for line in lines if json.loads(line)["kind"] != kind]
    assert len(kept) < len(lines), kind
    _replace(trace, "".join(kept).encode())


DELETED_EVENTS = {
    "step_finished": ("rounds/r0001/candidates/c01-anchor/trace.jsonl", "step_finished", "started and never finished"),
    "manifest_written": ("rounds/r0001/candidates/c01-anchor/trace.jsonl", "manifest_written", "no manifest_written"),
    "evidence_written": ("rounds/r0001/round.jsonl", "evidence_written", "no evidence_written event"),
}


@pytest.mark.parametrize("event", list(DELETED_EVENTS))
def test_audit_names_the_trace_a_line_was_deleted_from(closed_round: Path, tmp_path: Path, event: str) -> None:
    relpath, kind, expected = DELETED_EVENTS[event]
    run = _copy(closed_round, tmp_path / "run")
    trace = run / relpath
    _delete_event(trace, kind)
    audit = runner.invoke(app, ["audit", str(run)])
    assert audit.exit_code == 1, audit.output
    problems = [line for line in audit.output.splitlines() if line.startswith("✗")]
    assert problems and all(str(trace) in p for p in problems), audit.output
    assert any(expected in p for p in problems), audit.output
    if kind != "step_finished":  # run checks the hashes the traces recorded, not each step
        result = runner.invoke(app, ["run", str(run), "--rounds", "2", "--workers", "2"])
        assert result.exit_code == 2 and f"error: {trace}: " in _error(result.output), result.output
        assert not CampaignPaths(run).round(2).trace.exists()
