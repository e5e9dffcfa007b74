"""A scripted model on 127.0.0.1 for the real coding-agent CLIs: the Anthropic Messages API (Claude Code) and the
OpenAI Responses API (Codex), both streamed as server-sent events.

A script is a list of steps, played in order, one per request of the agent's conversation. Each step says what the
request must show (`expect`) and what the model answers (`reply`):

- `expect`: `prompt_contains` (the first user message), `system_contains` (Anthropic `system` or Responses
  `instructions`/developer messages), `tools_include` (tool names offered), `result_contains` (the text of the tool
  results the request carries back: the outcome of the previous step's tool calls), `result_lacks` (text they must
  not hold), `result_error` (Anthropic's
  `is_error` of those results).
- `reply`: `text` and/or `tools` (`[{"name": …, "input": {…}}]`: a `tool_use` block for Anthropic, a
  `function_call` item whose `arguments` are the JSON of `input` for Responses, or a `custom_tool_call` where
  `input` is a string: Codex's freeform `apply_patch`), and `usage`
  (`input_tokens`, `output_tokens`, optionally `cache_read_input_tokens`/`cached_tokens`).
- `delay_s`: wait before answering; `repeat: true` on the last step answers it for ever (a model that never stops).

`{name}` placeholders in the script's strings are filled from `variables` (e.g. `{sandbox}`, known only once the
campaign exists). A request that departs from the script is answered with HTTP 400 (an error neither CLI retries)
and the difference is kept in `mismatches`, so the test fails naming it. Requests that are not turns of the
agent's conversation (no `tools`: a title or summary request) are answered with a short text and kept in `side`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Step = dict[str, Any]


def _fill(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, val in variables.items():
            value = value.replace("{" + key + "}", val)
        return value
    if isinstance(value, list):
        return [_fill(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, variables) for k, v in value.items()}
    return value


def _text(content: Any) -> str:
    """The text of a message content or a tool result, whichever shape the client sent."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text(c) for c in content)
    if isinstance(content, dict):
        if "text" in content:
            return str(content["text"])
        if "content" in content:
            return _text(content["content"])
        if "output" in content:
            return _text(content["output"])
    return ""


class Conversation:
    """What one request says, in a shape common to both APIs."""

    def __init__(self, prompt: str, system: str, tools: list[str], results: list[tuple[str, bool]]) -> None:
        self.prompt = prompt
        self.system = system
        self.tools = tools
        self.results = results  # the tool results the request carries back: (text, is_error)


def anthropic_view(body: dict[str, Any]) -> Conversation:
    messages = body.get("messages") or []
    users = [m for m in messages if m.get("role") == "user"]
    prompt = _text(users[0].get("content")) if users else ""
    results: list[tuple[str, bool]] = []
    last = messages[-1] if messages else {}
    if last.get("role") == "user" and isinstance(last.get("content"), list):
        for block in last["content"]:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                results.append((_text(block.get("content")), bool(block.get("is_error"))))
    tools = [str(t.get("name")) for t in body.get("tools") or []]
    return Conversation(prompt, _text(body.get("system")), tools, results)


def responses_view(body: dict[str, Any]) -> Conversation:
    items = body.get("input") or []
    items = [{"type": "message", "role": "user", "content": items}] if isinstance(items, str) else items
    users = [i for i in items if i.get("type", "message") == "message" and i.get("role") == "user"]
    prompt = _text(users[-1].get("content")) if users else ""  # the task; earlier user items are environment context
    system = "\n".join(
        [str(body.get("instructions") or "")]
        + [_text(i.get("content")) for i in items if i.get("role") in ("developer", "system")]
    )
    results: list[tuple[str, bool]] = []
    for item in reversed(items):  # the outputs after the model's last turn
        if item.get("type") in ("function_call_output", "custom_tool_call_output"):
            results.insert(0, (_text(item.get("output")), False))
        else:
            break
    tools = [str(t.get("name") or t.get("type")) for t in body.get("tools") or []]
    return Conversation(prompt, system, tools, results)


