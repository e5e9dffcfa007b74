"""Agent budgets: turns, wall time, tokens and money, per worker and per round.

A worker checks `BudgetMeter.exceeded()` after every model call or streamed event; the first limit crossed names
the reason, the worker stops its agent (the whole process tree, for a CLI agent) and reports it in
`WorkerResult.stopped_for_budget`. Per-round totals are shared by candidates running in parallel threads, so the
`RoundLedger` is guarded by a lock.
"""

from __future__ import annotations

import threading
import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from evotrain.records.manifest import WorkerUsage


class AgentBudget(BaseModel):
    """Limits for one worker (`max_*`) and for all workers of one round together (`round_*`); None = no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_turns: Annotated[int, Field(ge=1)] | None = 30
    max_wall_s: Annotated[float, Field(gt=0)] | None = 1800.0
    max_tokens: Annotated[int, Field(ge=1)] | None = 400_000
    max_usd: Annotated[float, Field(ge=0)] | None = None
    round_tokens: Annotated[int, Field(ge=1)] | None = None
    round_usd: Annotated[float, Field(ge=0)] | None = None


class RoundLedger:
    """Tokens and money spent by all workers of each round; safe to share between candidate threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[int, int] = {}
        self._usd: dict[int, float] = {}

    def charge(self, round_no: int, tokens: int, usd: float) -> None:
        with self._lock:
            self._tokens[round_no] = self._tokens.get(round_no, 0) + tokens
            self._usd[round_no] = self._usd.get(round_no, 0.0) + usd

    def spent(self, round_no: int) -> tuple[int, float]:
        with self._lock:
            return self._tokens.get(round_no, 0), self._usd.get(round_no, 0.0)


class BudgetMeter:
    """One worker's running usage against its budget; charges every increment to the round ledger too."""

    def __init__(self, budget: AgentBudget, ledger: RoundLedger, round_no: int) -> None:
        self.budget = budget
        self.ledger = ledger
        self.round_no = round_no
        self.started = time.monotonic()
        self.usage = WorkerUsage()

    def add(self, *, turns: int = 0, input_tokens: int = 0, output_tokens: int = 0, cost_usd: float = 0.0) -> None:
        u = self.usage
        u.turns += turns
        u.input_tokens += input_tokens
        u.output_tokens += output_tokens
        u.cost_usd += cost_usd
        self.ledger.charge(self.round_no, input_tokens + output_tokens, cost_usd)

    def set_totals(self, *, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
        """For agents that report cumulative figures: charge only the increase."""
        self.add(
            input_tokens=max(0, input_tokens - self.usage.input_tokens),
            output_tokens=max(0, output_tokens - self.usage.output_tokens),
            cost_usd=max(0.0, cost_usd - self.usage.cost_usd),
        )

    def finish(self) -> WorkerUsage:
        self.usage.wall_s = time.monotonic() - self.started
        return self.usage.model_copy()

    def exceeded(self) -> str | None:
        """The first limit reached, in words (e.g. "turns 5 ≥ max_turns 5"), or None."""
        b, u = self.budget, self.usage
        tokens = u.input_tokens + u.output_tokens
        wall = time.monotonic() - self.started
        round_tokens, round_usd = self.ledger.spent(self.round_no)
        checks = [
            (b.max_turns, u.turns, "turns", "max_turns"),
            (b.max_tokens, tokens, "tokens", "max_tokens"),
            (b.max_usd, u.cost_usd, "usd", "max_usd"),
            (b.max_wall_s, wall, "wall_s", "max_wall_s"),
            (b.round_tokens, round_tokens, "round tokens", "round_tokens"),
            (b.round_usd, round_usd, "round usd", "round_usd"),
        ]
        for limit, value, what, name in checks:
            if limit is not None and value >= limit:
                return f"{what} {value:.4g} ≥ {name} {limit:g}"
        return None

    def wall_left(self) -> float | None:
        if self.budget.max_wall_s is None:
            return None
        return self.budget.max_wall_s - (time.monotonic() - self.started)
