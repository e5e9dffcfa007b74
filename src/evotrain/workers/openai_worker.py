"""The `openai` worker: a tool loop over any OpenAI-compatible chat-completions endpoint (hosted, vLLM, Ollama).

The model gets the fixed brief (system), its task and the rendered policy (user), and five tools: list_files,
read_file, write_file (editable globs only), run_trial (`evotrain trial train|evaluate|logs` through the harness)
and finish. Every call's `usage` is counted; money comes from the configured price per million tokens. The
conversation is recorded as JSONL beside the sandbox (`<candidate>/agent-transcript.jsonl`). The API key stays
in this process: the trial subprocesses get a scrubbed environment without it.
"""

from __future__ import annotations

import json
import os
import time
from typing import Annotated, Any, Literal

import openai
from pydantic import BaseModel, ConfigDict, Field

from evotrain.errors import ConfigError
from evotrain.fileio import append_jsonl
from evotrain.llm_api import ModelPrice, api_key, make_client
from evotrain.sandbox.knobs import knob_changes, knob_values
from evotrain.workers.agent_prompt import task_prompt
from evotrain.workers.budget import AgentBudget, BudgetMeter, RoundLedger
from evotrain.workers.containment import agent_env
from evotrain.workers.context import context_for, write_context
from evotrain.workers.protocol import WorkerRequest, WorkerResult
from evotrain.workers.sandbox_tools import TOOL_SCHEMAS, SandboxTools, ToolRefused

TRANSCRIPT = "agent-transcript.jsonl"
NUDGE = "Use the tools: edit your recipe, optionally run a trial, then call `finish` with your rationale."


class OpenAIConfig(BaseModel):
    """Where the endpoint is. Unset fields come from OPENAI_BASE_URL, EVOTRAIN_AGENT_MODEL and the key variable."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    price: ModelPrice = ModelPrice()
    request_timeout_s: float = 300.0
    trial_timeout_s: float = 3600.0
    temperature: float | None = None
    # sent explicitly: OpenAI's default with tools is "auto", but llama-cpp-python's server ignores the tools of a
    # request that names no tool_choice (its chatml-function-calling format then answers plain text)
    tool_choice: Literal["auto", "required", "none"] | None = "auto"
    # sent as `max_tokens`: a cap on one reply, so a small local model that never stops costs one capped reply,
    # not a request timeout (OpenAI's o-series reject `max_tokens`: leave None there)
    max_reply_tokens: Annotated[int, Field(ge=1)] | None = None

    def resolved(self) -> tuple[str | None, str, str]:
        base_url = self.base_url or os.environ.get("OPENAI_BASE_URL")
        model = self.model or os.environ.get("EVOTRAIN_AGENT_MODEL")
        if not model:
            raise ConfigError(
                "the openai worker needs a model name",
                fix="pass --agent-model, or set EVOTRAIN_AGENT_MODEL",
            )
        key = api_key(self.api_key_env, base_url)
        if not key:
            raise ConfigError(
                f"no API key: {self.api_key_env} is not set and no base URL names a local server",
                fix=f"export {self.api_key_env}=…, or pass --agent-base-url http://127.0.0.1:PORT/v1",
            )
        return base_url, model, key


class _Session:
    """One worker's conversation: messages, budget meter, tools, transcript."""

    def __init__(self, worker: OpenAIWorker, request: WorkerRequest) -> None:
        context = context_for(request)
        context_file = write_context(context)
        self.request = request
        self.transcript = context.candidate_dir / TRANSCRIPT
        self.transcript.unlink(missing_ok=True)  # a re-forked candidate starts a new conversation
        self.meter = BudgetMeter(worker.budget, worker.ledger, request.round)
        self.tools = SandboxTools(
            request.sandbox, request.spec, agent_env(context, context_file), worker.config.trial_timeout_s
        )
        self.messages: list[dict[str, Any]] = []
        self.rationale: str | None = None

    def record(self, message: dict[str, Any], **extra: Any) -> None:
        self.messages.append(message)
        append_jsonl(self.transcript, {"ts": time.time(), "message": message, **extra})

    def call_tool(self, name: str, raw_args: str) -> str:
        try:
            args = json.loads(raw_args or "{}")
            if not isinstance(args, dict):
                raise ToolRefused("arguments must be a JSON object")
            if name == "finish":
                self.rationale = str(args.get("rationale", "")).strip() or "(no rationale given)"
                return "finished"
            if name == "list_files":
                return self.tools.list_files()
            if name == "read_file":
                return self.tools.read_file(str(args["path"]))
            if name == "write_file":
                return self.tools.write_file(str(args["path"]), str(args["content"]))
            if name == "run_trial":
                return self.tools.run_trial(str(args["step"]))
            raise ToolRefused(f"unknown tool {name!r}")
        except ToolRefused as exc:
            return f"error: {exc}"
        except (json.JSONDecodeError, KeyError) as exc:
            return f"error: bad arguments for {name}: {exc}"
        except (OSError, ValueError) as exc:  # a path a small model made up: a NUL byte, a name too long, …
            return f"error: {name} failed: {type(exc).__name__}: {exc}"


