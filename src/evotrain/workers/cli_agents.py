"""Coding-agent CLI workers: headless Claude Code (`claude -p`) and Codex (`codex exec`), behind the worker protocol.

Each runs with cwd = the sandbox, a scrubbed environment (of the credentials, only the one the CLI uses is kept),
its own state folder made fresh for every call (`<candidate>/agent-work/cli-home/`: nothing of one memory-free
worker reaches the next), under bubblewrap where `bwrap` can run (`containment = "auto"`; `"bwrap"` requires it,
`"none"` never uses it), and is told to run trials only as `evotrain trial train|evaluate|logs`. Its JSON event
stream is parsed line by line into turns, tokens and money; when a budget is reached the whole process tree is
stopped. The flags, environment and configuration below were worked out against the real CLIs (the versions in
`agent_clis.py`) driven by a scripted model server; docs/agents.md says what each is for and what broke without it.

- Claude Code: `claude -p TASK --output-format stream-json --verbose --include-partial-messages --tools
  Bash,Read,Edit,Write --allowedTools "Read,Bash(evotrain trial:*)" --permission-mode acceptEdits
  --permission-prompts none --strict-mcp-config --no-session-persistence --append-system-prompt BRIEF
  --max-turns N [--max-budget-usd X] [--model M]`, with `CLAUDE_CONFIG_DIR` = the state folder. Events: `system`,
  `stream_event` (the raw API events: `message_delta` carries a message's real output tokens), `assistant` (a model
  message; its `usage` is the one of `message_start`, so its `output_tokens` is a placeholder), `user` (tool
  results), and a final `result` with `subtype`, `num_turns`, `total_cost_usd` and `modelUsage` (per model, every
  call counted, also the one a budget stop abandoned, which `usage` leaves out).
- Codex: `codex exec --json --skip-git-repo-check --ephemeral --sandbox MODE --cd SANDBOX --add-dir AGENT_WORK
  [--model M] BRIEF+TASK`, with `CODEX_HOME` = the state folder holding a `config.toml` evotrain writes (the model
  provider, `allow_login_shell = false`, no update check, no history). Events: `thread.started`, `turn.started`,
  `item.started`/`item.completed` (`agent_message`, `reasoning`, `command_execution`, `file_change`, `error`: a
  warning), `turn.completed` with `usage`, `turn.failed`, `error` (also a transient "Reconnecting… n/5"). Codex
  reports no money: it is priced from the configured table; it reports tokens only when a turn completes, so a
  token budget stops it at the end of a turn, while turns (completed actions) and wall time stop it at once.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from evotrain.errors import ConfigError
from evotrain.fileio import append_jsonl, atomic_write_bytes, atomic_write_text, remove_tree
from evotrain.llm_api import ModelPrice
from evotrain.sandbox.knobs import knob_changes, knob_values
from evotrain.workers.agent_clis import CLAUDE_CODE, CODEX, AgentCLI, check_version
from evotrain.workers.agent_prompt import task_prompt
from evotrain.workers.budget import AgentBudget, BudgetMeter, RoundLedger
from evotrain.workers.containment import agent_env, bwrap_prefix, bwrap_problem, run_streaming
from evotrain.workers.context import AgentContext, context_for, write_context
from evotrain.workers.protocol import WorkerRequest, WorkerResult

TRANSCRIPT = "agent-transcript.jsonl"
STATE_HOME = "cli-home"  # the CLI's own state folder, inside agent-work/, fresh for every worker call
CLAUDE_TOOLS = "Bash,Read,Edit,Write"
CLAUDE_ALLOWED_TOOLS = "Read,Bash(evotrain trial:*)"
# Claude Code's credentials, in the order it prefers them: an API key, a bearer token (a gateway), a subscription's
# long-lived OAuth token (`claude setup-token`)
CLAUDE_KEY_ENVS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
CODEX_KEY_ENVS = ("OPENAI_API_KEY",)
CODEX_DEFAULT_BASE_URL = "https://api.openai.com/v1"
# stream_event kinds not written to the transcript: token deltas, which the `assistant` event repeats whole
_CLAUDE_QUIET_STREAM = {"content_block_start", "content_block_delta", "content_block_stop", "message_stop"}


class CLIAgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executable: str | None = None  # default: `claude` / `codex` found on PATH
    model: str | None = None
    # the model endpoint: Claude Code's ANTHROPIC_BASE_URL (default: the variable, else Anthropic); Codex's provider
    # base_url, the `/v1` root of a Responses API (default: OpenAI)
    base_url: str | None = None
    api_key_env: str | None = None  # default: the first set of CLAUDE_KEY_ENVS / CODEX_KEY_ENVS
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
    last_error: str | None = None  # an error event the CLI may still recover from (Codex's reconnects)
    stopped: str | None = None  # a budget stop the CLI reported itself (Claude's error_max_turns, error_max_budget_usd)
    seen_messages: set[str] = field(default_factory=set)
    output_counted: dict[str, int] = field(default_factory=dict)  # Claude: output tokens charged per message id


@dataclass
class Credential:
    """How the CLI authenticates: an environment variable kept through the scrub, or a login file copied in."""

    env: str | None = None
    value: str | None = None  # set where evotrain supplies it (a local endpoint takes any key)
    login_file: Path | None = None  # Codex's auth.json of a ChatGPT login


class _CLIWorker:
    name = ""
    cli: AgentCLI
    key_envs: tuple[str, ...] = ()

    def __init__(
        self, config: CLIAgentConfig | None = None, budget: AgentBudget | None = None, ledger: RoundLedger | None = None
    ) -> None:
        self.config = config or CLIAgentConfig()
        self.budget = budget or AgentBudget()
        self.ledger = ledger or RoundLedger()
        exe = self.config.executable or self.cli.command
        found = shutil.which(exe)
        if found is None:
            raise ConfigError(
                f"the {self.name} worker needs the `{exe}` command, which is not on PATH",
                fix=f"npm install -g {self.cli.pin}, or pass its path in the worker config (executable = …)",
            )
        self.executable = found
        self.version = check_version(self.cli, found, self.name)
        self.credential = self.find_credential()
        self.bwrap_problem = bwrap_problem() if self.config.containment != "none" else "containment = none"
        if self.config.containment == "bwrap" and self.bwrap_problem is not None:
            raise ConfigError(
                f"the {self.name} worker is configured to run under bubblewrap, but {self.bwrap_problem}",
                fix='install bubblewrap where user namespaces are allowed, or set containment = "auto"',
            )

    def find_credential(self) -> Credential:
        names = [self.config.api_key_env] if self.config.api_key_env else list(self.key_envs)
        for name in names:
            if os.environ.get(name):
                return Credential(env=name)
        if self.config.base_url is not None:  # a local or scripted endpoint: any key will do
            return Credential(env=names[0], value="local")
        return self.no_credential(names)

    def no_credential(self, names: list[str]) -> Credential:
        raise NotImplementedError

    def state_env(self, home: Path, request: WorkerRequest, context: AgentContext, contained: bool) -> dict[str, str]:
        """Write the CLI's state folder and return the environment variables that point the CLI at it."""
        raise NotImplementedError

    def build_argv(self, request: WorkerRequest, context: AgentContext, contained: bool) -> list[str]:
        raise NotImplementedError

    def on_event(self, event: dict[str, Any], state: StreamState) -> None:
        raise NotImplementedError

    def record(self, event: dict[str, Any]) -> bool:
        """Whether an event goes into the transcript."""
        return True

    def finish_login(self, home: Path) -> None:
        """After the CLI exits: hand a refreshed login back to its source, then remove the copy."""
        login = self.credential.login_file
        copy = home / "auth.json"
        if login is None or not copy.exists():
            return
        data = copy.read_bytes()
        if data != login.read_bytes():
            atomic_write_bytes(login, data, mode=0o600)
        copy.unlink()

    def propose(self, request: WorkerRequest) -> WorkerResult:
        context = context_for(request)
        context_file = write_context(context)
        transcript = context.candidate_dir / TRANSCRIPT
        transcript.unlink(missing_ok=True)
        home = context.agent_work / STATE_HOME
        if home.exists():
            remove_tree(home)
        home.mkdir(parents=True)
        cred = self.credential
        env = agent_env(context, context_file, keep=[cred.env] if cred.env else [])
        if cred.env and cred.value is not None:
            env[cred.env] = cred.value
        contained = self.bwrap_problem is None
        env.update(self.state_env(home, request, context, contained))
        append_jsonl(transcript, {"type": "evotrain.containment", "bwrap": contained, "why_not": self.bwrap_problem})
        prefix = bwrap_prefix(context, request.spec, self.executable) if contained else []
        argv = prefix + self.build_argv(request, context, contained)
        append_jsonl(
            transcript,
            {"type": "evotrain.agent", "cli": self.cli.package, "version": self.version, "credential": cred.env
             or ("login file" if cred.login_file else None), "state_home": f"agent-work/{STATE_HOME}"},
        )  # fmt: skip
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
            if not isinstance(event, dict):
                append_jsonl(transcript, {"value": event})
                return None
            if self.record(event):
                append_jsonl(transcript, event)
            self.on_event(event, state)
            return state.meter.exceeded()

        try:
            outcome = run_streaming(
                argv, cwd=context.sandbox, env=env, on_line=on_line, wall_left=state.meter.wall_left
            )
        finally:
            self.finish_login(home)
        usage = state.meter.finish()
        usage.transcript = TRANSCRIPT
        usage.stopped_for_budget = outcome.stopped or state.stopped
        error = state.error
        if usage.stopped_for_budget is not None:
            error = f"stopped for budget: {usage.stopped_for_budget}"
        elif outcome.exit_code not in (0, None) and error is None:
            detail = state.last_error or outcome.stderr_tail.strip()[-500:]
            error = f"{self.name} exited {outcome.exit_code}: {detail}"
        rationale = state.final_text or f"the agent did not finish ({error or 'no final message'})"
        changes = knob_changes(before, request.sandbox, request.spec)
        return WorkerResult(rationale=rationale.strip(), changes=changes, usage=usage, error=error)


