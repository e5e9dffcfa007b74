"""A real leaderboard server for tests: `python -m evotrain.leaderboard serve` on 127.0.0.1, any free port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx


class LeaderboardProcess:
    def __init__(self, answers: Path, db: Path, *extra: str) -> None:
        self.answers = answers
        self.db = db
        self.extra = list(extra)
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> LeaderboardProcess:
        url_file = self.db.with_suffix(".url")
        url_file.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "evotrain.leaderboard", "serve", "--answers", str(self.answers)]
        cmd += ["--db", str(self.db), "--port", "0", "--url-file", str(url_file), *self.extra]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while not url_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited {self.proc.returncode}: {self.proc.stdout.read()}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        self.url = url_file.read_text().strip()
        httpx.get(f"{self.url}/healthz", timeout=10).raise_for_status()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def token(self, campaign: str, *options: str) -> str:
        return operator("token", "--db", str(self.db), "--campaign", campaign, *options).strip()

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def operator(*args: str, check: bool = True) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "evotrain.leaderboard", *args], capture_output=True, text=True, timeout=60
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"`evotrain leaderboard {' '.join(args)}` exited {done.returncode}: {done.stderr}")
    return done.stdout if check else done.stdout + done.stderr


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_predictions(path: Path, predictions: dict[str, str]) -> Path:
    path.write_text(json.dumps({"predictions": predictions}))
    return path
