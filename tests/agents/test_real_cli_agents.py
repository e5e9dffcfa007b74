"""The real Claude Code and Codex CLIs (the pinned npm versions of `evotrain.workers.agent_clis`) as evotrain
workers, driven end to end by a scripted model on loopback (`scripted_server.py`): no stand-in, no mock.

In a tiny-substrate round the CLI lists the sandbox, reads `recipe.toml`, edits it with its own edit tool, runs
`evotrain trial train` and `evaluate` through its shell tool, tries to write the frozen evaluator (refused: EROFS
under bubblewrap) and finishes with a rationale; the manifest records the change, the CLI's own token and cost
figures and the transcript, and `evotrain audit` passes. Budget stops (turns, wall time, tokens, USD) kill the
CLI's whole process tree while a command it started is still running.

The CLIs are installed once into `.venv/agent-clis` (npm, about 15 s) if absent; the tests skip only where node
or npm is missing. Under bubblewrap where it can run (CI installs it), else with the violation check alone.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any, Literal

import pytest

from evotrain.campaign.audit import audit_campaign
from evotrain.campaign.loop import Campaign
from evotrain.fileio import read_jsonl
from evotrain.llm_api import ModelPrice
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import Manifest
from evotrain.workers import agent_clis
from evotrain.workers.budget import AgentBudget
from evotrain.workers.cli_agents import ClaudeCodeWorker, CLIAgentConfig, CodexWorker

from ..campaign_helpers import make_tiny_campaign, manifests
from .processes import marker_pids, new_marker
from .scripted_server import ScriptedModel, Step

pytestmark = pytest.mark.slow

CANDIDATE = "c02-optimizer"


@pytest.fixture(scope="session")
def clis() -> dict[str, Path]:
    """The pinned CLIs, installed into the venv on first use."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("the real agent CLIs need node and npm (Node.js 20+), which are not on PATH")
    found = agent_clis.installed()
    if len(found) < len(agent_clis.CLIS):
        found = agent_clis.install()
    return found


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials a worker must not pass on, and none of the ones it may use."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EVOTRAIN_LEADERBOARD_TOKEN", "lb-secret")
    monkeypatch.setenv("HF_TOKEN", "hf-secret")


def _usage(n: int) -> dict[str, int]:
    return {"input_tokens": 1000 + 100 * n, "output_tokens": 40 + n}


def _step(reply: dict[str, Any], n: int, **expect: Any) -> Step:
    return {"expect": expect, "reply": {**reply, "usage": _usage(n)}}


RATIONALE = "Lowered train.lr 0.03 → 0.01: a smaller step may stop the overshoot; a gain over the anchor confirms it."

CLAUDE_SCRIPT: list[Step] = [
    _step(
        {
            "text": "Looking at the sandbox.",
            "tools": [{"name": "Bash", "input": {"command": "ls", "description": "ls"}}],
        },
        0,
        prompt_contains=["Axis: **optimizer**", "evotrain trial train"],
        system_contains=["# Worker brief"],
        tools_include=["Bash", "Read", "Edit", "Write"],
    ),
    _step(
        {"tools": [{"name": "Read", "input": {"file_path": "{sandbox}/recipe.toml"}}]},
        1,
        result_contains=["recipe.toml", "eval"],
    ),
    _step(
        {
            "tools": [
                {
                    "name": "Edit",
                    "input": {
                        "file_path": "{sandbox}/recipe.toml",
                        "old_string": "lr = 0.03 ",
                        "new_string": "lr = 0.01 ",
                    },
                }
            ]
        },
        2,
        result_contains=["lr = 0.03"],
    ),
    _step(
        {"tools": [{"name": "Bash", "input": {"command": "evotrain trial train", "description": "train"}}]},
        3,
        result_contains=["recipe.toml"],
        result_error=False,
    ),
    _step(
        {"tools": [{"name": "Bash", "input": {"command": "evotrain trial evaluate", "description": "eval"}}]},
        4,
        result_contains=["attempt a01: train finished"],
        result_error=False,
    ),
    _step(
        {"tools": [{"name": "Read", "input": {"file_path": "{sandbox}/eval/evaluate.py"}}]},
        5,
        result_contains=["selected "],
        result_error=False,
    ),
    _step(  # the Write tool refuses a file it has not read: hence the Read first
        {"tools": [{"name": "Write", "input": {"file_path": "{sandbox}/eval/evaluate.py", "content": "print(1)\n"}}]},
        6,
        result_contains=["def "],
        result_error=False,
    ),  # bubblewrap refuses the write; without it (as root) it is done and the violation check refuses the trial
    _step(
        {
            "tools": [
                {"name": "Bash", "input": {"command": "echo '# lenient' >> eval/evaluate.py", "description": "append"}}
            ]
        },
        7,
        result_error="{bwrap}",
    ),
    _step({"text": RATIONALE}, 8, result_error="{bwrap}"),
]

