"""The campaign's final pick: what a Kaggle user hands in at the end, read from the manifests alone.

Among the trials the campaign submitted, the one with the best external score the target returned (a
leaderboard's public score); ties go to the earliest submission. A manifest holds only what the target returned
during the campaign, so the pick can never depend on a score the campaign did not see (a leaderboard's private
part stays hidden until the operator finalizes the board).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from evotrain.records.manifest import Manifest


@dataclass(frozen=True)
class FinalPick:
    candidate_id: str
    round: int
    external: float  # the score the target returned (public, for a leaderboard)
    submission_id: str | None
    dev_objective: float | None  # the selected checkpoint's dev objective


def final_pick(manifests: Iterable[Manifest], *, sign: float = 1.0) -> FinalPick | None:
    """The submitted trial with the best external score (`sign` is the metric's: +1 when larger is better)."""
    submitted = [(m, m.external) for m in manifests if m.external is not None]
    if not submitted:
        return None
    best, external = min(submitted, key=lambda pair: (-sign * pair[1].score, pair[1].submitted_at))
    return FinalPick(
        candidate_id=best.candidate_id,
        round=best.round,
        external=external.score,
        submission_id=external.submission_id,
        dev_objective=best.selected.objective if best.selected else None,
    )
