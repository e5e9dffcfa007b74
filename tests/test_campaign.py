"""The campaign loop end to end on the tiny substrate: rounds, manifests, evidence, policy, audit, tampering."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evotrain.campaign.loop import Campaign
from evotrain.cli import app
from evotrain.errors import IntegrityError
from evotrain.fileio import read_jsonl
from evotrain.records.evidence import SECTIONS
from evotrain.records.layout import CampaignPaths
from evotrain.records.policy import Policy
from evotrain.trial.trace import Trace
from evotrain.workers.protocol import WorkerRequest, WorkerResult

from .campaign_helpers import make_tiny_campaign, manifests

runner = CliRunner()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-round × 4-candidate campaign, run once through the CLI and shared by the read-only tests below."""
    tmp = tmp_path_factory.mktemp("campaign")
    run = make_tiny_campaign(tmp)
    result = runner.invoke(app, ["run", str(run), "--rounds", "2", "--workers", "4", "--parallel", "2"])
    assert result.exit_code == 0, result.output
    return run


def test_two_rounds_of_four_candidates(finished_run: Path) -> None:
    paths = CampaignPaths(finished_run)
    found = manifests(finished_run)
    for round_no in (1, 2):
        rp = paths.round(round_no)
        round_manifests = [m for m in found.values() if m.round == round_no]
        assert len(round_manifests) == 4
        assert sorted(m.role for m in round_manifests) == ["anchor", "worker", "worker", "worker"]
        assert len({m.axis for m in round_manifests if m.role == "worker"}) == 3  # distinct axes
        for m in round_manifests:
            assert m.failure is None, m.failure
            assert m.selected is not None and m.checkpoints
            assert m.role == "anchor" or m.changes, "every worker changed something along its axis"
            assert all(c.axis == m.axis for c in m.changes)
        evidence = json.loads(rp.evidence_json.read_text())
        assert [k for k in evidence if k in SECTIONS] == list(SECTIONS)
        headings = [line for line in rp.evidence_md.read_text().splitlines() if line.startswith("## ")]
        assert len(headings) == 5
        kinds = [e["kind"] for e in read_jsonl(rp.trace)]
        assert kinds.count("round_closed") == 1
    # each round's policy chains to the previous one; round 3's policy is ready for the next run
    p1, p2, p3 = (Policy.model_validate_json(paths.round(r).policy_json.read_text()) for r in (1, 2, 3))
    assert p2.parent_sha256 == p1.sha256() and p3.parent_sha256 == p2.sha256()
    assert any(m.external is not None for m in found.values()), "the external target scored someone"


def test_a_rounds_external_predictions_run_in_parallel(finished_run: Path) -> None:
    """The candidates chosen for the external target are predicted `--parallel` (2) at a time, not in turn."""
    for round_paths in CampaignPaths(finished_run).rounds():
        spans: dict[str, list[float]] = {}
        for cp in round_paths.candidates():
            for event in read_jsonl(cp.trace):
                if event["kind"] in ("step_started", "step_finished") and "/predict/" in (event["key"] or ""):
                    spans.setdefault(event["key"], []).append(event["ts"])
        if len(spans) < 2:
            continue
        (_, end_a), (start_b, _) = sorted(spans.values())[:2]
        assert start_b < end_a, f"round {round_paths.number}: the second prediction waited for the first"


def test_audit_passes_and_status_reads_files(finished_run: Path) -> None:
    result = runner.invoke(app, ["audit", str(finished_run)])
    assert result.exit_code == 0, result.output
    assert "audit passed" in result.output
    result = runner.invoke(app, ["status", str(finished_run)])
    assert result.exit_code == 0 and "closed" in result.output


def test_rerun_of_a_finished_campaign_changes_nothing(finished_run: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in finished_run.rglob("manifest.json")}
    Campaign(finished_run).run(rounds=2, workers=4, parallel=2)
    after = {p: p.stat().st_mtime_ns for p in finished_run.rglob("manifest.json")}
    assert before == after


def _unlock(path: Path) -> None:
    os.chmod(path, 0o644)


def test_tampered_substrate_stops_run_and_audit(tmp_path: Path) -> None:
    run = make_tiny_campaign(tmp_path)
    target = run / "substrate" / "eval" / "evaluate.py"
    _unlock(target)
    target.write_text(target.read_text() + "\n# sneaky\n")
    result = runner.invoke(app, ["run", str(run), "--rounds", "1", "--workers", "2"])
    assert result.exit_code == 2
    assert "eval/evaluate.py" in result.output
    result = runner.invoke(app, ["audit", str(run)])
    assert result.exit_code == 1
    assert "eval/evaluate.py" in result.output


def test_tampered_constitution_stops_run_and_audit(tmp_path: Path) -> None:
    run = make_tiny_campaign(tmp_path)
    target = run / "constitution.md"
    _unlock(target)
    target.write_text(target.read_text().replace("authoritative", "advisory"))
    with pytest.raises(IntegrityError, match=r"constitution\.md"):
        Campaign(run).run(rounds=1, workers=2)
    result = runner.invoke(app, ["audit", str(run)])
    assert result.exit_code == 1 and "constitution.md" in result.output


class FrozenPathEditor:
    """A worker that edits the frozen evaluation harness, as a misbehaving agent might."""

    name = "frozen-editor"

    def propose(self, request: WorkerRequest) -> WorkerResult:
        target = request.sandbox / "eval" / "evaluate.py"
        target.unlink()  # the shared file is a read-only hardlink; replacing it is what an agent could do
        target.write_text("print('all scores are 1.0')\n")
        return WorkerResult(rationale="rewrote the evaluator")


def test_worker_edit_to_a_frozen_path_is_refused_and_recorded(tmp_path: Path) -> None:
    run = make_tiny_campaign(tmp_path)
    Campaign(run, worker=FrozenPathEditor()).run(rounds=1, workers=2, parallel=1)
    found = manifests(run)
    worker = next(m for m in found.values() if m.role == "worker")
    assert worker.failure is not None and worker.failure.failure_class == "violation"
    assert [(v.path, v.kind) for v in worker.violations] == [("eval/evaluate.py", "frozen_edit")]
    cp = CampaignPaths(run).round(1).candidate(worker.candidate_id.split("/")[1])
    assert not Trace(cp.trace).has("step_started"), "the trial did not run"
    anchor = next(m for m in found.values() if m.role == "anchor")
    assert anchor.failure is None
    assert (run / "substrate" / "eval" / "evaluate.py").read_text() != "print('all scores are 1.0')\n"
    assert runner.invoke(app, ["audit", str(run)]).exit_code == 0


def test_cli_init_and_run_with_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps run with the sandbox as working directory: a relative campaign path must still reach them whole."""
    substrate = make_tiny_campaign(tmp_path, name="unused").parent / "tiny"
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "rel", "--substrate", substrate.name, "--external", "command:echo 0.5"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["run", "rel", "--rounds", "1", "--workers", "2", "--parallel", "2"])
    assert result.exit_code == 0, result.output
    found = manifests(tmp_path / "rel")
    assert len(found) == 2 and all(m.failure is None for m in found.values())
    assert runner.invoke(app, ["init", "rel", "--substrate", substrate.name]).exit_code == 2  # exists already
