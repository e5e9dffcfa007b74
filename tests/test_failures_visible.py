"""Failures in plain sight: `run` and `status` print each failed candidate's class and message, and a round in
which no candidate succeeded stops the campaign unless asked to go on."""

from __future__ import annotations

import shutil
from pathlib import Path

import tomlkit
from typer.testing import CliRunner

from evotrain.campaign.init import init_campaign
from evotrain.cli import app
from evotrain.records.layout import CampaignPaths

from .campaign_helpers import EXAMPLES, manifests, tiny_external

runner = CliRunner()


def broken_substrate(tmp_path: Path) -> Path:
    """The tiny substrate declaring a fourth domain its (frozen) evaluation never reports: every trial fails."""
    substrate = tmp_path / "tiny-broken"
    shutil.copytree(EXAMPLES / "tiny", substrate, ignore=shutil.ignore_patterns("__pycache__"))
    spec = substrate / "evotrain.toml"
    declared = 'domains = ["alpha", "beta", "gamma"]'
    text = spec.read_text()
    assert declared in text
    spec.write_text(text.replace(declared, 'domains = ["alpha", "beta", "gamma", "delta"]'))
    return substrate


def test_a_round_with_no_success_stops_the_campaign_and_says_why(tmp_path: Path) -> None:
    run = tmp_path / "run"
    init_campaign(run, broken_substrate(tmp_path), external=tiny_external())
    result = runner.invoke(app, ["run", str(run), "--rounds", "2", "--workers", "2", "--parallel", "2"])
    out = " ".join(result.output.split())  # the terminal wraps long lines
    assert result.exit_code == 2, result.output
    # each failed candidate: class, step, the field and the fix, inline in the run's output (and the first again in
    # the error that stops the campaign)
    inline = "bad_output at evaluate/step-000050: "
    assert out.count(inline) == 3, out
    assert out.count("field `domains` lacks ['delta'] — fix: report every domain of [metric].domains") == 3, out
    assert "error: " in out and "round 1: none of its 2 candidates succeeded, so the campaign stops" in out
    assert "round 1 closed" in out and "--keep-going" in out
    found = manifests(run)
    assert len(found) == 2 and {m.round for m in found.values()} == {1}, "round 2 did not start"
    assert all(m.failure is not None and m.failure.failure_class == "bad_output" for m in found.values())

    status = runner.invoke(app, ["status", str(run)])
    assert status.exit_code == 0, status.output
    shown = " ".join(status.output.split())
    assert "failed candidates (2):" in shown, status.output
    for m in found.values():
        assert f"{m.candidate_id}: {inline}" in shown, status.output
    assert shown.count("field `domains` lacks ['delta'] — fix: report every domain of [metric].domains") == 2

    # asked to go on, the next round runs (and fails the same way, shown again) and the run exits 0
    again = runner.invoke(app, ["run", str(run), "--rounds", "2", "--workers", "2", "--keep-going"])
    assert again.exit_code == 0, again.output
    assert " ".join(again.output.split()).count(inline) == 2, again.output
    assert {m.round for m in manifests(run).values()} == {1, 2}
    assert CampaignPaths(run).round(2).trace.exists()


def test_keep_going_from_campaign_toml(tmp_path: Path) -> None:
    run = tmp_path / "run"
    init_campaign(run, broken_substrate(tmp_path), external=tiny_external())
    config = run / "campaign.toml"
    doc = tomlkit.parse(config.read_text())
    doc.setdefault("run", tomlkit.table())["keep_going"] = True
    config.write_text(tomlkit.dumps(doc))
    result = runner.invoke(app, ["run", str(run), "--rounds", "2", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert {m.round for m in manifests(run).values()} == {1, 2}
