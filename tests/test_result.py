"""`evotrain result RUN [--export DIR]`: the verdict in one line, the standing recipe, the best checkpoint, and the
folder that hands them over; and the same verdict closing `run`."""

from __future__ import annotations

import json
import math
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evotrain import __version__
from evotrain.campaign.store import CampaignStore
from evotrain.campaign.verdict import Z95, campaign_verdict, promotion_line, verdict_line
from evotrain.cli import app
from evotrain.records.layout import CampaignPaths

from .campaign_helpers import make_tiny_campaign

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


@pytest.fixture(scope="module")
def run_and_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 2-round × 3-candidate tiny campaign, run through the CLI (read-only for the tests), and what it printed."""
    run = make_tiny_campaign(tmp_path_factory.mktemp("result"))
    out = runner.invoke(app, ["run", str(run), "--rounds", "2", "--workers", "3"], env=WIDE)
    assert out.exit_code == 0, out.output
    return run, out.output


@pytest.fixture(scope="module")
def finished(run_and_output: tuple[Path, str]) -> Path:
    return run_and_output[0]


def files_json(run: Path) -> tuple[list[dict], dict[int, dict], dict[int, dict]]:
    manifests = [json.loads(p.read_text()) for p in sorted(run.glob("rounds/*/candidates/*/manifest.json"))]
    evidence = {int(p.parent.name[1:]): json.loads(p.read_text()) for p in run.glob("rounds/*/evidence.json")}
    policies = {int(p.parent.name[1:]): json.loads(p.read_text()) for p in run.glob("rounds/*/policy.json")}
    return manifests, evidence, policies


def test_the_verdict_is_read_from_the_files(finished: Path) -> None:
    manifests, evidence, policies = files_json(finished)
    verdict = campaign_verdict(CampaignStore(CampaignPaths(finished)))
    ext = verdict.external
    assert verdict.rounds == 2 and ext is not None
    anchor = next(m for m in manifests if m["candidate_id"] == "r0001/c01-anchor")
    best = max((m for m in manifests if m["external"]), key=lambda m: m["external"]["score"])
    assert ext.before == anchor["external"]["score"] and ext.after == best["external"]["score"]
    calibration = evidence[2]["calibration"]
    half = Z95 * math.sqrt(2) * calibration["external_noise_band"]
    assert ext.interval == pytest.approx((ext.gain - half, ext.gain + half))
    assert ext.threshold == calibration["external_threshold"]
    assert ext.cleared == (ext.gain > calibration["external_threshold"])
    assert verdict.submissions == sum(1 for m in manifests if m["external"])
    assert verdict.standing.diff == policies[3]["standing_recipe"]["diff"]
    checkpoint = verdict.best_checkpoint
    assert checkpoint is not None and checkpoint.is_dir() and checkpoint.name == best["external"]["checkpoint"]
    assert best["candidate_id"].split("/")[1] in str(checkpoint)

    line = verdict_line(verdict)
    assert f"external {ext.before:.4f} → {ext.after:.4f}" in line and f"{ext.gain:+.4f}" in line
    assert f"95% interval {ext.interval[0]:+.4f} to {ext.interval[1]:+.4f}" in line  # type: ignore[index]
    assert ("beyond the external noise" in line) == ext.cleared or "substrate's own recipe" in line
    assert f"best of {verdict.submissions} submissions" in line


def test_run_closes_with_the_verdict_line(run_and_output: tuple[Path, str]) -> None:
    finished, output = run_and_output
    last = [line for line in output.splitlines() if line.strip()][-1]
    assert last == verdict_line(campaign_verdict(CampaignStore(CampaignPaths(finished))))


def test_result_prints_the_verdict_recipe_and_best_checkpoint(finished: Path) -> None:
    verdict = campaign_verdict(CampaignStore(CampaignPaths(finished)))
    out = runner.invoke(app, ["result", str(finished)], env=WIDE)
    assert out.exit_code == 0, out.output
    assert verdict_line(verdict) in out.output.replace("\n", " ")
    assert str(verdict.best_checkpoint) in out.output
    assert ("final standing recipe: the substrate's, unchanged" in out.output) == (not verdict.standing.diff)


def test_export_writes_recipe_diff_checkpoint_and_readme(finished: Path, tmp_path: Path) -> None:
    dest = tmp_path / "deliverable"
    out = runner.invoke(app, ["result", str(finished), "--export", str(dest)], env=WIDE)
    assert out.exit_code == 0, out.output
    verdict = campaign_verdict(CampaignStore(CampaignPaths(finished)))
    checkpoint = verdict.best_checkpoint
    assert checkpoint is not None
    readme = (dest / "README.md").read_text()
    assert verdict_line(verdict) in readme and "## Promoted changes" in readme
    assert (dest / "recipe.diff").read_text() == verdict.standing.diff
    for relpath, text in verdict.standing.files.items():
        assert (dest / "recipe" / relpath).read_text() == text
    assert (dest / "recipe").exists() == bool(verdict.standing.files)
    copied = dest / "checkpoint" / checkpoint.name
    assert sorted(p.name for p in copied.iterdir()) == sorted(p.name for p in checkpoint.iterdir())
    for original in checkpoint.iterdir():
        assert (copied / original.name).read_bytes() == original.read_bytes()
    pick = verdict.pick_manifest
    assert pick is not None
    assert (dest / "checkpoint.recipe.diff").exists() == (pick.recipe_diff != verdict.standing.diff)
    assert not (dest / "adapter.zip").exists(), "the tiny substrate's checkpoint is not a LoRA adapter"
    assert not list(tmp_path.glob(".deliverable.partial-*")), "the staging folder is gone"

    again = runner.invoke(app, ["result", str(finished), "--export", str(dest)], env=WIDE)
    assert again.exit_code == 2 and "not empty" in again.output and "Traceback" not in again.output


def test_export_packages_a_lora_adapter_checkpoint(finished: Path, tmp_path: Path) -> None:
    """A checkpoint folder that holds a peft adapter (as the hf-lora substrate's do) is also zipped for submission."""
    run = tmp_path / "run"
    shutil.copytree(finished, run, symlinks=True)
    checkpoint = campaign_verdict(CampaignStore(CampaignPaths(run))).best_checkpoint
    assert checkpoint is not None
    (checkpoint / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "lora_alpha": 16}))
    (checkpoint / "adapter_model.safetensors").write_bytes(b"weights")
    out = runner.invoke(app, ["result", str(run), "--export", str(tmp_path / "out")], env=WIDE)
    assert out.exit_code == 0, out.output
    with zipfile.ZipFile(tmp_path / "out" / "adapter.zip") as zf:
        assert "adapter_config.json" in zf.namelist() and "adapter_model.safetensors" in zf.namelist()
    assert "adapter.zip" in (tmp_path / "out" / "README.md").read_text()