CODEX_PATCH = "*** Begin Patch\n*** Update File: recipe.toml\n@@\n-lr = 0.03 {tail}\n+lr = 0.01 {tail}\n*** End Patch\n"

CODEX_SCRIPT: list[Step] = [
    _step(
        {"text": "Looking at the sandbox.", "tools": [{"name": "exec_command", "input": {"cmd": "ls"}}]},
        0,
        prompt_contains=["Axis: **optimizer**", "evotrain trial train", "# Worker brief"],
        tools_include=["exec_command", "apply_patch"],
    ),
    _step(
        {"tools": [{"name": "exec_command", "input": {"cmd": "cat recipe.toml"}}]},
        1,
        result_contains=["recipe.toml", "eval"],
    ),
    _step({"tools": [{"name": "apply_patch", "input": CODEX_PATCH}]}, 2, result_contains=["lr = 0.03"]),
    _step(
        {"tools": [{"name": "exec_command", "input": {"cmd": "evotrain trial train"}}]},
        3,
        result_contains=["recipe.toml"],
    ),
    _step(
        {"tools": [{"name": "exec_command", "input": {"cmd": "evotrain trial evaluate"}}]},
        4,
        result_contains=["attempt a01: train finished"],
    ),
    _step(
        {"tools": [{"name": "exec_command", "input": {"cmd": "echo '# lenient' >> eval/evaluate.py"}}]},
        5,
        result_contains=["selected "],
    ),
    _step({"text": RATIONALE}, 6),
]


def _campaign(tmp_path: Path) -> tuple[Path, CampaignPaths]:
    run = make_tiny_campaign(tmp_path)
    return run, CampaignPaths(run)


def _run_round(run: Path, worker: ClaudeCodeWorker | CodexWorker, server: ScriptedModel) -> Manifest:
    sandbox = CampaignPaths(run).round(1).candidate(CANDIDATE).sandbox
    server.variables["sandbox"] = str(sandbox.resolve())
    server.variables["bwrap"] = "true" if worker.bwrap_problem is None else "false"
    Campaign(run, worker=worker).run(rounds=1, workers=2)
    assert server.mismatches == [], "\n".join(server.mismatches)
    return manifests(run)[f"r0001/{CANDIDATE}"]


def _transcript(run: Path) -> list[dict[str, Any]]:
    return list(read_jsonl(CampaignPaths(run).round(1).candidate(CANDIDATE).root / "agent-transcript.jsonl"))


def _tail(recipe: Path) -> str:
    """What follows `lr = 0.03 ` on its line (the comment), for a patch that must match the file exactly."""
    line = next(li for li in recipe.read_text().splitlines() if li.startswith("lr = 0.03 "))
    return line[len("lr = 0.03 ") :]


def _check_round(run: Path, m: Manifest, server: ScriptedModel, steps: int, refused: bool) -> None:
    """`refused`: whether the frozen-file writes were refused as they were made."""
    assert [(c.knob, c.old, c.new, c.direction) for c in m.changes] == [("lr", 0.03, 0.01, "decrease")]
    assert m.rationale == RATIONALE
    assert m.worker_usage.transcript == "agent-transcript.jsonl" and m.worker_usage.stopped_for_budget is None
    if refused:  # the frozen-file writes failed: the official trial ran on the edited recipe
        assert m.ok and m.failure is None and m.violations == [], m.failure
        assert m.selected is not None and m.checkpoints
    else:  # the writes went through (root, no bwrap): the violation check refuses the trial
        assert m.failure is not None and m.failure.failure_class == "violation"
        assert [v.path for v in m.violations] == ["eval/evaluate.py"] and m.checkpoints == []
    cp = CampaignPaths(run).round(1).candidate(CANDIDATE)
    assert "lr = 0.01 " in (cp.sandbox / "recipe.toml").read_text()
    assert (cp.root / "agent-work" / "trace.jsonl").exists()  # the agent's own trial went through the harness
    assert len(server.requests) == steps
    assert audit_campaign(run) == []


