"""The external-target protocol: the authority the loop trusts over its own dev metric.

Implementations: a user command (here); a leaderboard server and Kaggle implement the same protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Protocol

from pydantic import BaseModel, Field

# A NaN or infinite score would be written to a manifest as null and refused when it is read back.
Finite = Annotated[float, Field(allow_inf_nan=False)]


class ExternalScore(BaseModel):
    score: Finite
    domains: dict[str, Finite] | None = None
    n: int | None = None
    submission_id: str | None = None


class ExternalTarget(Protocol):
    name: str

    def submit(self, candidate_id: str, predictions: Path) -> ExternalScore:
        """Score one candidate's predictions file ({"predictions": {id: answer}}); raises EvotrainError on failure."""
        ...
