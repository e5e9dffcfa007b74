"""The tools an API agent gets: list/read/write files inside its sandbox, run harness trials, finish.

Writes are refused outside the substrate's editable globs (and frozen paths always), and any path that leaves the
sandbox (`..`, an absolute path, a symlink out) is refused; reads are confined to the sandbox. Trials run only as
`evotrain trial train|evaluate|logs`, in a scrubbed environment, so scores always come from the harness.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from evotrain.fileio import atomic_write_text, iter_tree
from evotrain.substrate.spec import SubstrateSpec

MAX_READ_CHARS = 20_000
MAX_OUTPUT_CHARS = 6_000
TRIAL_STEPS = ("train", "evaluate", "logs")

TOOL_SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "list_files",
            "description": "List the files of your sandbox, marking which ones you may edit.",
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a text file of your sandbox (a path relative to the sandbox).",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "write_file",
            "description": "Replace the whole content of an editable file of your sandbox.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                "required": ["path", "content"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "run_trial",
            "description": "Run `evotrain trial <step>` through the harness: train (prepare + train on your "
            "recipe), evaluate (score every checkpoint on dev), logs (the end of the last attempt's logs).",
            "parameters": {
                "type": "object",
                "properties": {"step": {"type": "string", "enum": list(TRIAL_STEPS)}},
                "required": ["step"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "finish",
            "description": "End your turn with the rationale: what you changed (old → new), why, and what result "
            "would confirm or refute it.",
            "parameters": {
                "type": "object",
                "properties": {"rationale": {"type": "string"}},
                "required": ["rationale"],
                "additionalProperties": False,
            },
        },
    },
]


class ToolRefused(Exception):
    """A tool call the sandbox does not allow; its message goes back to the agent."""


class SandboxTools:
    def __init__(self, sandbox: Path, spec: SubstrateSpec, env: dict[str, str], trial_timeout_s: float) -> None:
        self.sandbox = sandbox.resolve()
        self.spec = spec
        self.env = env
        self.trial_timeout_s = trial_timeout_s
        self.edited: list[str] = []
        self.refused: list[str] = []

    def _resolve(self, relpath: str) -> tuple[str, Path]:
        if not relpath or Path(relpath).is_absolute():
            raise ToolRefused(f"{relpath!r}: give a path relative to the sandbox")
        target = (self.sandbox / relpath).resolve()
        if not target.is_relative_to(self.sandbox):
            raise ToolRefused(f"{relpath!r} is outside the sandbox")
        return target.relative_to(self.sandbox).as_posix(), target

    def list_files(self) -> str:
        lines = []
        for relpath, _ in iter_tree(self.sandbox):
            mark = "editable" if self.spec.is_editable(relpath) else "read-only"
            lines.append(f"{relpath}\t{mark}")
        return "\n".join(lines)

    def read_file(self, path: str) -> str:
        _, target = self._resolve(path)
        if not target.is_file():
            raise ToolRefused(f"{path!r} is not a file of the sandbox")
        text = target.read_text(errors="replace")
        return text if len(text) <= MAX_READ_CHARS else text[:MAX_READ_CHARS] + "\n…(truncated)"

    def write_file(self, path: str, content: str) -> str:
        relpath, target = self._resolve(path)
        if not self.spec.is_editable(relpath):
            self.refused.append(relpath)
            why = "frozen" if self.spec.is_frozen(relpath) else "not under the editable globs"
            raise ToolRefused(
                f"refused: {relpath} is {why}; you may edit only {', '.join(self.spec.editable)} "
                f"(never {', '.join(self.spec.frozen) or 'frozen paths'})"
            )
        atomic_write_text(target, content)
        if relpath not in self.edited:
            self.edited.append(relpath)
        return f"wrote {relpath} ({len(content)} characters)"

    def run_trial(self, step: str) -> str:
        if step not in TRIAL_STEPS:
            raise ToolRefused(f"step must be one of {', '.join(TRIAL_STEPS)}")
        argv = [sys.executable, "-m", "evotrain", "trial", step]
        try:
            proc = subprocess.run(
                argv,
                cwd=self.sandbox,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=self.trial_timeout_s,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            return f"`evotrain trial {step}` ran past {self.trial_timeout_s:g} s and was stopped"
        out = (proc.stdout + proc.stderr).strip()
        if len(out) > MAX_OUTPUT_CHARS:
            out = "…" + out[-MAX_OUTPUT_CHARS:]
        return f"$ evotrain trial {step}\n(exit {proc.returncode})\n{out}"
