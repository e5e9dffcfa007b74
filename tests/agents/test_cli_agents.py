"""Claude Code and Codex workers driven by a stand-in executable on PATH that speaks the real CLIs' JSON formats."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from evotrain.campaign.loop import Campaign
from evotrain.llm_api import ModelPrice
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import Manifest
from evotrain.workers.budget import AgentBudget
from evotrain.workers.cli_agents import (
    CLAUDE_ALLOWED_TOOLS,
    CLAUDE_TOOLS,
    ClaudeCodeWorker,
    CLIAgentConfig,
    CodexWorker,
)
from evotrain.workers.containment import bwrap_problem

from ..campaign_helpers import EXAMPLES, make_tiny_campaign, manifests
from ..test_harness import EVALUATE_ALL
from .processes import marker_pids, new_marker

STANDIN = Path(__file__).parent / "standin_agent.py"


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`claude` and `codex` stand-ins first on PATH; returns the file where they record how they were called
    (in the agent's candidate folder: under bubblewrap the host's /tmp is hidden from it)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("claude", "codex"):
        exe = bindir / name
        exe.write_text(f"#!{sys.executable}\n" + STANDIN.read_text())
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("EVOTRAIN_LEADERBOARD_TOKEN", "lb-secret")
    monkeypatch.setenv("HF_TOKEN", "hf-secret")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-test")
    return _candidate(tmp_path) / "standin-call.json"


def _candidate(tmp_path: Path) -> Path:
    return CampaignPaths(tmp_path / "run").round(1).candidate("c02-optimizer").root


def _started_child(tmp_path: Path) -> bool:
    return (_candidate(tmp_path) / "standin-child.pid").exists()


def _run(tmp_path: Path, worker: ClaudeCodeWorker | CodexWorker) -> Manifest:
    run = make_tiny_campaign(tmp_path)
    Campaign(run, worker=worker).run(rounds=1, workers=2)
    return manifests(run)["r0001/c02-optimizer"]


def test_claude_arguments_stream_parsing_and_manifest(
    tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "edit")
    worker = ClaudeCodeWorker(CLIAgentConfig(model="claude-sonnet-4-5"), budget=AgentBudget(max_turns=7))
    m = _run(tmp_path, worker)
    call = json.loads(standin.read_text())
    argv = call["argv"]
    assert argv[0] == "-p" and "Axis: **optimizer**" in argv[1] and "evotrain trial train" in argv[1]
    assert argv[2:17] == [
        "--output-format", "stream-json", "--verbose", "--include-partial-messages",
        "--tools", CLAUDE_TOOLS, "--allowedTools", CLAUDE_ALLOWED_TOOLS,
        "--permission-mode", "acceptEdits", "--permission-prompts", "none",
        "--strict-mcp-config", "--no-session-persistence", "--append-system-prompt",
    ]  # fmt: skip
    assert argv[17].startswith("# Worker brief")
    assert argv[18:] == ["--max-turns", "7", "--model", "claude-sonnet-4-5"]
    sandbox = CampaignPaths(tmp_path / "run").round(1).candidate("c02-optimizer").sandbox
    assert call["cwd"] == str(sandbox.resolve())
    assert "ANTHROPIC_API_KEY" in call["env"] and "EVOTRAIN_AGENT_CONTEXT" in call["env"]
    assert "CLAUDE_CONFIG_DIR" in call["env"] and "CLAUDE_CODE_DISABLE_CLAUDE_MDS" in call["env"]
    assert not {"EVOTRAIN_LEADERBOARD_TOKEN", "HF_TOKEN", "OPENAI_API_KEY"} & set(call["env"])
    assert m.ok and m.worker == "claude-code"
    assert [(c.knob, c.old, c.new, c.direction) for c in m.changes] == [("lr", 0.03, 0.01, "decrease")]
    assert m.rationale.startswith("Lowered train.lr 0.03 → 0.01")
    u = m.worker_usage
    assert (u.turns, u.input_tokens, u.output_tokens, u.cost_usd) == (2, 1200, 100, pytest.approx(0.0123))
    assert u.transcript == "agent-transcript.jsonl" and u.stopped_for_budget is None


def test_agent_trial_evaluate_uses_evaluate_all_when_declared(
    tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "edit")
    tiny = tmp_path / "tiny"
    shutil.copytree(EXAMPLES / "tiny", tiny, ignore=shutil.ignore_patterns("__pycache__"))
    spec = tiny / "evotrain.toml"
    spec.write_text(spec.read_text().replace("[commands]\n", f"[commands]\nevaluate_all = '{EVALUATE_ALL}'\n", 1))
    worker = ClaudeCodeWorker(CLIAgentConfig(model="claude-sonnet-4-5"), budget=AgentBudget(max_turns=7))
    m = _run(tmp_path, worker)
    assert m.ok and [s.step for s in m.cost.steps] == ["prepare", "train", "evaluate_all"]
    agent_trace = (_candidate(tmp_path) / "agent-work" / "trace.jsonl").read_text()
    assert "/a01/evaluate_all" in agent_trace and "/a01/evaluate/" not in agent_trace


def test_codex_arguments_stream_parsing_and_price(
    tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "edit")
    price = ModelPrice(input_per_mtok=1.25, output_per_mtok=10.0)
    m = _run(tmp_path, CodexWorker(CLIAgentConfig(price=price)))
    call = json.loads(standin.read_text())
    cp = CampaignPaths(tmp_path / "run").round(1).candidate("c02-optimizer")
    sandbox_mode = "danger-full-access" if bwrap_problem() is None else "workspace-write"  # see cli_agents.py
    assert call["argv"][:10] == [
        "exec", "--json", "--skip-git-repo-check", "--ephemeral", "--sandbox", sandbox_mode,
        "--cd", str(cp.sandbox.resolve()), "--add-dir", str(cp.root.resolve() / "agent-work"),
    ]  # fmt: skip
    assert call["argv"][-1].startswith("# Worker brief") and "Axis: **optimizer**" in call["argv"][-1]
    assert "OPENAI_API_KEY" in call["env"] and "ANTHROPIC_API_KEY" not in call["env"]
    assert "CODEX_HOME" in call["env"] and "TMPDIR" in call["env"]
    config = (cp.root / "agent-work" / "cli-home" / "config.toml").read_text()
    assert 'model_provider = "evotrain"' in config and 'env_key = "OPENAI_API_KEY"' in config
    assert m.ok and m.worker == "codex" and m.rationale.startswith("Lowered train.lr")
    u = m.worker_usage
    assert (u.turns, u.input_tokens, u.output_tokens) == (3, 3000, 400)
    assert u.cost_usd == pytest.approx((3000 * 1.25 + 400 * 10.0) / 1e6)


def test_a_cli_agent_that_rewrites_a_frozen_file_gets_a_violation_and_no_trial(
    tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "frozen")
    # without bubblewrap (under it the replacement itself fails: test_bwrap.py): the violation check is the backstop
    m = _run(tmp_path, ClaudeCodeWorker(CLIAgentConfig(containment="none")))
    assert m.failure is not None and m.failure.failure_class == "violation"
    assert [(v.path, v.kind) for v in m.violations] == [("eval/evaluate.py", "frozen_edit")]
    assert m.checkpoints == [] and m.selected is None
    snapshot = (tmp_path / "run" / "substrate" / "eval" / "evaluate.py").read_text()
    assert "_lenient_" not in snapshot  # the snapshot was not written through


def test_budget_stop_kills_the_claude_process_tree(
    tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "forever")
    monkeypatch.setenv("STANDIN_SLEEP", marker := new_marker())
    m = _run(tmp_path, ClaudeCodeWorker(budget=AgentBudget(max_turns=100, max_tokens=3000)))
    assert m.failure is not None and m.failure.failure_class == "worker_error"
    assert m.failure.message.startswith("stopped for budget: tokens ")
    assert m.worker_usage.stopped_for_budget is not None and "max_tokens 3000" in m.worker_usage.stopped_for_budget
    assert 3000 <= m.worker_usage.input_tokens + m.worker_usage.output_tokens < 3000 + 650
    assert _started_child(tmp_path)
    assert marker_pids(marker) == [], "the agent's grandchild process survived the budget stop"


def test_turn_budget_stops_codex(tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_MODE", "forever")
    monkeypatch.setenv("STANDIN_SLEEP", marker := new_marker())
    m = _run(tmp_path, CodexWorker(budget=AgentBudget(max_turns=5)))
    assert m.failure is not None and m.failure.message == "stopped for budget: turns 5 ≥ max_turns 5"
    assert _started_child(tmp_path) and marker_pids(marker) == []


def test_wall_time_stops_a_silent_agent(tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_MODE", "silent")
    monkeypatch.setenv("STANDIN_SLEEP", marker := new_marker())
    m = _run(tmp_path, CodexWorker(budget=AgentBudget(max_wall_s=1.5)))
    assert m.failure is not None and m.failure.message == "stopped for budget: wall time reached max_wall_s"
    assert 1.5 <= m.worker_usage.wall_s < 10
    assert _started_child(tmp_path) and marker_pids(marker) == []


def test_missing_cli_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from evotrain.errors import ConfigError

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="`claude` command"):
        ClaudeCodeWorker()


def _fake_cli(tmp_path: Path, name: str, version_line: str) -> Path:
    """An executable that only answers `--version` (bad input for the start-up check, not a stand-in agent)."""
    exe = tmp_path / name
    exe.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    exe.chmod(0o755)
    return exe


def test_a_cli_older_than_the_tested_version_is_a_config_error_naming_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evotrain.errors import ConfigError

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    old = _fake_cli(tmp_path, "claude-old", "1.0.128 (Claude Code)")
    too_old = r"needs @anthropic-ai/claude-code 2\.1\.328 or newer; .* is 1\.0\.128"
    with pytest.raises(ConfigError, match=too_old) as err:
        ClaudeCodeWorker(CLIAgentConfig(executable=str(old)))
    assert err.value.fix is not None and "npm install -g @anthropic-ai/claude-code@2.1.328" in err.value.fix
    other = _fake_cli(tmp_path, "not-codex", "hello")
    with pytest.raises(ConfigError, match=r"could not read a version .* is it the @openai/codex CLI"):
        CodexWorker(CLIAgentConfig(executable=str(other)))


def test_a_cli_agent_without_a_credential_is_a_config_error(
    tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evotrain.errors import ConfigError

    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "no-login"))
    names = "ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN or CLAUDE_CODE_OAUTH_TOKEN"
    with pytest.raises(ConfigError, match=names) as err:
        ClaudeCodeWorker()
    assert err.value.fix is not None and "claude setup-token" in err.value.fix
    with pytest.raises(ConfigError, match="OPENAI_API_KEY in the environment, or a `codex login`"):
        CodexWorker()
    # a local endpoint takes any key: evotrain sets one
    assert ClaudeCodeWorker(CLIAgentConfig(base_url="http://127.0.0.1:9")).credential.value == "local"


def test_a_codex_login_is_copied_in_and_a_refreshed_one_handed_back(
    tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ChatGPT login (`codex login`, no API key): its auth.json goes into the worker's CODEX_HOME and is removed
    after; if Codex refreshed the tokens meanwhile, the refreshed file replaces the user's."""
    monkeypatch.delenv("OPENAI_API_KEY")
    user_home = tmp_path / "user-codex"
    user_home.mkdir()
    (user_home / "auth.json").write_text('{"tokens": "old"}')
    monkeypatch.setenv("CODEX_HOME", str(user_home))
    monkeypatch.setenv("STANDIN_MODE", "edit")
    monkeypatch.setenv("STANDIN_REFRESH_LOGIN", '{"tokens": "refreshed"}')
    m = _run(tmp_path, CodexWorker())
    assert m.ok
    cli_home = _candidate(tmp_path) / "agent-work" / "cli-home"
    assert not (cli_home / "auth.json").exists()
    assert (user_home / "auth.json").read_text() == '{"tokens": "refreshed"}'
    assert 'model_provider = "evotrain"' not in (cli_home / "config.toml").read_text()  # Codex's own provider
    call = json.loads(standin.read_text())
    assert call["saw_login"] == '{"tokens": "old"}' and "OPENAI_API_KEY" not in call["env"]
