"""`evotrain run --agent … --meta …`: the openai worker through the command line, and user mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from evotrain.cli import app

from ..campaign_helpers import make_tiny_campaign, manifests
from .replay_server import ReplayServer

runner = CliRunner()
RECORDINGS = Path(__file__).parent / "recordings"


def test_unknown_agent_is_a_clear_error(tmp_path: Path) -> None:
    run = make_tiny_campaign(tmp_path)
    result = runner.invoke(app, ["run", str(run), "--rounds", "1", "--agent", "gpt-everything"])
    assert result.exit_code == 2
    assert (
        "unknown backend: --agent 'gpt-everything'" in result.output
        and "mutator|guided|optuna-tpe|random|claude-code" in result.output
    )


def test_openai_agent_without_a_model_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVOTRAIN_AGENT_MODEL", raising=False)
    run = make_tiny_campaign(tmp_path)
    result = runner.invoke(app, ["run", str(run), "--rounds", "1", "--agent", "openai", "--agent-base-url", "http://x"])
    assert result.exit_code == 2 and "needs a model name" in result.output


def test_turn_budget_from_the_command_line(tmp_path: Path) -> None:
    run = make_tiny_campaign(tmp_path)
    with ReplayServer.from_file(RECORDINGS / "openai_never_finishes.json") as server:
        args = ["run", str(run), "--rounds", "1", "--workers", "2", "--agent", "openai"]
        args += ["--agent-base-url", server.base_url, "--agent-model", "replay-model", "--agent-turns", "2"]
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    m = manifests(run)["r0001/c02-optimizer"]
    assert m.worker == "openai" and m.failure is not None
    assert m.failure.message == "stopped for budget: turns 2 ≥ max_turns 2"
