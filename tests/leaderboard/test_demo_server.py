"""`evotrain demo`'s leaderboard: started for the run on loopback, labels outside the campaign, always stopped."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import httpx
import pytest

from evotrain.campaign.config import load_config
from evotrain.campaign.init import init_campaign
from evotrain.demo import TOKEN_ENV, URL_ENV, DemoPaths, demo_leaderboard, external_target
from evotrain.external.config import LeaderboardTargetConfig
from evotrain.external.factory import build_target

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def demo_like(root: Path) -> DemoPaths:
    """The demo's layout under `root`, with the tiny substrate standing in for the (slow to build) puzzles one."""
    paths = DemoPaths(root)
    paths.answers.parent.mkdir(parents=True)
    shutil.copy(EXAMPLES / "tiny_external_answers.jsonl", paths.answers)
    substrate = shutil.copytree(EXAMPLES / "tiny", paths.substrate)
    init_campaign(paths.campaign, Path(substrate), external=external_target())
    return paths


def test_the_server_runs_for_the_block_and_stops_after_it(tmp_path: Path) -> None:
    paths = demo_like(tmp_path / "demo")
    config = load_config(paths.campaign / "campaign.toml").external
    assert isinstance(config, LeaderboardTargetConfig)
    assert not paths.answers.is_relative_to(paths.campaign) and not paths.leaderboard_db.is_relative_to(paths.campaign)
    with demo_leaderboard(paths) as url:
        assert url is not None and url.startswith("http://127.0.0.1:")
        assert os.environ[URL_ENV] == url
        target = build_target(config)  # what Campaign does: URL and token from the environment
        campaign = target.campaign()  # type: ignore[attr-defined]
        assert campaign["campaign"] == "campaign" and campaign["budget"]["max_total"] == 40
    assert URL_ENV not in os.environ and TOKEN_ENV not in os.environ
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)

    with pytest.raises(RuntimeError, match="boom"), demo_leaderboard(paths) as second:
        assert second is not None and httpx.get(f"{second}/healthz", timeout=5).status_code == 200
        raise RuntimeError("boom")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{second}/healthz", timeout=2)


@pytest.mark.slow
def test_the_summary_after_a_run_shows_the_held_out_scores_of_before_and_after(tmp_path: Path) -> None:
    from rich.console import Console

    from evotrain.campaign.loop import Campaign
    from evotrain.campaign.store import CampaignStore
    from evotrain.campaign.verdict import campaign_verdict
    from evotrain.cli import verdict_view
    from evotrain.demo import held_out_scores
    from evotrain.records.layout import CampaignPaths

    paths = demo_like(tmp_path / "demo")
    with demo_leaderboard(paths):
        Campaign(paths.campaign).run(rounds=1, workers=3, parallel=1)
    private = held_out_scores(paths)
    verdict = campaign_verdict(CampaignStore(CampaignPaths(paths.campaign)), private=private)
    assert verdict.substrate is not None and verdict.pick is not None
    assert verdict.private_before is not None and verdict.private_after is not None
    assert set(private) == {
        m.external.submission_id for m in CampaignStore(CampaignPaths(paths.campaign)).manifests(up_to_round=1)
        if m.external is not None
    }  # fmt: skip
    console = Console(width=200, record=True)
    console.print(verdict_view(verdict, held_out_label="held-out"))
    text = console.export_text()
    assert "held-out" in text and f"{verdict.private_after:.4f}" in text and f"{verdict.private_before:.4f}" in text
    # not finalized: the demo can resume and submit again
    with demo_leaderboard(paths):
        Campaign(paths.campaign).run(rounds=2, workers=3, parallel=1)
    assert len(held_out_scores(paths)) > len(private)