class ClaudeCodeWorker(_CLIWorker):
    name = "claude-code"
    cli = CLAUDE_CODE
    key_envs = CLAUDE_KEY_ENVS

    def no_credential(self, names: list[str]) -> Credential:
        raise ConfigError(
            f"the claude-code worker needs a credential in the environment: {' or '.join(names)}",
            fix="export ANTHROPIC_API_KEY=… (an API key); for a Claude subscription, `claude setup-token` prints a "
            "token for CLAUDE_CODE_OAUTH_TOKEN (a login kept in ~/.claude is not used: each worker gets its own "
            "state folder)",
        )

    def state_env(self, home: Path, request: WorkerRequest, context: AgentContext, contained: bool) -> dict[str, str]:
        env = {
            "CLAUDE_CONFIG_DIR": str(home),  # settings, sessions, memory: all here, none in the user's ~/.claude
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",  # no telemetry, error reports or update checks
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_AUTO_MEMORY": "1",  # a memory-free worker
            "CLAUDE_CODE_DISABLE_CLAUDE_MDS": "1",  # else a CLAUDE.md above the campaign folder joins the prompt
        }
        if self.config.base_url:
            env["ANTHROPIC_BASE_URL"] = self.config.base_url
        return env

    def build_argv(self, request: WorkerRequest, context: AgentContext, contained: bool) -> list[str]:
        argv = [
            self.executable,
            "-p",
            task_prompt(request, tool_style="shell"),
            "--output-format",
            "stream-json",
            "--verbose",  # stream-json in print mode requires it
            "--include-partial-messages",  # message_delta: the real output tokens of each message, mid-stream
            "--tools",  # the built-in tools it has at all (no web, sub-agents, cron or worktrees)
            CLAUDE_TOOLS,
            "--allowedTools",  # what runs without a prompt; acceptEdits adds file edits inside the sandbox
            CLAUDE_ALLOWED_TOOLS,
            "--permission-mode",
            "acceptEdits",
            "--permission-prompts",  # anything else that would ask is denied at once, never waits
            "none",
            "--strict-mcp-config",
            "--no-session-persistence",
            "--append-system-prompt",
            request.brief,
        ]
        if self.budget.max_turns is not None:
            argv += ["--max-turns", str(self.budget.max_turns)]
        if self.budget.max_usd is not None:  # Claude prices its own calls: it stops itself after the call that crosses
            argv += ["--max-budget-usd", f"{self.budget.max_usd:g}"]
        if self.config.model:
            argv += ["--model", self.config.model]
        return argv + self.config.extra_args

    def record(self, event: dict[str, Any]) -> bool:
        inner = event.get("event")
        quiet = isinstance(inner, dict) and inner.get("type") in _CLAUDE_QUIET_STREAM
        return not (event.get("type") == "stream_event" and quiet)

    def on_event(self, event: dict[str, Any], state: StreamState) -> None:
        kind = event.get("type")
        if kind == "stream_event":
            inner = event.get("event") or {}
            mid = event.get("api_message_id")
            if inner.get("type") == "message_delta" and mid:
                self._charge_output(state, str(mid), int((inner.get("usage") or {}).get("output_tokens") or 0))
        elif kind == "assistant":
            message = event.get("message") or {}
            # one model message may be streamed as several events sharing its id and usage: count it once
            mid = str(message.get("id") or len(state.seen_messages))
            usage = message.get("usage") or {}
            if mid not in state.seen_messages:
                state.seen_messages.add(mid)
                state.meter.add(turns=1, input_tokens=_input_tokens(usage))
            self._charge_output(state, mid, int(usage.get("output_tokens") or 0))
            text = "".join(b.get("text", "") for b in message.get("content") or [] if b.get("type") == "text")
            if text.strip():
                state.final_text = text
        elif kind == "result":
            tokens_in, tokens_out = _result_tokens(event)
            state.meter.set_totals(
                input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=float(event.get("total_cost_usd") or 0.0)
            )
            if isinstance(event.get("result"), str) and event["result"].strip():
                state.final_text = event["result"]
            subtype = event.get("subtype", "success")
            if subtype == "error_max_turns":
                state.stopped = f"turns {event.get('num_turns')} ≥ max_turns {self.budget.max_turns}"
            elif subtype == "error_max_budget_usd":
                state.stopped = f"usd {float(event.get('total_cost_usd') or 0):.4g} ≥ max_usd {self.budget.max_usd:g}"
            elif event.get("is_error") or subtype != "success":
                detail = event.get("result") or "; ".join(map(str, event.get("errors") or []))
                state.error = f"claude-code ended with {subtype}: {detail}".strip()

    @staticmethod
    def _charge_output(state: StreamState, mid: str, output_tokens: int) -> None:
        """A message's output tokens as reported so far (message_start's placeholder, then message_delta's count)."""
        counted = state.output_counted.get(mid, 0)
        if output_tokens > counted:
            state.output_counted[mid] = output_tokens
            state.meter.add(output_tokens=output_tokens - counted)


