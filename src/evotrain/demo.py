"""`evotrain demo`: the embedded default, end to end and offline.

It builds the Wonderland-puzzles substrate (a small causal LM post-trained on CPU), keeps the external split's
labels outside the campaign, initialises a campaign and runs it against a leaderboard server (`evotrain
leaderboard serve`, a separate process on 127.0.0.1) that holds those labels; the server is started for the run
and stopped after it, also on an error or Ctrl-C.

    DIR/
      substrate/                     the built substrate (the campaign snapshots it)
      hidden/external_answers.jsonl  the labels only the leaderboard server reads
      hidden/leaderboard.sqlite      the server's submissions (kept across runs: the budget spans them)
      campaign/                      the campaign folder (evotrain status/audit DIR/campaign)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import BaseModel

from evotrain.campaign.config import load_config
from evotrain.campaign.init import init_campaign
from evotrain.errors import EvotrainError
from evotrain.executors.local import group_members, process_start_ticks
from evotrain.external.config import LeaderboardTargetConfig
from evotrain.fileio import atomic_write_json
from evotrain.leaderboard.store import Budget, LeaderboardStore
from evotrain.substrate.spec import SPEC_FILENAME

# The campaign reads the server's URL and its token from these at run time: the port changes per run, and the
# token is issued per run and never written to disk.
URL_ENV = "EVOTRAIN_DEMO_LEADERBOARD_URL"
TOKEN_ENV = "EVOTRAIN_DEMO_LEADERBOARD_TOKEN"
DEMO_BUDGET = Budget(max_total=40, max_per_period=None)  # enough for 4 rounds × (2 top + anchor), with room


@dataclass(frozen=True)
class DemoPlan:
    rounds: int
    workers: int
    parallel: int


FULL = DemoPlan(rounds=4, workers=8, parallel=2)
QUICK = DemoPlan(rounds=1, workers=2, parallel=2)


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def substrate(self) -> Path:
        return self.root / "substrate"

    @property
    def answers(self) -> Path:
        return self.root / "hidden" / "external_answers.jsonl"

    @property
    def leaderboard_db(self) -> Path:
        return self.root / "hidden" / "leaderboard.sqlite"

    @property
    def campaign(self) -> Path:
        return self.root / "campaign"


def external_target() -> LeaderboardTargetConfig:
    return LeaderboardTargetConfig(name="leaderboard", url_env=URL_ENV, token_env=TOKEN_ENV)


def prepare_demo(
    root: Path, *, seed: int = 0, profile: str = "tiny", say: Callable[[str], None] | None = None
) -> DemoPaths:
    """Build the substrate and init the campaign, unless an earlier call already did (then this resumes)."""
    from evotrain.puzzles.build import build_substrate  # torch is imported only when the demo needs it

    paths = DemoPaths(root)
    if (paths.campaign / "campaign.toml").exists():
        return paths
    if not ((paths.substrate / SPEC_FILENAME).exists() and paths.answers.exists()):
        if paths.substrate.exists():  # a build interrupted part-way: start it again
            shutil.rmtree(paths.substrate)
        build_substrate(paths.substrate, seed=seed, answers_path=paths.answers, profile=profile, progress=say)
    init_campaign(paths.campaign, paths.substrate, external=external_target(), seed=seed)
    return paths


def held_out_scores(paths: DemoPaths) -> dict[str, float]:
    """Submission id -> the held-out (private) score the demo's board recorded, for the summary after a run. The
    campaign never reads these; the board is not finalized, so a later run can still resume and submit."""
    if not paths.leaderboard_db.exists():
        return {}
    name = load_config(paths.campaign / "campaign.toml").name
    store = LeaderboardStore(paths.leaderboard_db)
    try:
        return {r.id: r.private_score for r in store.submissions(name) if r.private_score is not None}
    finally:
        store.close()


@contextlib.contextmanager
def demo_leaderboard(paths: DemoPaths, *, timeout_s: float = 60.0) -> Iterator[str | None]:
    """Serve the demo's hidden labels for the duration of the block; yields the server's URL.

    A campaign made before the demo used a leaderboard (a command target) runs as it was: nothing is started and
    None is yielded.
    """
    config = load_config(paths.campaign / "campaign.toml")
    if not isinstance(config.external, LeaderboardTargetConfig):
        yield None
        return
    with serve_leaderboard(paths.answers, paths.leaderboard_db, config.name, timeout_s=timeout_s) as url:
        yield url


@contextlib.contextmanager
def serve_leaderboard(
    answers: Path, db: Path, campaign: str, *, budget: Budget = DEMO_BUDGET, timeout_s: float = 60.0
) -> Iterator[str]:
    """A leaderboard server on `answers` for the campaign named `campaign`, for the duration of the block.

    Sets URL_ENV and TOKEN_ENV for the campaign (`external_target()` reads them), and stops the server and
    restores the environment on the way out, whatever ended the block.
    """
    server, url = start_leaderboard(answers, db, timeout_s=timeout_s)
    saved = {name: os.environ.get(name) for name in (URL_ENV, TOKEN_ENV)}
    try:
        store = LeaderboardStore(db)
        try:  # a fresh token each run (only its hash is stored); the submissions and the budget carry over
            token = store.create_campaign(campaign, budget, rotate=True)
        finally:
            store.close()
        os.environ[URL_ENV], os.environ[TOKEN_ENV] = url, token
        yield url
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        stop_leaderboard(server, db)


def start_leaderboard(answers: Path, db: Path, *, timeout_s: float = 60.0) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m evotrain leaderboard serve` on 127.0.0.1, a free port; returns once /healthz answers."""
    url_file = db.with_suffix(".url")
    stop_stale_leaderboard(db)
    url_file.unlink(missing_ok=True)
    log = db.with_suffix(".log")
    command = [sys.executable, "-m", "evotrain", "leaderboard", "serve", "--answers", str(answers), "--db", str(db)]
    command += ["--host", "127.0.0.1", "--port", "0", "--url-file", str(url_file), "--parent-pid", str(os.getpid())]
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        # Its own session: Ctrl-C in the terminal reaches the demo, which then stops the server in order; it stops
        # by itself when the demo dies some other way (--parent-pid).
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    record = ServerRecord(pid=server.pid, start_ticks=process_start_ticks(server.pid), db=str(db.resolve()))
    atomic_write_json(db.with_suffix(".pid"), record)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if server.poll() is not None:
                raise EvotrainError(
                    f"the leaderboard server exited {server.returncode}: {log.read_text()[-800:]}",
                    path=log,
                    fix="read the server's log above; `evotrain leaderboard serve --help` lists its options",
                )
            if url_file.exists() and _healthy(url := url_file.read_text().strip()):
                return server, url
            if time.monotonic() > deadline:
                raise EvotrainError(f"the leaderboard server did not start in {timeout_s:.0f} s", path=log)
            time.sleep(0.1)
    except BaseException:
        stop_leaderboard(server, db)
        raise