CONTAINMENTS = ["auto", "none"]  # auto: bubblewrap here where it can run (CI); none: the violation check alone


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("containment", CONTAINMENTS)
def test_real_claude_code_round(tmp_path: Path, clis: dict[str, Path], containment: Literal["auto", "none"]) -> None:
    run, paths = _campaign(tmp_path)
    with ScriptedModel(CLAUDE_SCRIPT, model="claude-sonnet-4-5") as server:
        worker = _claude(clis, server, AgentBudget(max_turns=20, max_wall_s=300), containment=containment)
        m = _run_round(run, worker, server)
    contained = worker.bwrap_problem is None
    _check_round(run, m, server, len(CLAUDE_SCRIPT), refused=contained)
    assert m.worker == "claude-code"
    u = m.worker_usage
    # the CLI's own figures: every call's input, the real output tokens (message_delta), Claude's own price
    assert u.turns == len(CLAUDE_SCRIPT)
    assert u.input_tokens == sum(1000 + 100 * n for n in range(len(CLAUDE_SCRIPT)))
    assert u.output_tokens == sum(40 + n for n in range(len(CLAUDE_SCRIPT)))
    assert u.cost_usd == pytest.approx((u.input_tokens * 3 + u.output_tokens * 15) / 1e6)  # Sonnet 4.5 list price
    events = _transcript(run)
    assert events[0] == {"type": "evotrain.containment", "bwrap": contained, "why_not": worker.bwrap_problem}
    result = next(e for e in events if e.get("type") == "result")
    assert result["subtype"] == "success" and result["total_cost_usd"] == pytest.approx(u.cost_usd)
    # the frozen evaluator: the Write tool writes a temporary file and renames it over the target, refused with
    # EBUSY (a file bind-mounted read-only cannot be replaced); an in-place append from the shell gets EROFS
    write, append = _tool_result(events, "toolu_scripted_006_0"), _tool_result(events, "toolu_scripted_007_0")
    assert write.get("is_error", False) is contained and append.get("is_error", False) is contained
    if contained:
        assert write["content"].startswith("EBUSY: resource busy or locked, rename"), write
        assert "Read-only file system" in json.dumps(append), append
    # the credential and state folder evotrain gave it
    headers = server.headers[0]
    assert (
        headers.get("x-api-key") == "local" and "claude-cli/" + agent_clis.CLAUDE_CODE.tested in headers["User-Agent"]
    )
    home = paths.round(1).candidate(CANDIDATE).root / "agent-work" / "cli-home"
    assert home.is_dir() and any(home.iterdir())


def _tool_result(events: list[dict[str, Any]], tool_use_id: str) -> dict[str, Any]:
    for e in events:
        if e.get("type") == "user":
            for block in e["message"]["content"]:
                if isinstance(block, dict) and block.get("tool_use_id") == tool_use_id:
                    return dict(block)
    raise AssertionError(f"no tool result for {tool_use_id}")


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("containment", CONTAINMENTS)
def test_real_codex_round(tmp_path: Path, clis: dict[str, Path], containment: Literal["auto", "none"]) -> None:
    """Without bubblewrap Codex runs its commands in its own sandbox (workspace-write), with the campaign under /tmp
    here: the case where Codex refused to create its sandbox helper until evotrain gave it a TMPDIR of its own."""
    run, paths = _campaign(tmp_path)
    script = [dict(s) for s in CODEX_SCRIPT]
    tail = _tail(run / "substrate" / "recipe.toml")
    script[2] = {**script[2], "reply": {**script[2]["reply"], "tools": [
        {"name": "apply_patch", "input": CODEX_PATCH.replace("{tail}", tail)}]}}  # fmt: skip
    price = ModelPrice(input_per_mtok=1.25, output_per_mtok=10.0)
    with ScriptedModel(script, model="gpt-5.5") as server:
        config = CLIAgentConfig(
            executable=str(clis["codex"]), model="gpt-5.5", base_url=server.openai_base_url, price=price,
            containment=containment,
        )  # fmt: skip
        worker = CodexWorker(config, budget=AgentBudget(max_turns=20, max_wall_s=300))
        m = _run_round(run, worker, server)
    contained = worker.bwrap_problem is None
    _check_round(run, m, server, len(CODEX_SCRIPT), refused=True)  # by bwrap, or by Codex's own sandbox
    assert m.worker == "codex"
    u = m.worker_usage
    assert u.input_tokens == sum(1000 + 100 * n for n in range(7))
    assert u.output_tokens == sum(40 + n for n in range(7))
    assert u.cost_usd == pytest.approx(price.cost(u.input_tokens, u.output_tokens))
    events = _transcript(run)
    assert events[0] == {"type": "evotrain.containment", "bwrap": contained, "why_not": worker.bwrap_problem}
    frozen = [e["item"] for e in events if e.get("type") == "item.completed"
              and "eval/evaluate.py" in str(e["item"].get("command"))]  # fmt: skip
    told = server.requests[6]["input"][-1]  # what the model was told of the append
    assert told["type"] == "function_call_output" and "Process exited with code 1" in told["output"]
    if contained:  # evotrain's bubblewrap, Codex's sandbox off: EROFS, and the failed command is in the stream
        assert "Read-only file system" in told["output"] and frozen and frozen[0]["exit_code"] == 1, frozen
    else:  # Codex's own sandbox (no CAP_DAC_OVERRIDE: the snapshot's modes hold even for root) refuses it with
        # EACCES, a "sandbox denial" that `codex exec --json` sometimes leaves out of its stream (2 runs of 3 here)
        assert "Permission denied" in told["output"]
    assert server.headers[0].get("authorization") == "Bearer local"
    home = paths.round(1).candidate(CANDIDATE).root / "agent-work" / "cli-home"
    assert (home / "config.toml").exists()


