"""A campaign's state read from its files alone, so it works for a campaign driven elsewhere (a cluster)."""

from __future__ import annotations

from pydantic import BaseModel

from evotrain.campaign.layout import CampaignPaths
from evotrain.fileio import read_jsonl
from evotrain.trial.manifest import Manifest
from evotrain.trial.trace import Trace


class CandidateStatus(BaseModel):
    candidate_id: str
    role: str
    axis: str | None
    stage: str  # the last trace event, or "done"/failure class once the manifest is written
    objective: float | None = None
    external: float | None = None


class RoundStatus(BaseModel):
    round: int
    state: str  # "planned", "running", "closed", "pending"
    candidates: list[CandidateStatus]
    best_objective: float | None = None
    best_external: float | None = None


def campaign_status(paths: CampaignPaths) -> list[RoundStatus]:
    rounds = []
    for round_paths in paths.rounds():
        kinds = [e.get("kind") for e in read_jsonl(round_paths.trace)]
        state = "closed" if "round_closed" in kinds else ("running" if "planned" in kinds else "pending")
        candidates = []
        for cp in round_paths.candidates():
            if cp.manifest.exists():
                m = Manifest.model_validate_json(cp.manifest.read_text())
                candidates.append(
                    CandidateStatus(
                        candidate_id=m.candidate_id,
                        role=m.role,
                        axis=m.axis,
                        stage=m.failure.failure_class if m.failure else "done",
                        objective=m.selected.objective if m.selected else None,
                        external=m.external.score if m.external else None,
                    )
                )
            else:
                last = next(reversed(list(Trace(cp.trace).events())), None)
                stage = f"{last.kind}{' ' + last.key.rsplit('/', 1)[-1] if last.key else ''}" if last else "queued"
                candidates.append(CandidateStatus(candidate_id=cp.candidate_id, role="?", axis=None, stage=stage))
        objectives = [c.objective for c in candidates if c.objective is not None]
        externals = [c.external for c in candidates if c.external is not None]
        rounds.append(
            RoundStatus(
                round=round_paths.number,
                state=state,
                candidates=candidates,
                best_objective=max(objectives) if objectives else None,
                best_external=max(externals) if externals else None,
            )
        )
    return rounds
