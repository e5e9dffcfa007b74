"""Coding-agent CLI workers: headless Claude Code (`claude -p`) and Codex (`codex exec`), behind the worker protocol.

Each runs with cwd = the sandbox, a scrubbed environment (only its own key variable kept), under bubblewrap where
`bwrap` is on PATH and can run (`containment = "auto"`; `"bwrap"` requires it, `"none"` never uses it), and is told
to run trials only as `evotrain trial train|evaluate|logs`. Its JSON event stream is parsed line by line into
turns, tokens and money; when a budget is reached the whole process tree is stopped.

- Claude Code: `claude -p PROMPT --output-format stream-json --verbose --max-turns N --allowedTools … \
  --append-system-prompt BRIEF`. Events: `system` (init), `assistant` (a model message with `usage`), `user` (tool
  results), and a final `result` with `subtype`, `is_error`, `num_turns`, `total_cost_usd`, cumulative `usage`
  and the final text in `result`.
- Codex: `codex exec --json --sandbox workspace-write --skip-git-repo-check --cd SANDBOX --add-dir AGENT_WORK
  PROMPT`. Events: `thread.started`, `turn.started`, `item.started`/`item.updated`/`item.completed` (items of type
  `agent_message`, `reasoning`, `command_execution`, `file_change`, …), `turn.completed` with `usage`
  (`input_tokens`, `cached_input_tokens`, `output_tokens`), `turn.failed`, `error`. Codex reports no money: it is
  priced from the configured table; it reports tokens only when a turn completes, so a token budget stops it at
  the end of a turn, while turns (completed items) and wall time stop it at once.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from evotrain.errors import ConfigError
from evotrain.fileio import append_jsonl
from evotrain.llm_api import ModelPrice
from evotrain.sandbox.knobs import knob_changes, knob_values
from evotrain.workers.agent_prompt import task_prompt
from evotrain.workers.budget import AgentBudget, BudgetMeter, RoundLedger
from evotrain.workers.containment import agent_env, bwrap_prefix, bwrap_problem, run_streaming
from evotrain.workers.context import AgentContext, context_for, write_context
from evotrain.workers.protocol import WorkerRequest, WorkerResult

TRANSCRIPT = "agent-transcript.jsonl"
CLAUDE_ALLOWED_TOOLS = "Read,Edit,Write,Glob,Grep,LS,Bash(evotrain trial:*)"


class CLIAgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executable: str | None = None  # default: `claude` / `codex` found on PATH
    model: str | None = None
    api_key_env: str | None = None  # default: ANTHROPIC_API_KEY / OPENAI_API_KEY
    price: ModelPrice = ModelPrice()  # used where the CLI reports no money (codex)
    extra_args: list[str] = []
    # auto: bubblewrap where it can run here, else the violation check alone; bwrap: refuse to run without it
    containment: Literal["auto", "bwrap", "none"] = "auto"


@dataclass
class StreamState:
    """What the event stream said so far."""

    meter: BudgetMeter
    final_text: str | None = None
    error: str | None = None
    stopped: str | None = None  # a budget stop the CLI reported itself (e.g. Claude's error_max_turns)
    seen_messages: set[str] = field(default_factory=set)


class _CLIWorker:
    name = ""
    default_executable = ""
    default_key_env = ""

    def __init__(
        self, config: CLIAgentConfig | None = None, budget: AgentBudget | None = None, ledger: RoundLedger | None = None
    ) -> None:
        self.config = config or CLIAgentConfig()
        self.budget = budget or AgentBudget()
        self.ledger = ledger or RoundLedger()
        exe = self.config.executable or self.default_executable
        found = shutil.which(exe)
        if found is None:
            raise ConfigError(
                f"the {self.name} worker needs the `{exe}` command, which is not on PATH",
                fix="install it, or pass its path in the worker config (executable = …)",
            )
        self.executable = found
        self.bwrap_problem = bwrap_problem() if self.config.containment != "none" else "containment = none"
        if self.config.containment == "bwrap" and self.bwrap_problem is not None:
            raise ConfigError(
                f"the {self.name} worker is configured to run under bubblewrap, but {self.bwrap_problem}",
                fix='install bubblewrap where user namespaces are allowed, or set containment = "auto"',
            )

    def build_argv(self, request: WorkerRequest, context: AgentContext) -> list[str]:
        raise NotImplementedError

    def on_event(self, event: dict[str, Any], state: StreamState) -> None:
        raise NotImplementedError

    def propose(self, request: WorkerRequest) -> WorkerResult:
        context = context_for(request)
        context_file = write_context(context)
        transcript = context.candidate_dir / TRANSCRIPT
        transcript.unlink(missing_ok=True)
        key_env = self.config.api_key_env or self.default_key_env
        env = agent_env(context, context_file, keep=[key_env])
        contained = self.bwrap_problem is None
        append_jsonl(transcript, {"type": "evotrain.containment", "bwrap": contained, "why_not": self.bwrap_problem})
        prefix = bwrap_prefix(context, request.spec, self.executable) if contained else []
        argv = prefix + self.build_argv(request, context)
        state = StreamState(meter=BudgetMeter(self.budget, self.ledger, request.round))
        before = knob_values(request.sandbox, request.spec)

        def on_line(line: str) -> str | None:
            line = line.strip()
            if not line:
                return None
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                append_jsonl(transcript, {"raw": line})
                return None
            append_jsonl(transcript, event if isinstance(event, dict) else {"value": event})
            if isinstance(event, dict):
                self.on_event(event, state)
            return state.meter.exceeded()

        outcome = run_streaming(argv, cwd=context.sandbox, env=env, on_line=on_line, wall_left=state.meter.wall_left)
        usage = state.meter.finish()
        usage.transcript = TRANSCRIPT
        usage.stopped_for_budget = outcome.stopped or state.stopped
        error = state.error
        if usage.stopped_for_budget is not None:
            error = f"stopped for budget: {usage.stopped_for_budget}"
        elif outcome.exit_code not in (0, None) and error is None:
            error = f"{self.name} exited {outcome.exit_code}: {outcome.stderr_tail.strip()[-500:]}"
        rationale = state.final_text or f"the agent did not finish ({error or 'no final message'})"
        changes = knob_changes(before, request.sandbox, request.spec)
        return WorkerResult(rationale=rationale.strip(), changes=changes, usage=usage, error=error)


class ClaudeCodeWorker(_CLIWorker):
    name = "claude-code"
    default_executable = "claude"
    default_key_env = "ANTHROPIC_API_KEY"

    def build_argv(self, request: WorkerRequest, context: AgentContext) -> list[str]:
        argv = [
            self.executable,
            "-p",
            task_prompt(request, tool_style="shell"),
            "--output-format",
            "stream-json",
            "--verbose",  # stream-json in print mode requires it
            "--allowedTools",
            CLAUDE_ALLOWED_TOOLS,
            "--append-system-prompt",
            request.brief,
        ]
        if self.budget.max_turns is not None:
            argv += ["--max-turns", str(self.budget.max_turns)]
        if self.config.model:
            argv += ["--model", self.config.model]
        return argv + self.config.extra_args

    def on_event(self, event: dict[str, Any], state: StreamState) -> None:
        kind = event.get("type")
        if kind == "assistant":
            message = event.get("message") or {}
            # one model message may be streamed as several events sharing its id and usage: count it once
            mid = str(message.get("id") or len(state.seen_messages))
            if mid in state.seen_messages:
                return
            state.seen_messages.add(mid)
            usage = message.get("usage") or {}
            state.meter.add(
                turns=1,
                input_tokens=_input_tokens(usage),
                output_tokens=int(usage.get("output_tokens") or 0),
            )
            text = "".join(b.get("text", "") for b in message.get("content") or [] if b.get("type") == "text")
            if text.strip():
                state.final_text = text
        elif kind == "result":
            usage = event.get("usage") or {}
            state.meter.set_totals(
                input_tokens=_input_tokens(usage),
                output_tokens=int(usage.get("output_tokens") or 0),
                cost_usd=float(event.get("total_cost_usd") or 0.0),
            )
            if isinstance(event.get("result"), str) and event["result"].strip():
                state.final_text = event["result"]
            subtype = event.get("subtype", "success")
            if subtype == "error_max_turns":
                state.stopped = f"turns {event.get('num_turns')} ≥ max_turns {self.budget.max_turns}"
            elif event.get("is_error") or subtype != "success":
                state.error = f"claude-code ended with {subtype}: {event.get('result') or ''}".strip()


def _input_tokens(usage: dict[str, Any]) -> int:
    """Prompt tokens, cached ones included (they are read, and billed at a lower rate that total_cost_usd has)."""
    keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return sum(int(usage.get(k) or 0) for k in keys)


class CodexWorker(_CLIWorker):
    name = "codex"
    default_executable = "codex"
    default_key_env = "OPENAI_API_KEY"

    def build_argv(self, request: WorkerRequest, context: AgentContext) -> list[str]:
        prompt = request.brief + "\n\n" + task_prompt(request, tool_style="shell")  # codex takes no system prompt
        argv = [
            self.executable,
            "exec",
            "--json",
            "--sandbox",
            "workspace-write",
            "--skip-git-repo-check",
            "--cd",
            str(context.sandbox),
            "--add-dir",  # the agent's scratch trials write beside the sandbox
            str(context.agent_work),
        ]
        if self.config.model:
            argv += ["--model", self.config.model]
        return [*argv, *self.config.extra_args, prompt]

    def on_event(self, event: dict[str, Any], state: StreamState) -> None:
        kind = event.get("type")
        if kind == "item.completed":
            item = event.get("item") or {}
            state.meter.add(turns=1)
            if item.get("type") == "agent_message" and item.get("text"):
                state.final_text = item["text"]
        elif kind == "turn.completed":
            usage = event.get("usage") or {}
            tokens_in = int(usage.get("input_tokens") or 0)
            tokens_out = int(usage.get("output_tokens") or 0)
            state.meter.add(
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cost_usd=self.config.price.cost(tokens_in, tokens_out),
            )
        elif kind in ("turn.failed", "error"):
            err = event.get("error") if kind == "turn.failed" else event
            message = err.get("message") if isinstance(err, dict) else None
            state.error = f"codex {kind}: {message or 'no message'}"
