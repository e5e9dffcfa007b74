"""Containment of an agent process: a scrubbed environment, bubblewrap where available, and a stoppable tree.

- The environment keeps nothing that looks like a credential (`*TOKEN*`, `*SECRET*`, `*KEY*`, `*PASSWORD*`,
  `*CREDENTIAL*`) except the agent's own key variable: no leaderboard token reaches an agent.
- With `bwrap` on PATH and able to run (`bwrap_problem()`), the whole filesystem is bound read-only, the candidate
  folder (sandbox and agent-work) read-write, every non-editable file of the sandbox (hardlinks to the snapshot)
  and the campaign's substrate snapshot read-only again on top: an agent cannot write the snapshot even as root.
  Without bwrap, the harness's violation check (before the trial) is what refuses such edits.
- The agent runs in its own session (process group); a budget stop kills its whole process tree: the group and
  every descendant, also those in sessions of their own (Claude Code starts each shell command with setsid).
  Under bubblewrap the agent also gets its own PID namespace, which the kernel empties when bwrap dies.
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
from evotrain.executors.local import group_members, process_start_ticks
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
    visible = [Path(sys.prefix), Path(sys.base_prefix), package_root, install_root(executable)]
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
        "--unshare-pid",  # its own PID namespace: when bwrap dies, the kernel kills every process left in it
        "--die-with-parent",
        "--chdir", str(context.sandbox),
    ]  # fmt: skip


def install_root(executable: str) -> Path:
    """The folder an agent CLI runs from: an npm install's prefix (above `node_modules`, where `.bin/codex` is a
    link to a Node script that starts a native binary of another package), else the executable's folder."""
    path = Path(executable).resolve()
    for parent in path.parents:
        if parent.name == "node_modules":
            return parent.parent
    return path.parent


@dataclass
class ProcessOutcome:
    exit_code: int | None
    stopped: str | None  # the budget reason when the tree was killed
    stderr_tail: str


Proc = tuple[int, int]  # (pid, start time in clock ticks): a pid the kernel may reuse, told apart by its start


def _proc_table() -> dict[int, tuple[str, int, int]]:
    """pid → (state, ppid, start ticks) of every process (/proc/<pid>/stat)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        table[int(entry.name)] = (fields[0], int(fields[1]), int(fields[19]))
    return table


def tree_members(roots: Iterable[int]) -> set[Proc]:
    """The live processes descending from `roots` (roots included), whatever their process group or session."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = [pid for pid in roots if pid in table]
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, []))
    return {(pid, table[pid][2]) for pid in found if table[pid][0] != "Z"}


def _signal(procs: Iterable[Proc], sig: int) -> None:
    table = _proc_table()
    for pid, start in procs:
        if pid in table and table[pid][2] == start:  # still that process, not a reused pid
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def kill_tree(pgid: int, grace_s: float = TERM_GRACE_S) -> None:
    """Stop an agent's whole process tree: its process group and every descendant, also one that made a session
    of its own (Claude Code runs each shell command with setsid, so a group kill left them running).

    The tree is frozen first (SIGSTOP, walking it again until nothing new appears), so that nothing forks or is
    orphaned away from it while it is collected; then SIGTERM (and SIGCONT, to let it act on it), then SIGKILL for
    whatever is left after `grace_s`.
    """
    tracked: set[Proc] = set()
    for _ in range(20):
        group = {(pid, t) for pid in group_members(pgid) if (t := process_start_ticks(pid)) is not None}
        new = (tree_members([pgid, *(pid for pid, _ in tracked)]) | group) - tracked
        if not new:
            break
        _signal(new, signal.SIGSTOP)
        tracked |= new
    _signal(tracked, signal.SIGTERM)
    _signal(tracked, signal.SIGCONT)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and tree_members(pid for pid, _ in tracked):
        time.sleep(0.05)
    _signal(tracked | tree_members(pid for pid, _ in tracked), signal.SIGKILL)
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