def _input_tokens(usage: dict[str, Any]) -> int:
    """Prompt tokens, cached ones included (they are read, and billed at a lower rate that total_cost_usd has)."""
    keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return sum(int(usage.get(k) or 0) for k in keys)


def _result_tokens(event: dict[str, Any]) -> tuple[int, int]:
    """Claude's final totals: `modelUsage` summed over models (it counts every call, the priced ones), else `usage`."""
    per_model = event.get("modelUsage")
    if isinstance(per_model, dict) and per_model:
        tokens_in = tokens_out = 0
        for u in per_model.values():
            keys = ("inputTokens", "cacheReadInputTokens", "cacheCreationInputTokens")
            tokens_in += sum(int(u.get(k) or 0) for k in keys)
            tokens_out += int(u.get("outputTokens") or 0)
        return tokens_in, tokens_out
    usage = event.get("usage") or {}
    return _input_tokens(usage), int(usage.get("output_tokens") or 0)


_CODEX_NOT_TURNS = {"error", "reasoning", "todo_list"}  # items that are no action of the agent


class CodexWorker(_CLIWorker):
    name = "codex"
    cli = CODEX
    key_envs = CODEX_KEY_ENVS

    def no_credential(self, names: list[str]) -> Credential:
        codex_home = Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")
        login = codex_home / "auth.json"
        if login.is_file():  # a ChatGPT login (`codex login`): copied into each worker's CODEX_HOME
            return Credential(login_file=login)
        raise ConfigError(
            f"the codex worker needs {' or '.join(names)} in the environment, or a `codex login` ({login})",
            fix="export OPENAI_API_KEY=…, or run `codex login` once (its auth.json is copied into each worker's "
            "CODEX_HOME and removed afterwards)",
        )

    def state_env(self, home: Path, request: WorkerRequest, context: AgentContext, contained: bool) -> dict[str, str]:
        lines = []
        if self.config.model:
            lines.append(f"model = {json.dumps(self.config.model)}")
        cred = self.credential
        if cred.login_file is None:  # a key: evotrain's provider entry, pointed at the configured endpoint
            lines.append('model_provider = "evotrain"')
        lines += [
            "allow_login_shell = false",  # a login shell's profile resets PATH, and `evotrain` is then not found
            'approval_policy = "never"',  # exec never waits for an approval: a refused command is the model's to handle
            "check_for_update_on_startup = false",
            "project_doc_max_bytes = 0",  # no AGENTS.md from above the campaign folder: the brief is the instruction
            "[analytics]",
            "enabled = false",
            "[history]",
            'persistence = "none"',
        ]
        if cred.login_file is None:
            lines += [
                "[model_providers.evotrain]",
                'name = "evotrain"',
                f"base_url = {json.dumps(self.config.base_url or CODEX_DEFAULT_BASE_URL)}",
                'wire_api = "responses"',
                f"env_key = {json.dumps(cred.env)}",
            ]
        atomic_write_text(home / "config.toml", "\n".join(lines) + "\n")
        if cred.login_file is not None:
            atomic_write_bytes(home / "auth.json", cred.login_file.read_bytes(), mode=0o600)
        tmp = home / "tmp"
        tmp.mkdir()
        # Codex refuses to create its sandbox helper (codex-linux-sandbox) in a CODEX_HOME under the temporary
        # folder, and every sandboxed command then fails; a TMPDIR of its own puts CODEX_HOME outside it
        return {"CODEX_HOME": str(home), "TMPDIR": str(tmp)}

    def build_argv(self, request: WorkerRequest, context: AgentContext, contained: bool) -> list[str]:
        prompt = request.brief + "\n\n" + task_prompt(request, tool_style="shell")  # codex takes no system prompt
        argv = [
            self.executable,
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--ephemeral",  # no session files
            "--sandbox",
            # under evotrain's bubblewrap, that is the sandbox: Codex's own one nested in it refuses a frozen-file
            # write as a "sandbox denial" that the JSON stream leaves out, so the transcript would not show it
            "danger-full-access" if contained else "workspace-write",
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
            if item.get("type") not in _CODEX_NOT_TURNS:
                state.meter.add(turns=1)
            if item.get("type") == "agent_message" and item.get("text"):
                state.final_text = item["text"]
        elif kind == "turn.completed":
            usage = event.get("usage") or {}
            tokens_in = int(usage.get("input_tokens") or 0)  # cached_input_tokens are a part of it
            tokens_out = int(usage.get("output_tokens") or 0)
            state.meter.add(
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cost_usd=self.config.price.cost(tokens_in, tokens_out),
            )
            state.last_error = None
        elif kind == "turn.failed":
            err = event.get("error")
            message = err.get("message") if isinstance(err, dict) else None
            state.error = f"codex turn.failed: {message or 'no message'}"
        elif kind == "error":  # "Reconnecting… 1/5" and the like: an error only if the run then fails
            state.last_error = f"codex error: {event.get('message') or 'no message'}"
