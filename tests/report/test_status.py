"""`campaign_status` and `evotrain status [--watch]` read a campaign's progress from its files alone."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evotrain.campaign.status import campaign_status
from evotrain.cli import app
from evotrain.records.layout import CampaignPaths

from .checks import CampaignFiles

runner = CliRunner()


@pytest.fixture
def mid_evaluation(finished_campaign: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the campaign as it was while one round-2 candidate was evaluating its third checkpoint."""
    run = tmp_path / "run"
    shutil.copytree(finished_campaign, run, symlinks=True)
    round2 = run / "rounds" / "r0002"
    planned = next(line for line in (round2 / "round.jsonl").read_text().splitlines() if '"planned"' in line)
    (round2 / "round.jsonl").write_text(planned + "\n")
    (round2 / "evidence.json").unlink()
    shutil.rmtree(run / "rounds" / "r0003")
    candidate = sorted((round2 / "candidates").iterdir())[1]
    (candidate / "manifest.json").unlink()
    trace = candidate / "trace.jsonl"
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    cut = next(i for i, e in enumerate(events) if e["kind"] == "step_started" and e["key"].count("/") == 3)
    cut = next(i for i, e in enumerate(events) if i > cut + 3 and e["kind"] == "step_started")  # the 3rd evaluate
    trace.write_text("".join(json.dumps(e) + "\n" for e in events[: cut + 1]))
    evaluated = sorted((candidate / "work" / "eval").glob("*.json"))
    for report in evaluated[2:]:
        report.unlink()  # the third evaluation has not written its report yet
    return run, f"r0002/{candidate.name}"


def test_finished_candidates_show_their_manifest_values(finished_campaign: Path) -> None:
    files = CampaignFiles(finished_campaign)
    rounds = campaign_status(CampaignPaths(finished_campaign))
    assert [r.state for r in rounds] == ["closed", "closed", "pending"]
    for r in rounds[:2]:
        assert r.finished == len(r.candidates) == 4
        for c in r.candidates:
            m = files.manifests[c.candidate_id]
            assert c.objective == m["selected"]["objective"]
            assert c.step == m["checkpoints"][-1]["checkpoint"] and c.checkpoints == len(m["checkpoints"])
            assert c.last_metric == m["checkpoints"][-1]["objective"]


def test_a_running_candidate_shows_stage_step_and_last_evaluation(
    finished_campaign: Path, mid_evaluation: tuple[Path, str]
) -> None:
    run, candidate_id = mid_evaluation
    finished = CampaignFiles(finished_campaign).manifests[candidate_id]
    rounds = campaign_status(CampaignPaths(run))
    assert [r.state for r in rounds] == ["closed", "running"]
    status = next(c for c in rounds[1].candidates if c.candidate_id == candidate_id)
    assert not status.finished and status.objective is None
    assert status.stage == f"evaluate {finished['checkpoints'][2]['checkpoint']}"
    assert status.role == "worker" and status.axis == finished["axis"], "role and axis come from the round's plan"
    # train had written every checkpoint before evaluation began
    assert status.checkpoints == len(finished["checkpoints"])
    assert status.step == finished["checkpoints"][-1]["checkpoint"]
    # the last metric is the newest *written* evaluation (the 2nd), scored with the round's objective: the number
    # the finished run put in its manifest for that checkpoint
    assert status.last_metric_checkpoint == finished["checkpoints"][1]["checkpoint"]
    assert status.last_metric == finished["checkpoints"][1]["objective"]
    assert status.since is not None and status.since <= time.time()


def test_status_command_prints_the_running_round(mid_evaluation: tuple[Path, str]) -> None:
    run, candidate_id = mid_evaluation
    result = runner.invoke(app, ["status", str(run)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "running" in result.output and candidate_id in result.output
    assert "evaluate step-" in result.output
    result = runner.invoke(app, ["status", str(run), "--watch", "--interval", "0"])
    assert result.exit_code == 2 and "--interval" in result.output


def test_watch_redraws_until_interrupted(mid_evaluation: tuple[Path, str]) -> None:
    run, candidate_id = mid_evaluation
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from evotrain.cli import main; main()",
            "status",
            str(run),
            "--watch",
            "--interval",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        # a background job of a non-interactive shell inherits SIGINT ignored, and Python keeps it so: restore it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # Interrupt only once the first frame is drawn: the CLI's start-up alone can take seconds on a loaded machine.
    assert proc.stdout is not None
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not any(candidate_id in line for line in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # a few more redraws at --interval 0.2
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)
    reader.join(timeout=20)
    out = "".join(seen)
    assert proc.returncode == 0, out
    assert candidate_id in out and "evaluate step-" in out


def test_the_run_view_bar_counts_what_its_table_counts(mid_evaluation: tuple[Path, str]) -> None:
    """The round's bar takes its count from the same file read as the candidates table below it."""
    from rich.console import Console

    from evotrain.cli import CampaignProgress

    run, _ = mid_evaluation
    status = next(r for r in campaign_status(CampaignPaths(run)) if r.state == "running")
    progress = CampaignProgress(CampaignPaths(run), console=Console(width=200, record=True), reread_s=0.0)
    task = progress.add_task(f"round {status.round}", total=len(status.candidates))
    list(progress.get_renderables())
    shown = progress.tasks[task]
    assert (shown.completed, shown.total) == (status.finished, len(status.candidates)) == (3, 4)
