"""A stand-in for the `claude` and `codex` CLIs: it emits their documented JSON event formats (claude -p
--output-format stream-json; codex exec --json) and acts in its cwd as the scenario in STANDIN_MODE says.

Installed by the tests as `claude` and `codex` (a copy named after the CLI) first on PATH. It writes its argv,
cwd and environment names to `standin-call.json` in its candidate folder (beside agent.json: writable under
bubblewrap too, where the host's /tmp is hidden) so a test can check how the worker called it.
modes: edit (lower train.lr, run `evotrain trial train` + `evaluate`, finish), frozen (replace eval/evaluate.py by
a new file), escape (try to write the frozen file in place, the snapshot and the campaign, and the editable recipe,
agent-work and /tmp; the final message is a JSON object: attempt → "ok" or the errno name), forever (start a
grandchild `sleep $STANDIN_SLEEP`, the marker a test finds it by, write its pid to `standin-child.pid`, then emit
turns with usage until killed), silent (the same, sleeping without output).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

CLI = Path(sys.argv[0]).name
MODE = os.environ.get("STANDIN_MODE", "edit")


def emit(event: dict) -> None:
    print(json.dumps(event), flush=True)


def candidate_dir() -> Path:
    return Path(os.environ["EVOTRAIN_AGENT_CONTEXT"]).parent


def record() -> None:
    data: dict[str, object] = {"argv": sys.argv[1:], "cwd": os.getcwd(), "env": sorted(os.environ)}
    login = Path(os.environ.get("CODEX_HOME", "/nonexistent")) / "auth.json"
    if login.exists():  # a ChatGPT login copied in: note it, and refresh it as Codex does when its token expires
        data["saw_login"] = login.read_text()
        if os.environ.get("STANDIN_REFRESH_LOGIN"):
            login.write_text(os.environ["STANDIN_REFRESH_LOGIN"])
    (candidate_dir() / "standin-call.json").write_text(json.dumps(data))


def claude_turn(i: int, text: str = "", tool: str | None = None, tokens: int = 500) -> None:
    content = [{"type": "text", "text": text}] if text else []
    if tool:
        content.append({"type": "tool_use", "id": f"toolu_{i}", "name": "Bash", "input": {"command": tool}})
    usage = {"input_tokens": tokens, "cache_read_input_tokens": 100, "output_tokens": 50}
    emit({"type": "assistant", "message": {"id": f"msg_{i}", "role": "assistant", "content": content, "usage": usage}})


def codex_item(i: int, item: dict) -> None:
    emit({"type": "item.started", "item": {"id": f"item_{i}", **item, "status": "in_progress"}})
    emit({"type": "item.completed", "item": {"id": f"item_{i}", **item}})


def shell(command: str) -> str:
    proc = subprocess.run(command, shell=True, capture_output=True, text=True)
    return proc.stdout + proc.stderr


def act_edit() -> str:
    recipe = Path("recipe.toml")
    recipe.write_text(recipe.read_text().replace("lr = 0.03 ", "lr = 0.01 "))
    out = shell("evotrain trial train") + shell("evotrain trial evaluate")
    if "selected" not in out:
        raise SystemExit(f"trial failed: {out}")
    return "Lowered train.lr 0.03 → 0.01 to test whether a smaller step helps; a gain over the anchor confirms it."


def act_frozen() -> str:
    target = Path("eval/evaluate.py")
    text = target.read_text()
    target.unlink()  # a new inode: the snapshot's hardlinked copy stays intact
    target.write_text(text.replace("def ", "def _lenient_", 1))
    return "Made evaluation more lenient."


def attempt(action: Callable[[], object]) -> str:
    try:
        action()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    return "ok"


def append(path: Path, text: str) -> None:
    with path.open("a") as f:  # in place: the same inode, as an editor that truncates and rewrites does
        f.write(text)


def act_escape() -> str:
    context = json.loads(Path(os.environ["EVOTRAIN_AGENT_CONTEXT"]).read_text())
    substrate, root = Path(context["substrate"]), Path(context["campaign_root"])
    recipe = Path("recipe.toml")
    tmp_file = Path(f"/tmp/evotrain-standin-escape-{os.getpid()}")
    outcome = {
        "frozen_in_place": attempt(lambda: append(Path("eval/evaluate.py"), "\n# lenient\n")),
        "frozen_replace": attempt(lambda: Path("eval/evaluate.py").unlink()),
        "snapshot_file": attempt(lambda: append(substrate / "eval" / "evaluate.py", "\n# lenient\n")),
        "snapshot_new_file": attempt(lambda: (substrate / "evil.py").write_text("x = 1\n")),
        "campaign_file": attempt(lambda: append(root / "campaign.toml", "\n# edited\n")),
        "editable": attempt(lambda: recipe.write_text(recipe.read_text().replace("lr = 0.03 ", "lr = 0.01 "))),
        "agent_work": attempt(lambda: (Path(context["agent_work"]) / "notes.txt").write_text("tried\n")),
        "tmp": attempt(lambda: tmp_file.write_text("scratch\n")),
    }
    return json.dumps({"outcome": outcome, "tmp_file": str(tmp_file)})


def act(mode: str) -> str:
    return {"edit": act_edit, "frozen": act_frozen, "escape": act_escape}[mode]()


def main_claude() -> None:
    emit({"type": "system", "subtype": "init", "cwd": os.getcwd(), "session_id": "s1", "tools": ["Bash", "Edit"]})
    if MODE in ("edit", "frozen", "escape"):
        claude_turn(1, "Reading the recipe.", tool="cat recipe.toml")
        emit(
            {
                "type": "user",
                "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
            }
        )
        text = act(MODE)
        claude_turn(2, text)
        claude_turn(2, text)  # the same message streamed again: counted once
        emit(
            {
                "type": "result",
                "subtype": "success",
                "is_error": False,
                "num_turns": 2,
                "duration_ms": 1234,
                "session_id": "s1",
                "total_cost_usd": 0.0123,
                "usage": {"input_tokens": 1000, "cache_read_input_tokens": 200, "output_tokens": 100},
                "result": text,
            }
        )
        return
    forever()


def main_codex() -> None:
    emit({"type": "thread.started", "thread_id": "th_1"})
    emit({"type": "turn.started"})
    if MODE in ("edit", "frozen", "escape"):
        codex_item(1, {"type": "command_execution", "command": "cat recipe.toml", "exit_code": 0})
        text = act(MODE)
        codex_item(2, {"type": "file_change", "changes": [{"path": "recipe.toml", "kind": "update"}]})
        codex_item(3, {"type": "agent_message", "text": text})
        emit(
            {
                "type": "turn.completed",
                "usage": {"input_tokens": 3000, "cached_input_tokens": 1000, "output_tokens": 400},
            }
        )
        return
    forever()


def forever() -> None:
    child = subprocess.Popen(["sleep", os.environ.get("STANDIN_SLEEP", "300")])
    (candidate_dir() / "standin-child.pid").write_text(str(child.pid))
    if MODE == "silent":
        time.sleep(300)
    for i in range(10_000):
        if CLI == "claude":
            claude_turn(i, "thinking")
        else:
            codex_item(i, {"type": "command_execution", "command": "ls", "exit_code": 0})
        time.sleep(0.02)


if __name__ == "__main__":
    if sys.argv[1:] == ["--version"]:  # the worker checks it at start: answer as the tested versions do
        print("2.1.328 (Claude Code)" if CLI == "claude" else "codex-cli 0.169.0")
        raise SystemExit(0)
    record()
    main_claude() if CLI == "claude" else main_codex()
