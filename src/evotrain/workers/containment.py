"""Containment of an agent process: a scrubbed environment, bubblewrap where available, and a stoppable tree.

- The environment keeps nothing that looks like a credential (`*TOKEN*`, `*SECRET*`, `*KEY*`, `*PASSWORD*`,
  `*CREDENTIAL*`) except the agent's own key variable: no leaderboard token reaches an agent.
- With `bwrap` on PATH and able to run (`bwrap_problem()`), the whole filesystem is bound read-only, the candidate
  folder (sandbox and agent-work) read-write, every non-editable file of the sandbox (hardlinks to the snapshot)
  and the campaign's substrate snapshot read-only again on top: an agent cannot write the snapshot even as root.
  Without bwrap, the harness's violation check (before the trial) is what refuses such edits.
- The agent runs in its own session (process group); a budget stop kills the whole group, grandchildren included.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from evotrain.environment import scrub_env
from evotrain.executors.local import group_members
from evotrain.fileio import iter_tree
from evotrain.substrate.spec import SubstrateSpec
from evotrain.workers.context import CONTEXT_ENV, AgentContext

TERM_GRACE_S = 3.0


def agent_env(context: AgentContext, context_file: Path, *, keep: Iterable[str] = ()) -> dict[str, str]:
    """The scrubbed environment of an agent: its context file, and `evotrain` on PATH."""
    env = scrub_env(os.environ, keep)
    bindir = str(Path(sys.executable).parent)  # where the `evotrain` console script of this install lives
    env["PATH"] = os.pathsep.join([env.get("PATH", ""), bindir]) if env.get("PATH") else bindir
    env[CONTEXT_ENV] = str(context_file)
    env["EVOTRAIN_SANDBOX"] = str(context.sandbox)
    return env


def bwrap_problem() -> str | None:
    """None where bubblewrap can build its sandbox here; else why not (not installed, or the kernel refuses it)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "`bwrap` is not on PATH (Debian/Ubuntu: apt-get install bubblewrap)"
    return _probe_bwrap(exe)


@functools.cache
def _probe_bwrap(exe: str) -> str | None:
    argv = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "true"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{exe} did not run: {exc}"
    if proc.returncode != 0:
        return f"{exe} cannot build a sandbox here (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
    return None


def bwrap_available() -> bool:
    return bwrap_problem() is None


def bwrap_prefix(context: AgentContext, spec: SubstrateSpec, executable: str) -> list[str]:
    """bubblewrap arguments: everything read-only but the candidate folder; in it, every file of the sandbox that
    the agent may not edit read-only again (a frozen file is a hardlink to the snapshot's inode: a writable bind of
    the sandbox alone would let a root agent write the snapshot through it); the snapshot read-only on top.

    /tmp is a private tmpfs; what the agent needs from under /tmp (this Python install, the evotrain package (src/ of
    an editable install), the agent executable, the campaign) is bound back read-only before the candidate folder
    is bound read-write.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return []
    package_root = Path(__file__).resolve().parents[2]  # site-packages, or src/ of an editable install
    visible = [Path(sys.prefix), Path(sys.base_prefix), package_root, Path(executable).resolve().parent]
    visible.append(context.campaign_root)
    argv = [
        bwrap,
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
    ]  # fmt: skip
    for path in dict.fromkeys(p.resolve() for p in visible):
        argv += ["--ro-bind", str(path), str(path)]
    argv += ["--bind", str(context.candidate_dir), str(context.candidate_dir)]
    for relpath, path in iter_tree(context.sandbox):
        if not spec.is_editable(relpath) and not path.is_symlink():
            argv += ["--ro-bind", str(path), str(path)]
    return [
        *argv,
        "--ro-bind", str(context.substrate), str(context.substrate),
        "--die-with-parent",
        "--chdir", str(context.sandbox),
    ]  # fmt: skip


@dataclass
class ProcessOutcome:
    exit_code: int | None
    stopped: str | None  # the budget reason when the tree was killed
    stderr_tail: str


def kill_tree(pgid: int, grace_s: float = TERM_GRACE_S) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `grace_s`."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def run_streaming(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    on_line: Callable[[str], str | None],
    wall_left: Callable[[], float | None],
    stdin_text: str | None = None,
) -> ProcessOutcome:
    """Run an agent CLI, feeding each stdout line to `on_line`; when it returns a reason (a budget reached), or the
    wall time runs out, the whole process tree is stopped and the reason returned."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stderr_lines: list[str] = []
    drain = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr or []), daemon=True)
    drain.start()
    if stdin_text is not None and proc.stdin is not None:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(stdin_text)
        proc.stdin.close()
    stopped: list[str] = []
    timer = _wall_timer(proc, wall_left, stopped)
    assert proc.stdout is not None
    for line in proc.stdout:
        reason = on_line(line)
        if reason is not None and not stopped:
            stopped.append(reason)
            kill_tree(proc.pid)
            break
    timer.cancel()
    if stopped:
        kill_tree(proc.pid, grace_s=0.5)  # the wall timer or a budget line: make sure nothing of it is left
    exit_code = proc.wait()
    drain.join(timeout=2)
    return ProcessOutcome(
        exit_code=exit_code, stopped=stopped[0] if stopped else None, stderr_tail="".join(stderr_lines[-20:])
    )


def _wall_timer(
    proc: subprocess.Popen[str], wall_left: Callable[[], float | None], stopped: list[str]
) -> threading.Timer:
    left = wall_left()
    limit = max(left, 0.0) if left is not None else None

    def expire() -> None:
        if proc.poll() is None and not stopped:
            stopped.append("wall time reached max_wall_s")
            kill_tree(proc.pid)

    timer = threading.Timer(limit if limit is not None else 1e9, expire)
    timer.daemon = True
    if limit is not None:
        timer.start()
    return timer