@pytest.mark.slow
def test_a_finished_demo_is_extended_by_demo_with_more_rounds_and_by_run(tmp_path: Path) -> None:
    """`demo --rounds/--workers` on a demo folder that exists resumes it and extends it; `evotrain run` on the
    demo's campaign serves the demo's leaderboard itself (URL_ENV unset) instead of failing on it."""
    from typer.testing import CliRunner

    from evotrain.campaign.status import campaign_status
    from evotrain.cli import app
    from evotrain.records.layout import CampaignPaths

    paths = demo_like(tmp_path / "demo" / "full")  # prepare_demo finds the campaign there and resumes it
    runner = CliRunner()
    env = {"COLUMNS": "250"}
    out = runner.invoke(app, ["demo", "--dir", str(tmp_path / "demo"), "--rounds", "1", "--workers", "2"], env=env)
    assert out.exit_code == 0, out.output
    assert "1 round(s) × 2 candidates" in out.output and "verdict after 1 round(s)" in out.output
    assert "--rounds 3` extends the campaign" in out.output
    out = runner.invoke(app, ["demo", "--dir", str(tmp_path / "demo"), "--rounds", "2", "--workers", "3"], env=env)
    assert out.exit_code == 0, out.output
    rounds = campaign_status(CampaignPaths(paths.campaign))
    assert [(r.state, len(r.candidates)) for r in rounds[:2]] == [("closed", 2), ("closed", 3)]

    assert URL_ENV not in os.environ
    out = runner.invoke(app, ["run", str(paths.campaign), "--rounds", "3", "--workers", "2"], env=env)
    assert out.exit_code == 0, out.output
    assert "serving its leaderboard" in out.output and "verdict after 3 round(s)" in out.output
    third = campaign_status(CampaignPaths(paths.campaign))[2]
    assert third.state == "closed" and any(c.external is not None for c in third.candidates)
    assert URL_ENV not in os.environ and TOKEN_ENV not in os.environ


# ---- the server's lifetime: it dies with its demo, and a stale one is stopped by the next ---------------------
def _alive(pid: int) -> bool:
    from evotrain.executors.local import group_members

    return bool(group_members(pid))


def _wait_gone(pid: int, timeout_s: float = 15.0) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _alive(pid)


def test_the_server_dies_with_its_demo_killed_by_sigkill(tmp_path: Path) -> None:
    """`kill -9` of the demo's whole process group: the server sits in a session of its own, and stops by itself."""
    import signal
    import subprocess
    import sys

    answers = tmp_path / "hidden" / "answers.jsonl"
    answers.parent.mkdir()
    shutil.copy(EXAMPLES / "tiny_external_answers.jsonl", answers)
    db = tmp_path / "hidden" / "leaderboard.sqlite"
    script = (
        "import sys, time; from pathlib import Path; from evotrain.demo import start_leaderboard; "
        f"server, url = start_leaderboard(Path({str(answers)!r}), Path({str(db)!r})); "
        "print(server.pid, flush=True); time.sleep(120)"
    )
    demo = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert demo.stdout is not None
        server_pid = int(demo.stdout.readline())
        assert _alive(server_pid) and db.with_suffix(".pid").exists()
        os.killpg(demo.pid, signal.SIGKILL)
        demo.wait()
        assert _wait_gone(server_pid), "the server outlived its demo"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(demo.pid, signal.SIGKILL)


def test_a_rerun_stops_a_stale_server_it_recorded_and_nothing_else(tmp_path: Path) -> None:
    import subprocess

    from evotrain.demo import ServerRecord, start_leaderboard, stop_leaderboard
    from evotrain.executors.local import process_start_ticks
    from evotrain.fileio import atomic_write_json

    answers = tmp_path / "answers.jsonl"
    shutil.copy(EXAMPLES / "tiny_external_answers.jsonl", answers)
    db = tmp_path / "leaderboard.sqlite"
    stale, _ = start_leaderboard(answers, db)  # its demo "forgot" it: never stopped
    fresh, url = start_leaderboard(answers, db)
    try:
        assert stale.wait(timeout=15) is not None, "the stale server was stopped"
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        assert ServerRecord.model_validate_json(db.with_suffix(".pid").read_text()).pid == fresh.pid
    finally:
        stop_leaderboard(fresh, db)
        stop_leaderboard(stale, db)
    assert not db.with_suffix(".pid").exists()
    # a record naming some other process (a reused pid, another program) is dropped, the process left alone
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        record = ServerRecord(pid=other.pid, start_ticks=process_start_ticks(other.pid), db=str(db.resolve()))
        atomic_write_json(db.with_suffix(".pid"), record)
        again, _ = start_leaderboard(answers, db)
        stop_leaderboard(again, db)
        assert other.poll() is None, "a process that is not our server was not touched"
    finally:
        other.kill()
        other.wait()