class Watcher:
    """Polls for `sleep MARKER` while the worker runs: proves the command was running when the budget struck."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.1):
            self.seen.update(marker_pids(self.marker))

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _budget_round(
    tmp_path: Path, worker: ClaudeCodeWorker | CodexWorker, server: ScriptedModel, marker: str
) -> Manifest:
    run, _ = _campaign(tmp_path)
    with Watcher(marker) as watcher:
        m = _run_round(run, worker, server)
    assert watcher.seen, f"`sleep {marker}` never ran"
    assert marker_pids(marker) == [], "a command of the CLI survived the budget stop"
    assert m.failure is not None and m.failure.failure_class == "worker_error"
    assert m.checkpoints == [] and m.worker_usage.stopped_for_budget is not None
    assert audit_campaign(run) == []
    return m


def _claude(
    clis: dict[str, Path], server: ScriptedModel, budget: AgentBudget, containment: Literal["auto", "none"] = "auto"
) -> ClaudeCodeWorker:
    config = CLIAgentConfig(
        executable=str(clis["claude"]), model="claude-sonnet-4-5", base_url=server.base_url, containment=containment
    )
    return ClaudeCodeWorker(config, budget=budget)


def _codex(clis: dict[str, Path], server: ScriptedModel, budget: AgentBudget) -> CodexWorker:
    config = CLIAgentConfig(executable=str(clis["codex"]), model="gpt-5.5", base_url=server.openai_base_url)
    return CodexWorker(config, budget=budget)


def _bash(command: str, **extra: Any) -> dict[str, Any]:
    return {"name": "Bash", "input": {"command": command, "description": "run", **extra}}


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("containment", ["auto", "none"])
def test_turn_budget_stops_real_claude_code_with_a_background_command(
    tmp_path: Path, clis: dict[str, Path], containment: Literal["auto", "none"]
) -> None:
    """Claude Code starts each shell command in a session of its own: without bubblewrap's PID namespace only the
    walk of the process tree (not a process-group kill) reaches it."""
    marker = new_marker()
    script: list[Step] = [
        _step({"tools": [_bash(f"sleep {marker}", run_in_background=True)]}, 0),
        {**_step({"tools": [_bash("ls")]}, 1), "repeat": True, "delay_s": 0.3},  # never finishes; let the watcher look
    ]
    with ScriptedModel(script, model="claude-sonnet-4-5") as server:
        worker = _claude(clis, server, AgentBudget(max_turns=3, max_wall_s=120), containment=containment)
        m = _budget_round(tmp_path, worker, server, marker)
    assert m.failure is not None and m.failure.message == "stopped for budget: turns 3 ≥ max_turns 3"
    assert m.worker_usage.turns == 3 and m.worker_usage.input_tokens == 1000 + 1100 + 1100


@pytest.mark.usefixtures("clean_env")
def test_wall_budget_stops_real_claude_code_mid_command(tmp_path: Path, clis: dict[str, Path]) -> None:
    marker = new_marker()
    # Claude Code refuses a standalone `sleep N` (and `sleep N && …`) in the foreground: wrapped, it runs
    script: list[Step] = [_step({"tools": [_bash(f"timeout 300 sleep {marker}")]}, 0), _step({"text": "never"}, 1)]
    with ScriptedModel(script, model="claude-sonnet-4-5") as server:
        m = _budget_round(tmp_path, _claude(clis, server, AgentBudget(max_turns=10, max_wall_s=8)), server, marker)
    assert m.failure is not None and m.failure.message == "stopped for budget: wall time reached max_wall_s"
    assert 8 <= m.worker_usage.wall_s < 20 and len(server.requests) == 1


@pytest.mark.usefixtures("clean_env")
def test_usd_budget_stops_real_claude_code_by_its_own_price(tmp_path: Path, clis: dict[str, Path]) -> None:
    """`--max-budget-usd`: Claude prices each call itself and stops after the one that crosses the limit."""
    marker = new_marker()
    big = {"input_tokens": 100_000, "output_tokens": 1000}  # $0.315 a call at Sonnet 4.5's list price
    script: list[Step] = [
        {"reply": {"tools": [_bash(f"sleep {marker}", run_in_background=True)], "usage": big}},
        {"reply": {"tools": [_bash("ls")], "usage": big}, "repeat": True, "delay_s": 0.5},
    ]
    with ScriptedModel(script, model="claude-sonnet-4-5") as server:
        budget = AgentBudget(max_turns=10, max_wall_s=120, max_tokens=None, max_usd=0.5)
        m = _budget_round(tmp_path, _claude(clis, server, budget), server, marker)
    assert m.failure is not None and m.failure.message.startswith("stopped for budget: usd 0.63 ≥ max_usd 0.5")
    assert m.worker_usage.cost_usd == pytest.approx(0.63) and m.worker_usage.input_tokens == 200_000


def _exec(cmd: str, **extra: Any) -> dict[str, Any]:
    return {"name": "exec_command", "input": {"cmd": cmd, **extra}}


@pytest.mark.usefixtures("clean_env")
def test_turn_budget_stops_real_codex_with_a_running_command(tmp_path: Path, clis: dict[str, Path]) -> None:
    marker = new_marker()
    script: list[Step] = [
        _step({"tools": [_exec(f"sleep {marker}", yield_time_ms=500)]}, 0),  # still running when it yields
        {**_step({"tools": [_exec("ls")]}, 1), "repeat": True, "delay_s": 0.3},
    ]
    with ScriptedModel(script, model="gpt-5.5") as server:
        m = _budget_round(tmp_path, _codex(clis, server, AgentBudget(max_turns=3, max_wall_s=120)), server, marker)
    assert m.failure is not None and m.failure.message == "stopped for budget: turns 3 ≥ max_turns 3"


@pytest.mark.usefixtures("clean_env")
def test_wall_budget_stops_real_codex_mid_command(tmp_path: Path, clis: dict[str, Path]) -> None:
    marker = new_marker()
    script: list[Step] = [_step({"tools": [_exec(f"sleep {marker}", yield_time_ms=30000)]}, 0),
                          _step({"text": "never reached"}, 1)]  # fmt: skip
    with ScriptedModel(script, model="gpt-5.5") as server:
        m = _budget_round(tmp_path, _codex(clis, server, AgentBudget(max_turns=10, max_wall_s=8)), server, marker)
    assert m.failure is not None and m.failure.message == "stopped for budget: wall time reached max_wall_s"
    assert 8 <= m.worker_usage.wall_s < 20 and len(server.requests) == 1


@pytest.mark.usefixtures("clean_env")
def test_a_claude_subscription_token_reaches_the_cli_and_nothing_else_does(
    tmp_path: Path, clis: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No API key: the long-lived OAuth token of `claude setup-token` is the credential kept through the scrub."""
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-scripted")
    # (the model cannot list the environment to check the scrub: Claude Code asks approval for `env` and
    # `printenv`, which --permission-prompts none denies; test_cli_agents.py checks it with the stand-in)
    script: list[Step] = [
        _step({"tools": [_bash("ls")]}, 0),
        _step({"text": "Changed nothing: a look around only."}, 1, result_contains=["recipe.toml"]),
    ]
    run, _ = _campaign(tmp_path)
    with ScriptedModel(script, model="claude-sonnet-4-5") as server:
        m = _run_round(run, _claude(clis, server, AgentBudget(max_turns=5, max_wall_s=120)), server)
    assert server.headers[0].get("Authorization") == "Bearer sk-ant-oat01-scripted"
    assert "x-api-key" not in {k.lower() for k in server.headers[0]}
    assert m.worker_usage.turns == 2 and m.rationale == "Changed nothing: a look around only."
    assert next(e for e in _transcript(run) if e["type"] == "evotrain.agent")["credential"] == "CLAUDE_CODE_OAUTH_TOKEN"