def check(expect: dict[str, Any], conv: Conversation) -> list[str]:
    problems = []
    for needle in expect.get("prompt_contains", []):
        if needle not in conv.prompt:
            problems.append(f"the prompt lacks {needle!r}: {conv.prompt[:300]!r}")
    for needle in expect.get("system_contains", []):
        if needle not in conv.system:
            problems.append(f"the system prompt lacks {needle!r}")
    for name in expect.get("tools_include", []):
        if name not in conv.tools:
            problems.append(f"tool {name!r} not offered (offered: {conv.tools})")
    if expect.get("result_contains") is not None and not conv.results:
        problems.append("no tool result came back")
    joined = "\n".join(text for text, _ in conv.results)
    for needle in expect.get("result_contains", []):
        if needle not in joined:
            problems.append(f"the tool result lacks {needle!r}: {joined[:600]!r}")
    for needle in expect.get("result_lacks", []):
        if needle in joined:
            problems.append(f"the tool result has {needle!r}: {joined[:600]!r}")
    want = expect.get("result_error")
    want = want == "true" if isinstance(want, str) else want  # "{bwrap}" filled in: "true" / "false"
    if want is not None and any(err for _, err in conv.results) != want:
        problems.append(f"tool result is_error != {expect['result_error']}: {joined[:600]!r}")
    return problems


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def anthropic_stream(reply: Step, index: int, model: str) -> list[bytes]:
    usage = reply.get("usage", {})
    start_usage = {
        "input_tokens": int(usage.get("input_tokens", 0)),
        "cache_creation_input_tokens": int(usage.get("cache_creation_input_tokens", 0)),
        "cache_read_input_tokens": int(usage.get("cache_read_input_tokens", 0)),
        "output_tokens": 1,
    }
    message = {
        "id": f"msg_scripted_{index:03d}", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": start_usage,
    }  # fmt: skip
    events = [_sse("message_start", {"type": "message_start", "message": message})]
    blocks: list[tuple[dict[str, Any], dict[str, Any]]] = []
    if reply.get("text"):
        blocks.append(({"type": "text", "text": ""}, {"type": "text_delta", "text": reply["text"]}))
    for i, tool in enumerate(reply.get("tools", [])):
        start = {"type": "tool_use", "id": f"toolu_scripted_{index:03d}_{i}", "name": tool["name"], "input": {}}
        blocks.append((start, {"type": "input_json_delta", "partial_json": json.dumps(tool.get("input", {}))}))
    for i, (start, delta) in enumerate(blocks):
        events.append(_sse("content_block_start", {"type": "content_block_start", "index": i, "content_block": start}))
        events.append(_sse("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}))
        events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": i}))
    stop = "tool_use" if reply.get("tools") else "end_turn"
    delta_usage = {"output_tokens": int(usage.get("output_tokens", 0))}
    events.append(
        _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                               "usage": delta_usage})
    )  # fmt: skip
    events.append(_sse("message_stop", {"type": "message_stop"}))
    return events


