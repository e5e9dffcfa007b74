"""The `openai` worker driven end to end through a real trial by a loopback server replaying a recorded conversation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evotrain.campaign.loop import Campaign
from evotrain.fileio import read_jsonl
from evotrain.llm_api import ModelPrice
from evotrain.records.layout import CampaignPaths
from evotrain.trial.trace import Trace
from evotrain.workers.budget import AgentBudget, RoundLedger
from evotrain.workers.openai_worker import OpenAIConfig, OpenAIWorker

from ..campaign_helpers import make_tiny_campaign, manifests
from .replay_server import ReplayServer

RECORDINGS = Path(__file__).parent / "recordings"
PRICE = ModelPrice(input_per_mtok=3.0, output_per_mtok=15.0)


def _worker(server: ReplayServer, budget: AgentBudget | None = None, ledger: RoundLedger | None = None) -> OpenAIWorker:
    config = OpenAIConfig(base_url=server.base_url, model="replay-model", price=PRICE, request_timeout_s=30)
    return OpenAIWorker(config, budget=budget, ledger=ledger)


@pytest.fixture(scope="module")
def agent_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReplayServer]:
    run = make_tiny_campaign(tmp_path_factory.mktemp("openai"))
    with ReplayServer.from_file(RECORDINGS / "openai_worker_lr.json") as server:
        Campaign(run, worker=_worker(server)).run(rounds=1, workers=2)
    return run, server


def test_conversation_followed_the_recording(agent_run: tuple[Path, ReplayServer]) -> None:
    _, server = agent_run
    assert server.mismatches == []
    assert len(server.requests) == 7
    system = server.requests[0]["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("# Worker brief")


def test_manifest_records_the_agents_edit_usage_and_rationale(agent_run: tuple[Path, ReplayServer]) -> None:
    run, _ = agent_run
    m = manifests(run)["r0001/c02-optimizer"]
    assert m.worker == "openai" and m.failure is None and m.ok
    assert [(c.knob, c.old, c.new, c.direction) for c in m.changes] == [("lr", 0.03, 0.06, "increase")]
    assert "lr = 0.06" in m.recipe_diff and m.edited_files == ["recipe.toml"]
    assert m.rationale.startswith("Raised train.lr 0.03 → 0.06")
    usage = m.worker_usage
    assert usage.turns == 7 and usage.stopped_for_budget is None
    assert usage.input_tokens == 1200 + 1300 + 1700 + 1800 + 1900 + 2000 + 2300
    assert usage.output_tokens == 20 + 15 + 40 + 400 + 12 + 12 + 90
    assert usage.cost_usd == pytest.approx((12200 * 3.0 + 589 * 15.0) / 1e6)
    assert m.cost.llm_input_tokens == 12200 and m.cost.llm_cost_usd == pytest.approx(usage.cost_usd)


def test_agent_trials_ran_through_the_harness_beside_the_official_one(agent_run: tuple[Path, ReplayServer]) -> None:
    run, _ = agent_run
    cp = CampaignPaths(run).round(1).candidate("c02-optimizer")
    agent_trace = Trace(cp.root / "agent-work" / "trace.jsonl")
    finished = [e.key for e in agent_trace.events() if e.kind == "step_finished"]
    assert "r0001/c02-optimizer/agent/a01/train" in finished
    assert any(k and k.startswith("r0001/c02-optimizer/agent/a01/evaluate/") for k in finished)
    # the official trial ran afterwards into work/, with its own trace keys
    assert Trace(cp.trace).finished("r0001/c02-optimizer/train") is not None
    assert (cp.work / "checkpoints").is_dir() and (cp.root / "agent-work" / "work" / "checkpoints").is_dir()
    context = json.loads((cp.root / "agent.json").read_text())
    assert context["sandbox"] == str(cp.sandbox.resolve()) and not (cp.sandbox / "agent.json").exists()


def test_transcript_records_reads_edits_refusal_and_trials(agent_run: tuple[Path, ReplayServer]) -> None:
    run, _ = agent_run
    cp = CampaignPaths(run).round(1).candidate("c02-optimizer")
    records = list(read_jsonl(cp.root / "agent-transcript.jsonl"))
    tools = [(r["tool"], r["message"]["content"].splitlines()[0]) for r in records if r["message"]["role"] == "tool"]
    assert [t for t, _ in tools] == [
        "list_files",
        "read_file",
        "write_file",
        "write_file",
        "run_trial",
        "run_trial",
        "finish",
    ]
    assert tools[2][1].startswith("error: refused: eval/evaluate.py is frozen")
    assert tools[3][1] == "wrote recipe.toml (" + tools[3][1].split("(", 1)[1]
    assert manifests(run)["r0001/c02-optimizer"].violations == []  # the refused write never reached the sandbox


def test_budget_stop_at_max_turns(tmp_path: Path) -> None:
    run = make_tiny_campaign(tmp_path)
    with ReplayServer.from_file(RECORDINGS / "openai_never_finishes.json") as server:
        worker = _worker(server, budget=AgentBudget(max_turns=4))
        Campaign(run, worker=worker).run(rounds=1, workers=2)
    assert server.mismatches == [] and len(server.requests) == 4
    m = manifests(run)["r0001/c02-optimizer"]
    assert m.failure is not None and m.failure.failure_class == "worker_error"
    assert m.failure.message == "stopped for budget: turns 4 ≥ max_turns 4"
    assert m.worker_usage.stopped_for_budget == "turns 4 ≥ max_turns 4" and m.worker_usage.turns == 4
    assert m.checkpoints == [] and not CampaignPaths(run).round(1).candidate("c02-optimizer").work.exists()


def test_budget_stop_at_round_tokens_shared_by_parallel_workers(tmp_path: Path) -> None:
    run = make_tiny_campaign(tmp_path)
    with ReplayServer.from_file(RECORDINGS / "openai_never_finishes.json") as server:
        ledger = RoundLedger()
        worker = _worker(server, budget=AgentBudget(max_turns=50, round_tokens=5000), ledger=ledger)
        Campaign(run, worker=worker).run(rounds=1, workers=3, parallel=2)
    found = manifests(run)
    stopped = [m for m in found.values() if m.role == "worker"]
    assert len(stopped) == 2
    for m in stopped:
        assert m.failure is not None and m.failure.failure_class == "worker_error"
        assert "round tokens" in m.failure.message
    # the two workers together spent the round's budget (each call is 1010 tokens; one call may overshoot)
    tokens, _ = ledger.spent(1)
    assert 5000 <= tokens < 5000 + 2 * 1010


def test_junk_tool_calls_go_back_to_the_model_and_the_budget_stops_it(tmp_path: Path) -> None:
    """What a small local model sends: truncated JSON, a NUL byte or a 5000-character name in a path, a tool that
    does not exist, a list for arguments, a tool call written as text. Each is answered with an error the model
    can read; the worker neither crashes nor loses its usage figures, and stops at its turn budget."""
    run = make_tiny_campaign(tmp_path)
    with ReplayServer.from_file(RECORDINGS / "openai_junk_tool_calls.json") as server:
        worker = _worker(server, budget=AgentBudget(max_turns=6))
        Campaign(run, worker=worker).run(rounds=1, workers=2)
    assert server.mismatches == [] and len(server.requests) == 6
    m = manifests(run)["r0001/c02-optimizer"]
    assert m.failure is not None and m.failure.failure_class == "worker_error"
    assert m.failure.message == "stopped for budget: turns 6 ≥ max_turns 6"
    assert (m.worker_usage.turns, m.worker_usage.input_tokens, m.worker_usage.output_tokens) == (6, 5400, 180)
    assert m.changes == [] and m.violations == []
    cp = CampaignPaths(run).round(1).candidate("c02-optimizer")
    records = list(read_jsonl(cp.root / "agent-transcript.jsonl"))
    results = [(r["tool"], r["message"]["content"]) for r in records if r["message"]["role"] == "tool"]
    assert [(tool, text.split(":", 2)[1].strip()) for tool, text in results[:6]] == [
        ("read_file", "bad arguments for read_file"),
        ("read_file", "read_file failed"),
        ("read_file", "read_file failed"),
        ("write_file", "write_file failed"),
        ("bash", "unknown tool 'bash'"),
        ("read_file", "arguments must be a JSON object"),
    ]
    # llama-cpp-python's garbled legacy `function_call` is kept in the transcript, never sent back
    assert records[2]["ignored"] == {"function_call": {"name": "read_file:", "arguments": "{ }"}}
    assert [m for m in server.requests[1]["messages"] if "function_call" in m] == []
    assert server.requests[1]["messages"][2]["tool_calls"][0]["function"]["name"] == "read_file"
    texts = [r["message"].get("content") for r in records if r["message"]["role"] == "assistant"]
    assert '<tool_call>{"name": "list_files"' in texts  # the call written as text is kept, and nudged
    assert records[-1]["message"]["role"] == "tool" and "lr = 0.03" in records[-1]["message"]["content"]
