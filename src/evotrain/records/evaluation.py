"""The evaluation report a substrate's `evaluate` step writes for one checkpoint (docs/substrate-format.md): the
one model every reader parses it with (the harness checks it against `[metric]` too, in `trial.evaluation`)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class ReportDomain(BaseModel):
    score: FiniteFloat
    n: Annotated[int, Field(ge=1)]


class ReportItem(BaseModel):
    id: str
    domain: str
    score: FiniteFloat


class EvalReport(BaseModel):
    """`{"metric": …, "domains": {name: {"score", "n"}}, "items": [{"id", "domain", "score"}]}` (items optional)."""

    metric: str
    domains: dict[str, ReportDomain]
    items: list[ReportItem] | None = None

    def item_scores(self) -> dict[str, dict[str, float]]:
        """domain -> item id -> score (empty without items)."""
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for item in self.items or []:
            out[item.domain][item.id] = item.score
        return dict(out)


def read_eval_report(path: Path) -> EvalReport:
    """Parse a report; raises OSError (e.g. FileNotFoundError), UnicodeDecodeError or pydantic's ValidationError."""
    return EvalReport.model_validate_json(path.read_text())
