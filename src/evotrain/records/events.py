"""The round events of `rounds/rNNNN/round.jsonl`, typed: one model per kind, read back as a discriminated union.

A round is planned (its candidates, fixed before any of them runs), may skip an external submission, writes its
evidence, writes the next round's policy, and closes. Each line holds `kind` and `ts` first, then its fields.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from evotrain.records.manifest import CandidateRole


class CandidatePlan(BaseModel):
    """One candidate of a round's plan: its folder name, role, axis and training seed."""

    name: str
    role: CandidateRole
    axis: str | None = None
    axis_category: str | None = None
    seed: int
    replicate_of: str | None = None
    combines: list[str] = []  # for a combination: the candidates whose changes it runs together


class _RoundEvent(BaseModel):
    kind: str
    ts: float = Field(default_factory=time.time)


class Planned(_RoundEvent):
    kind: Literal["planned"] = "planned"
    plans: list[CandidatePlan]
    policy_sha256: str


class ExternalSkipped(_RoundEvent):
    kind: Literal["external_skipped"] = "external_skipped"
    candidate: str
    reason: str


class EvidenceWritten(_RoundEvent):
    kind: Literal["evidence_written"] = "evidence_written"
    sha256: str


class PolicyWritten(_RoundEvent):
    kind: Literal["policy_written"] = "policy_written"
    sha256: str  # of the next round's policy
    meta: str  # the meta agent that proposed it


class RoundClosed(_RoundEvent):
    kind: Literal["round_closed"] = "round_closed"


RoundEvent = Annotated[
    Planned | ExternalSkipped | EvidenceWritten | PolicyWritten | RoundClosed, Field(discriminator="kind")
]
ROUND_EVENT: TypeAdapter[RoundEvent] = TypeAdapter(RoundEvent)