def stop_leaderboard(server: subprocess.Popen[bytes], db: Path, timeout_s: float = 10.0) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    pid_file = db.with_suffix(".pid")
    with contextlib.suppress(FileNotFoundError, ValueError):
        if ServerRecord.model_validate_json(pid_file.read_text()).pid == server.pid:
            pid_file.unlink()


class ServerRecord(BaseModel):
    """`<db>.pid`: the leaderboard server a demo started, so a later demo can stop it if it outlived its demo."""

    pid: int
    start_ticks: int | None  # /proc/<pid>/stat field 22: tells our server from a later process given the same pid
    db: str


def stop_stale_leaderboard(db: Path, timeout_s: float = 10.0) -> bool:
    """Stop the server `<db>.pid` records when it is still running and really is ours (the same process start
    time, a `leaderboard serve` command on this database); True when one was stopped. A record of anything else is
    only removed."""
    pid_file = db.with_suffix(".pid")
    try:
        record = ServerRecord.model_validate_json(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        pid_file.unlink(missing_ok=True)
        return False
    ours = _is_our_server(record, db)
    if ours:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while group_members(record.pid) and time.monotonic() < deadline:  # its own session: pgid == pid
            time.sleep(0.1)
        if group_members(record.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return ours


def _is_our_server(record: ServerRecord, db: Path) -> bool:
    """The recorded process is still the one started (same start time) and runs `leaderboard serve --db <db>`."""
    if record.start_ticks is None or process_start_ticks(record.pid) != record.start_ticks:
        return False
    try:
        words = Path(f"/proc/{record.pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    if "serve" not in words or "--db" not in words[:-1]:
        return False
    return Path(words[words.index("--db") + 1]).resolve() == db.resolve() == Path(record.db)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def demo_of(campaign: Path) -> DemoPaths | None:
    """The demo a campaign folder belongs to, so `evotrain run` on it can serve its leaderboard: a `DIR/campaign`
    whose external target reads URL_ENV, with the hidden labels beside it in `DIR/hidden`. None otherwise."""
    paths = DemoPaths(campaign.resolve().parent)
    if campaign.resolve() != paths.campaign.resolve() or not paths.answers.is_file():
        return None
    external = load_config(paths.campaign / "campaign.toml").external
    return paths if isinstance(external, LeaderboardTargetConfig) and external.url_env == URL_ENV else None
