"""Live runs against a real model or CLI: skipped unless its key or executable is present (never in CI here)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from evotrain.campaign.loop import Campaign
from evotrain.workers.budget import AgentBudget
from evotrain.workers.cli_agents import ClaudeCodeWorker, CodexWorker
from evotrain.workers.openai_worker import OpenAIConfig, OpenAIWorker
from evotrain.workers.protocol import Worker

from ..campaign_helpers import make_tiny_campaign, manifests

LIVE_BUDGET = AgentBudget(max_turns=20, max_wall_s=600, max_tokens=200_000)


def _one_round(tmp_path: Path, worker: Worker) -> None:
    run = make_tiny_campaign(tmp_path)
    Campaign(run, worker=worker).run(rounds=1, workers=2)
    m = manifests(run)["r0001/c02-optimizer"]
    assert m.violations == [] and m.rationale
    assert m.worker_usage.turns >= 1 and m.worker_usage.input_tokens > 0


@pytest.mark.slow
@pytest.mark.skipif(
    not (os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))
    or not os.environ.get("EVOTRAIN_AGENT_MODEL"),
    reason="needs OPENAI_API_KEY or OPENAI_BASE_URL, and EVOTRAIN_AGENT_MODEL",
)
def test_live_openai_worker(tmp_path: Path) -> None:
    _one_round(tmp_path, OpenAIWorker(OpenAIConfig(), budget=LIVE_BUDGET))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("claude") is None, reason="needs the real `claude` CLI")
def test_live_claude_code_worker(tmp_path: Path) -> None:
    _one_round(tmp_path, ClaudeCodeWorker(budget=LIVE_BUDGET))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("codex") is None, reason="needs the real `codex` CLI")
def test_live_codex_worker(tmp_path: Path) -> None:
    _one_round(tmp_path, CodexWorker(budget=LIVE_BUDGET))
