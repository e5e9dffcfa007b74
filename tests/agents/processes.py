"""Finding the processes an agent started, from the host: by a unique `sleep MARKER` command line (under
bubblewrap the agent has its own PID namespace, so a pid it reports means nothing out here)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def marker_pids(marker: str) -> list[int]:
    """Live processes whose command line is `sleep MARKER`."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", marker.encode()] and alive(int(proc.name)):
                pids.append(int(proc.name))
    return pids


def new_marker() -> str:
    """A sleep duration no other test uses at the same time (`sleep 4xxx`: it outlives every test here)."""
    return str(4000 + (os.getpid() * 7919 + time.monotonic_ns() // 1000) % 5000)
