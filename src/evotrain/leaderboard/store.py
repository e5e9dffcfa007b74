"""The leaderboard's SQLite store: campaigns (token hashes, budgets), submissions with their scores, board state.

The server and the operator CLI (`token`, `finalize`, `show`) open the same file; WAL mode and a busy timeout let
them work at once, and a submission's budget check and insert happen in one IMMEDIATE transaction, so two servers
(or two threads) can never overspend a budget. Tokens are stored as sha256 hashes only.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from evotrain.errors import ConfigError, EvotrainError
from evotrain.leaderboard.scoring import SubmissionScores

CAMPAIGN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SUBMISSION_ID = re.compile(r"^sub-[0-9a-f]{16}$")
DAY_S = 86400.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS campaigns (
    name TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    max_total INTEGER,
    max_per_period INTEGER,
    period_s REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS submissions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    campaign TEXT NOT NULL REFERENCES campaigns(name),
    candidate TEXT,
    idempotency_key TEXT,
    predictions_sha256 TEXT NOT NULL,
    created_at REAL NOT NULL,
    public_score REAL,
    n_public INTEGER NOT NULL,
    public_domains TEXT NOT NULL,
    private_score REAL,
    n_private INTEGER NOT NULL,
    private_domains TEXT NOT NULL,
    UNIQUE (campaign, idempotency_key)
);
CREATE INDEX IF NOT EXISTS submissions_by_campaign ON submissions (campaign, created_at);
"""


class Budget(BaseModel):
    max_total: Annotated[int, Field(ge=0)] | None = None  # submissions over the campaign's whole life
    max_per_period: Annotated[int, Field(ge=0)] | None = 5  # submissions in any rolling window of period_s
    period_s: Annotated[float, Field(gt=0)] = DAY_S


class BudgetUsage(BaseModel):
    max_total: int | None
    max_per_period: int | None
    period_s: float
    used_total: int
    used_in_period: int
    next_allowed_at: float | None  # epoch seconds; None when the total budget is spent for good
    allowed_now: bool


class CampaignRow(BaseModel):
    name: str
    created_at: float
    budget: Budget


class SubmissionRow(BaseModel):
    id: str
    campaign: str
    candidate: str | None
    predictions_sha256: str
    created_at: float
    public_score: float | None
    n_public: int
    public_domains: dict[str, float]
    private_score: float | None
    n_private: int
    private_domains: dict[str, float]


class BudgetSpent(EvotrainError):
    """A campaign asked for a submission its budget does not allow (now, or ever)."""

    def __init__(self, message: str, *, next_allowed_at: float | None) -> None:
        self.next_allowed_at = next_allowed_at
        super().__init__(message)


class KeyReused(EvotrainError):
    """An idempotency key came back with different predictions."""


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).hexdigest()


def check_campaign_name(name: str) -> None:
    if not CAMPAIGN_NAME.match(name):
        raise ConfigError(
            f"campaign name {name!r} is not allowed",
            fix="use 1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit",
        )


class LeaderboardStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the server's worker threads, serialized by a lock: SQLite writes serialize
        # anyway, and a lock is simpler than a pool. Other processes (the operator CLI) use their own connection.
        self._conn = sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # ---- board state ------------------------------------------------------------------------------------------
    def bind_board(self, digest: str, name: str) -> None:
        """The first server run records the board's digest; a later run on different answers is refused."""
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'board_sha256'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('board_sha256', ?), ('board_name', ?)", (digest, name))
            elif row["value"] != digest:
                raise ConfigError(
                    "this database holds submissions scored on a different board (the answers, split or public "
                    "fraction changed)",
                    path=self.path,
                    fix="serve the same answers with the same options, or start a new board with a new --db",
                )

    def finalize(self) -> float:
        now = time.time()
        with self._transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('finalized_at', ?)", (repr(now),))
            value = conn.execute("SELECT value FROM meta WHERE key = 'finalized_at'").fetchone()["value"]
        return float(value)

    def finalized_at(self) -> float | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'finalized_at'").fetchone()
        return float(row["value"]) if row else None

    # ---- campaigns --------------------------------------------------------------------------------------------
    def create_campaign(self, name: str, budget: Budget | None = None, *, rotate: bool = False) -> str:
        """Create a campaign and return its token (shown once; only its hash is kept).

        `rotate` replaces the token of an existing campaign (the old one stops working) and, when a budget is
        given, its budget; its submissions stay.
        """
        check_campaign_name(name)
        token = secrets.token_urlsafe(32)
        with self._transaction() as conn:
            exists = conn.execute("SELECT 1 FROM campaigns WHERE name = ?", (name,)).fetchone() is not None
            if exists and not rotate:
                raise ConfigError(
                    f"campaign {name!r} already has a token",
                    path=self.path,
                    fix="pass --rotate to issue a new token (the old one stops working)",
                )
            if exists:
                conn.execute("UPDATE campaigns SET token_sha256 = ? WHERE name = ?", (token_sha256(token), name))
                if budget is not None:
                    conn.execute(
                        "UPDATE campaigns SET max_total = ?, max_per_period = ?, period_s = ? WHERE name = ?",
                        (budget.max_total, budget.max_per_period, budget.period_s, name),
                    )
            else:
                budget = budget or Budget()
                conn.execute(
                    "INSERT INTO campaigns VALUES (?, ?, ?, ?, ?, ?)",
                    (name, token_sha256(token), time.time(), budget.max_total, budget.max_per_period, budget.period_s),
                )
        return token

    def campaign_for_token(self, token: str) -> CampaignRow | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM campaigns WHERE token_sha256 = ?", (token_sha256(token),)
            ).fetchone()
        return _campaign(row) if row else None

    def campaigns(self) -> list[CampaignRow]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM campaigns ORDER BY name").fetchall()
        return [_campaign(r) for r in rows]

    # ---- budget and submissions -------------------------------------------------------------------------------
    def usage(self, campaign: CampaignRow, now: float | None = None) -> BudgetUsage:
        with self._lock:
            return _usage(self._conn, campaign, time.time() if now is None else now)

    def record_submission(
        self,
        campaign: CampaignRow,
        scores: SubmissionScores,
        *,
        candidate: str | None,
        predictions_sha256: str,
        idempotency_key: str | None,
    ) -> tuple[SubmissionRow, bool]:
        """Check the budget and insert, atomically. Returns (row, created); a repeated idempotency key with the
        same predictions returns the earlier row and spends nothing."""
        with self._transaction() as conn:
            if idempotency_key is not None:
                row = conn.execute(
                    "SELECT * FROM submissions WHERE campaign = ? AND idempotency_key = ?",
                    (campaign.name, idempotency_key),
                ).fetchone()
                if row is not None:
                    if row["predictions_sha256"] != predictions_sha256:
                        raise KeyReused("this Idempotency-Key was used for different predictions")
                    return _submission(row), False
            now = time.time()
            usage = _usage(conn, campaign, now)
            if not usage.allowed_now:
                raise BudgetSpent(_budget_message(usage, now), next_allowed_at=usage.next_allowed_at)
            submission_id = f"sub-{secrets.token_hex(8)}"
            conn.execute(
                "INSERT INTO submissions (id, campaign, candidate, idempotency_key, predictions_sha256, created_at, "
                "public_score, n_public, public_domains, private_score, n_private, private_domains) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    submission_id,
                    campaign.name,
                    candidate,
                    idempotency_key,
                    predictions_sha256,
                    now,
                    scores.public.score,
                    scores.public.n,
                    json.dumps(scores.public.domains),
                    scores.private.score,
                    scores.private.n,
                    json.dumps(scores.private.domains),
                ),
            )
            row = conn.execute("SELECT * FROM submissions WHERE id = ?", (submission_id,)).fetchone()
        return _submission(row), True

    def submissions(self, campaign: str | None = None) -> list[SubmissionRow]:
        with self._lock:
            if campaign is None:
                rows = self._conn.execute("SELECT * FROM submissions ORDER BY seq").fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT * FROM submissions WHERE campaign = ? ORDER BY seq", (campaign,)
                ).fetchall()
        return [_submission(r) for r in rows]

    def submission(self, campaign: str, submission_id: str) -> SubmissionRow | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM submissions WHERE campaign = ? AND id = ?", (campaign, submission_id)
            ).fetchone()
        return _submission(row) if row else None


def _campaign(row: sqlite3.Row) -> CampaignRow:
    return CampaignRow(
        name=row["name"],
        created_at=row["created_at"],
        budget=Budget(max_total=row["max_total"], max_per_period=row["max_per_period"], period_s=row["period_s"]),
    )


def _submission(row: sqlite3.Row) -> SubmissionRow:
    return SubmissionRow(
        id=row["id"],
        campaign=row["campaign"],
        candidate=row["candidate"],
        predictions_sha256=row["predictions_sha256"],
        created_at=row["created_at"],
        public_score=row["public_score"],
        n_public=row["n_public"],
        public_domains=json.loads(row["public_domains"]),
        private_score=row["private_score"],
        n_private=row["n_private"],
        private_domains=json.loads(row["private_domains"]),
    )


def _usage(conn: sqlite3.Connection, campaign: CampaignRow, now: float) -> BudgetUsage:
    budget = campaign.budget
    used_total = conn.execute("SELECT COUNT(*) FROM submissions WHERE campaign = ?", (campaign.name,)).fetchone()[0]
    window = [
        r[0]
        for r in conn.execute(
            "SELECT created_at FROM submissions WHERE campaign = ? AND created_at > ? ORDER BY created_at",
            (campaign.name, now - budget.period_s),
        )
    ]
    total_spent = budget.max_total is not None and used_total >= budget.max_total
    period_spent = budget.max_per_period is not None and len(window) >= budget.max_per_period
    next_allowed: float | None = now
    if total_spent:
        next_allowed = None
    elif period_spent:
        assert budget.max_per_period is not None
        if budget.max_per_period == 0:
            next_allowed = None
        else:
            # Rolling window: a slot frees when enough of the window's oldest submissions age out of it.
            leaving = len(window) - budget.max_per_period + 1
            next_allowed = window[leaving - 1] + budget.period_s
    return BudgetUsage(
        max_total=budget.max_total,
        max_per_period=budget.max_per_period,
        period_s=budget.period_s,
        used_total=used_total,
        used_in_period=len(window),
        next_allowed_at=next_allowed,
        allowed_now=not (total_spent or period_spent),
    )


def _budget_message(usage: BudgetUsage, now: float) -> str:
    if usage.next_allowed_at is None:
        return (
            f"submission budget spent for good: {usage.used_total} used of max_total={usage.max_total}, "
            f"max_per_period={usage.max_per_period}; ask the board's operator for more"
        )
    wait = math.ceil(max(0.0, usage.next_allowed_at - now))
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(usage.next_allowed_at))
    return (
        f"submission budget spent for this period: {usage.used_in_period} of {usage.max_per_period} in the last "
        f"{usage.period_s:.0f} s; the next submission is allowed at {when} (in {wait} s)"
    )