def responses_stream(reply: Step, index: int, model: str) -> list[bytes]:
    usage = reply.get("usage", {})
    rid = f"resp_scripted_{index:03d}"
    output: list[dict[str, Any]] = []
    if reply.get("text"):
        output.append(
            {"type": "message", "id": f"msg_scripted_{index:03d}", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": reply["text"], "annotations": []}]}
        )  # fmt: skip
    for i, tool in enumerate(reply.get("tools", [])):
        ids = {"id": f"fc_scripted_{index:03d}_{i}", "call_id": f"call_{index:03d}_{i}", "name": tool["name"]}
        if isinstance(tool.get("input"), str):  # a freeform tool (Codex's apply_patch): the input is the text itself
            output.append({"type": "custom_tool_call", **ids, "input": tool["input"], "status": "completed"})
        else:
            output.append(
                {"type": "function_call", **ids, "arguments": json.dumps(tool.get("input", {})), "status": "completed"}
            )
    base = {"id": rid, "object": "response", "created_at": int(time.time()), "model": model}
    events = [_sse("response.created", {"type": "response.created", "response": {**base, "status": "in_progress",
                                                                                 "output": []}})]  # fmt: skip
    for i, item in enumerate(output):
        events.append(_sse("response.output_item.added", {"type": "response.output_item.added", "output_index": i,
                                                          "item": {**item, "status": "in_progress"}}))  # fmt: skip
        if item["type"] == "message":
            events.append(
                _sse("response.output_text.delta", {"type": "response.output_text.delta", "item_id": item["id"],
                                                    "output_index": i, "content_index": 0, "delta": reply["text"]})
            )  # fmt: skip
        events.append(_sse("response.output_item.done", {"type": "response.output_item.done", "output_index": i,
                                                         "item": item}))  # fmt: skip
    tokens_in, tokens_out = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    cached = int(usage.get("cached_tokens", 0))
    done = {
        **base, "status": "completed", "output": output,
        "usage": {"input_tokens": tokens_in, "input_tokens_details": {"cached_tokens": cached},
                  "output_tokens": tokens_out, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": tokens_in + tokens_out},
    }  # fmt: skip
    events.append(_sse("response.completed", {"type": "response.completed", "response": done}))
    return events


class ScriptedModel:
    """Serves one script on a free loopback port; `base_url` is the root (Claude Code appends /v1/messages),
    `openai_base_url` the `/v1` root the Responses API hangs off."""

    def __init__(
        self, script: list[Step], *, model: str = "scripted-model", on_request: Callable[[int], None] | None = None
    ) -> None:
        self.script = script
        self.model = model
        self.on_request = on_request  # called with the index of each conversation request, before it is answered
        self.variables: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []  # bodies of the conversation's requests, in order
        self.headers: list[dict[str, str]] = []  # their HTTP headers
        self.side: list[dict[str, Any]] = []  # bodies of requests outside the conversation
        self.mismatches: list[str] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.paths.append(f"GET {self.path}")
                self._json(404, {"error": {"type": "not_found_error", "message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                route = self.path.split("?", 1)[0]
                server.paths.append(f"POST {route}")
                headers = dict(self.headers)
                if route == "/v1/messages":
                    status, payload = server.answer(body, headers, anthropic_view, anthropic_stream)
                elif route in ("/v1/responses", "/responses"):
                    status, payload = server.answer(body, headers, responses_view, responses_stream)
                else:
                    with server._lock:
                        server.mismatches.append(f"unexpected request POST {self.path}")
                    status, payload = 404, {"error": {"type": "not_found_error", "message": f"no route {self.path}"}}
                if status != 200 or not isinstance(payload, list):
                    self._json(status, payload)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in payload:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                self.close_connection = True

            def _json(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def answer(self, body: dict[str, Any], headers: dict[str, str], view: Any, stream: Any) -> tuple[int, Any]:
        conv = view(body)
        with self._lock:
            if not body.get("tools"):  # not a turn of the agent's conversation
                self.side.append(body)
                return 200, stream({"text": "Scripted session", "usage": {}}, 900 + len(self.side), self.model)
            index = len(self.requests)
            self.requests.append(body)
            self.headers.append(headers)
            if index >= len(self.script) and not self.script[-1].get("repeat"):
                self.mismatches.append(f"request {index}: the script has only {len(self.script)} steps")
                return 400, _error("the conversation went on past the script")
            step = _fill(self.script[min(index, len(self.script) - 1)], self.variables)
            problems = check(step.get("expect", {}), conv)
            if problems:
                self.mismatches.extend(f"request {index}: {p}" for p in problems)
                return 400, _error("; ".join(problems))
        if self.on_request is not None:
            self.on_request(index)
        if step.get("delay_s"):
            time.sleep(float(step["delay_s"]))
        return 200, stream(step["reply"], index, self.model)

    def __enter__(self) -> ScriptedModel:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _error(message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "invalid_request_error", "message": f"scripted model: {message}"}}