class OpenAIWorker:
    """An agent worker over an OpenAI-compatible endpoint."""

    name = "openai"

    def __init__(
        self, config: OpenAIConfig, budget: AgentBudget | None = None, ledger: RoundLedger | None = None
    ) -> None:
        self.config = config
        self.base_url, self.model, key = config.resolved()
        self.budget = budget or AgentBudget()
        self.ledger = ledger or RoundLedger()
        self.client = make_client(self.base_url, key, config.request_timeout_s)

    def propose(self, request: WorkerRequest) -> WorkerResult:
        session = _Session(self, request)
        before = knob_values(request.sandbox, request.spec)
        session.record({"role": "system", "content": request.brief})
        session.record({"role": "user", "content": task_prompt(request, tool_style="tools")})
        stopped, error = None, None
        try:
            stopped = self._loop(session)
        except openai.OpenAIError as exc:
            error = f"the endpoint failed: {type(exc).__name__}: {exc}"
        except Exception as exc:  # a reply the loop could not use: the tokens were spent, so report them too
            error = f"the worker failed: {type(exc).__name__}: {exc}"
            append_jsonl(session.transcript, {"ts": time.time(), "error": error})
        usage = session.meter.finish()
        usage.stopped_for_budget = stopped
        usage.transcript = TRANSCRIPT
        changes = knob_changes(before, request.sandbox, request.spec)
        if stopped is not None:
            error = f"stopped for budget: {stopped}"
        rationale = session.rationale or f"the agent did not finish ({error or 'no rationale'})"
        return WorkerResult(rationale=rationale, changes=changes, usage=usage, error=error)

    def _loop(self, session: _Session) -> str | None:
        """Call the model and run its tools until it finishes; the budget reason if it was stopped."""
        while session.rationale is None:
            reason = session.meter.exceeded()
            if reason is not None:
                return reason
            message = self._complete(session)
            calls = message.get("tool_calls") or []
            if not calls:
                session.record({"role": "user", "content": NUDGE})
                continue
            for call in calls:
                fn = call["function"]
                result = session.call_tool(fn["name"], fn.get("arguments") or "{}")
                session.record({"role": "tool", "tool_call_id": call["id"], "content": result}, tool=fn["name"])
        return None

    def _complete(self, session: _Session) -> dict[str, Any]:
        wall_left = session.meter.wall_left()
        timeout = self.config.request_timeout_s if wall_left is None else max(1.0, min(wall_left, 1e6))
        kwargs: dict[str, Any] = {}
        if self.config.temperature is not None:
            kwargs["temperature"] = self.config.temperature
        if self.config.tool_choice is not None:
            kwargs["tool_choice"] = self.config.tool_choice
        if self.config.max_reply_tokens is not None:
            kwargs["max_tokens"] = self.config.max_reply_tokens
        response = self.client.chat.completions.create(
            model=self.model,
            messages=session.messages,  # type: ignore[arg-type]
            tools=TOOL_SCHEMAS,  # type: ignore[arg-type]
            timeout=min(timeout, self.config.request_timeout_s),
            **kwargs,
        )
        usage = response.usage
        tokens_in = usage.prompt_tokens if usage else 0
        tokens_out = usage.completion_tokens if usage else 0
        session.meter.add(
            turns=1,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=self.config.price.cost(tokens_in, tokens_out),
        )
        received = response.choices[0].message.model_dump(exclude_none=True)
        # echoed back as the conversation: the content and tool calls only. The rest (the deprecated
        # `function_call`, which llama-cpp-python fills with a garbled name beside `tool_calls`, refusal, audio, …)
        # is kept in the transcript, not sent again
        message = {"role": "assistant", "content": received.pop("content", None) or ""}
        if received.get("tool_calls"):
            message["tool_calls"] = received.pop("tool_calls")
        ignored = {k: v for k, v in received.items() if k != "role" and v not in ([], {}, "")}
        extra: dict[str, Any] = {"ignored": ignored} if ignored else {}
        session.record(message, usage={"input_tokens": tokens_in, "output_tokens": tokens_out}, **extra)
        return message
