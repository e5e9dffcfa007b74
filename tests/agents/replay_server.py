"""A local OpenAI-compatible server on 127.0.0.1 that replays a recorded chat-completions conversation.

A recording is a JSON list of exchanges. Each exchange says what the next request must contain (`expect`) and
what to answer (`reply`: assistant content and/or tool calls, and the `usage` to report; a tool call's
`arguments_raw` is sent verbatim instead of the JSON of `arguments`). A request that does not
match is answered with HTTP 400 and remembered in `mismatches`, so a test fails on a conversation that went
differently from the recording. `"repeat": true` on the last exchange answers it forever (a model that never
finishes).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def _check(expect: dict[str, Any], body: dict[str, Any]) -> list[str]:
    problems = []
    messages = body.get("messages", [])
    last = messages[-1] if messages else {}
    if "model" in expect and body.get("model") != expect["model"]:
        problems.append(f"model {body.get('model')!r} != {expect['model']!r}")
    if "last_role" in expect and last.get("role") != expect["last_role"]:
        problems.append(f"last message role {last.get('role')!r} != {expect['last_role']!r}")
    content = last.get("content") or ""
    content = content if isinstance(content, str) else json.dumps(content)
    for needle in expect.get("last_contains", []):
        if needle not in content:
            problems.append(f"last message lacks {needle!r}: {content[:300]!r}")
    for needle in expect.get("any_contains", []):
        if not any(needle in (m.get("content") or "") for m in messages if isinstance(m.get("content"), str)):
            problems.append(f"no message contains {needle!r}")
    tools = sorted(t["function"]["name"] for t in body.get("tools", []))
    if "tools" in expect and tools != sorted(expect["tools"]):
        problems.append(f"tools {tools} != {sorted(expect['tools'])}")
    if "tool_choice" in expect and body.get("tool_choice") != expect["tool_choice"]:
        problems.append(f"tool_choice {body.get('tool_choice')!r} != {expect['tool_choice']!r}")
    if "response_format" in expect and body.get("response_format", {}).get("type") != expect["response_format"]:
        problems.append(f"response_format {body.get('response_format')!r}")
    return problems


def completion(reply: dict[str, Any], index: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
    calls = reply.get("tool_calls") or []
    if calls:
        message["tool_calls"] = [
            {
                "id": f"call_{index}_{i}",
                "type": "function",
                # `arguments_raw`: the exact string a weak model sent (truncated JSON, a list, …)
                "function": {
                    "name": c["name"],
                    "arguments": c.get("arguments_raw", json.dumps(c.get("arguments", {}))),
                },
            }
            for i, c in enumerate(calls)
        ]
    if "function_call" in reply:  # the deprecated field some servers still fill (llama-cpp-python)
        message["function_call"] = reply["function_call"]
    usage = reply.get("usage", {"prompt_tokens": 0, "completion_tokens": 0})
    return {
        "id": f"chatcmpl-replay-{index}",
        "object": "chat.completion",
        "created": 0,
        "model": reply.get("model", "replay"),
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
    }


class ReplayServer:
    def __init__(self, recording: list[dict[str, Any]]) -> None:
        self.recording = recording
        self.requests: list[dict[str, Any]] = []
        self.mismatches: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, payload = server.answer(self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @classmethod
    def from_file(cls, path: Path) -> ReplayServer:
        return cls(json.loads(path.read_text()))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            index = len(self.requests)
            self.requests.append(body)
            if path != "/v1/chat/completions":
                self.mismatches.append(f"request {index}: unexpected path {path}")
                return 404, {"error": {"message": f"no route {path}"}}
            if index >= len(self.recording) and not self.recording[-1].get("repeat"):
                self.mismatches.append(f"request {index}: the recording has only {len(self.recording)} exchanges")
                return 400, {"error": {"message": "conversation longer than the recording"}}
            exchange = self.recording[min(index, len(self.recording) - 1)]
            problems = _check(exchange.get("expect", {}), body)
            if problems:
                self.mismatches.extend(f"request {index}: {p}" for p in problems)
                return 400, {"error": {"message": "; ".join(problems)}}
            return 200, completion(exchange["reply"], index)

    def __enter__(self) -> ReplayServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