def test_a_campaign_with_no_closed_round_has_nothing_to_export(tmp_path: Path) -> None:
    run = make_tiny_campaign(tmp_path)
    out = runner.invoke(app, ["result", str(run)], env=WIDE)
    assert out.exit_code == 0 and "no round has closed yet" in out.output
    out = runner.invoke(app, ["result", str(run), "--export", str(tmp_path / "out")], env=WIDE)
    assert out.exit_code == 2 and "nothing to export yet" in out.output and not (tmp_path / "out").exists()


def test_version_and_help_conventions() -> None:
    out = runner.invoke(app, ["--version"])
    assert out.exit_code == 0 and out.output.strip() == f"evotrain {__version__}"
    for command in ("init", "run", "status", "report", "audit", "cancel", "summary", "result", "demo"):
        text = runner.invoke(app, [command, "--help"], env=WIDE).output
        assert "<bool>" not in text, command
        if command != "demo":
            assert "RUN" in text and "{run}" not in text and "the campaign folder" in text, command
    run_help = runner.invoke(app, ["run", "--help"], env=WIDE).output
    assert "[default: [run] workers in campaign.toml, 4]" in run_help
    assert "[default: [run] parallel in campaign.toml, 2]" in run_help


def test_piped_output_prints_each_stage_and_rounds_long_floats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CliRunner's output is not a terminal, as in `evotrain run … | tee log`: no live table is drawn there, so
    each running candidate's stage change is printed as a line instead, read from the same files."""
    import evotrain.cli

    monkeypatch.setattr(evotrain.cli, "STAGE_LINES_S", 0.05)
    run = make_tiny_campaign(tmp_path)
    out = runner.invoke(app, ["run", str(run), "--rounds", "1", "--workers", "2"], env=WIDE)
    assert out.exit_code == 0, out.output
    stages = [line.split() for line in out.output.splitlines() if line.startswith("  r1 c0")]
    assert any(words[2] == "evaluate" and words[3].startswith("step-") for words in stages if len(words) > 3)
    assert any(words[2] in ("train", "prepare") for words in stages)
    policy_lines = [line for line in out.output.splitlines() if "policy →" in line]
    assert policy_lines and not any(re.search(r"\d\.\d{6,}", line) for line in policy_lines)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> CampaignPaths:
    """The synthetic campaign tests/test_stacking.py reads (seed 0, the trap from round 3): it promotes."""
    from .test_synthetic_benchmark import B

    work = tmp_path_factory.mktemp("synthetic")
    result = B.run_campaign(label="t", seed=0, arm="trap", trap_round=3, rounds=4, workers=8, work=work, keep=True)
    assert result.error is None
    return CampaignPaths(work / "t-s0000-trap" / "run")


@pytest.mark.slow
def test_result_names_each_promotion_with_its_gain_and_interval_and_exports_the_recipe(
    campaign: CampaignPaths, tmp_path: Path
) -> None:
    store = CampaignStore(campaign)
    verdict = campaign_verdict(store)
    assert verdict.promotions
    for p in verdict.promotions:
        assert p.source is not None
        source_round = int(p.source.split("/")[0][1:])
        summary = next(s for s in store.read_evidence(source_round).candidates if s.candidate_id == p.source)
        assert p.gain == summary.gain and p.interval == summary.gain_interval and p.interval is not None
        assert p.changes, "a promotion of the mutator names its knob changes"
    final = store.policy(verdict.rounds + 1).standing_recipe
    out = CliRunner().invoke(
        app, ["result", str(campaign.root), "--export", str(tmp_path / "out")], env={"COLUMNS": "400"}
    )
    assert out.exit_code == 0, out.output
    for p in verdict.promotions:
        assert promotion_line(p) in out.output
    for relpath, text in final.files.items():
        assert (tmp_path / "out" / "recipe" / relpath).read_text() == text
    assert (tmp_path / "out" / "recipe.diff").read_text() == final.diff
    readme = (tmp_path / "out" / "README.md").read_text()
    assert all(promotion_line(p) in readme for p in verdict.promotions)
