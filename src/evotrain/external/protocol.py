"""The external-target protocol: the authority the loop trusts over its own dev metric.

Implementations: a user command (here); a leaderboard server and Kaggle implement the same protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel


class ExternalScore(BaseModel):
    score: float
    domains: dict[str, float] | None = None
    n: int | None = None
    submission_id: str | None = None


class ExternalTarget(Protocol):
    name: str

    def submit(self, candidate_id: str, predictions: Path) -> ExternalScore:
        """Score one candidate's predictions file ({"predictions": {id: answer}}); raises EvotrainError on failure."""
        ...
