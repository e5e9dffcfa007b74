"""Scoring a submission against the board: the same answer extraction and verification as the substrate's own
evaluation (`evotrain.puzzles.answers.score_by_domain`), applied to the public and the private part separately.

Every item of a part counts; an item without a prediction is wrong; predictions for ids that are not on the board
are ignored (and not reported, so a submission cannot probe which ids the board holds).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from evotrain.leaderboard.board import Board, BoardItem
from evotrain.puzzles.answers import score_by_domain


class PartScore(BaseModel):
    score: float | None  # None when the part has no items
    n: int
    domains: dict[str, float]


class SubmissionScores(BaseModel):
    public: PartScore
    private: PartScore


def score_part(items: Mapping[str, BoardItem], predictions: Mapping[str, str]) -> PartScore:
    if not items:
        return PartScore(score=None, n=0, domains={})
    gold = {item_id: (item.domain, item.answer) for item_id, item in items.items()}
    overall, domains, _per_item = score_by_domain(predictions, gold)  # per-item correctness never leaves here
    return PartScore(score=overall, n=len(gold), domains={d: v["score"] for d, v in domains.items()})


def score_submission(board: Board, predictions: Mapping[str, str]) -> SubmissionScores:
    return SubmissionScores(
        public=score_part(board.part("public"), predictions),
        private=score_part(board.part("private"), predictions),
    )
