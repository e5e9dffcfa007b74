"""The rolling search policy: the only artifact that changes between rounds.

It carries the empirical rules the loop discovers (standing recipe, axes, dead ends, noise band, selection
objective); the frozen constitution carries the meta-rules every policy update is checked against.
"""

from __future__ import annotations

import hashlib
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evotrain.records.manifest import KnobChange

POLICY_VERSION = 1
HASHED_WHEN_SET = ("combine",)


class Provenance(BaseModel):
    model_config = ConfigDict(frozen=True)

    round: int
    action: str
    reason: str


class StandingRecipe(BaseModel):
    """What every fork inherits: the promoted winner's edited files (never written into the substrate)."""

    files: dict[str, str] = {}  # substrate-relative path -> full content
    diff: str = ""  # unified diff against the substrate, for people and agents
    source: str | None = None  # candidate id it was promoted from, e.g. "r0002/c03-optimizer"
    changes: list[KnobChange] = []  # accumulated by promotions
    provenance: list[Provenance] = []


class AxisState(BaseModel):
    name: str
    category: str
    status: Literal["active", "retired"] = "active"
    provenance: list[Provenance] = []


class DeadEnd(BaseModel):
    """An entry of "Don't waste budget on": append-only, round-tagged."""

    model_config = ConfigDict(frozen=True)

    round: int
    axis: str
    knob: str | None = None
    direction: Literal["increase", "decrease", "set"] | None = None
    value: Any = None
    description: str
    evidence: str = ""

    def blocks(self, axis: str, knob: str, direction: str, value: Any = None) -> bool:
        """Whether a proposed knob change falls in this dead end."""
        if self.axis != axis or (self.knob is not None and self.knob != knob):
            return False
        if self.direction is None:
            return True
        if self.direction != direction:
            return False
        return self.direction != "set" or self.value is None or self.value == value


class NoiseRules(BaseModel):
    k: float = 2.0  # promotion threshold = k · band
    anchors_per_round: Annotated[int, Field(ge=1)] = 1  # unchanged runs (fresh seeds) each round: seed noise
    replicates: Annotated[int, Field(ge=1)] = 1  # fresh-seed runs of a near-threshold win before promotion
    # The rotation rule acts on a flat external target only when the external split could have seen a gain of the
    # size tested with at least this probability (the power in the evidence's calibration section).
    min_external_power: Annotated[float, Field(ge=0.0, le=1.0)] = 0.8
    seed_sd: float | None = None  # sd of the anchor objective across rounds/replicates
    item_sd: float | None = None  # item-sampling sd of the anchor objective (per-item scores, or binomial)
    band: float | None = None  # combined sd: sqrt(seed_sd² + item_sd²)
    threshold: float | None = None  # k · band
    # sd of the anchor's external score, once measured (or, for a continuous metric, assumed from the dev band)
    external_sd: float | None = None
    external_sd_default: float = 0.01  # assumed external sd of a success rate until anchors or an item count say
    anchor_observations: int = 0
    replicate_margin: float = 0.5  # a win within threshold·(1 ± margin) is replicated before promotion
    provenance: list[Provenance] = []

    def external_margin(self) -> float:
        """How far a new external best must clear the old one to count as progress rather than noise."""
        sd = self.external_sd if self.external_sd is not None else self.external_sd_default
        return self.k * sd


LEGACY_OBJECTIVE_MODES = {"maximize_dev": "optimize_dev"}  # old name -> current name, accepted when reading


class SelectionObjective(BaseModel):
    """How checkpoints and candidates are ranked: a weighted mean of per-domain dev scores.

    Its weights are validated when it is built or assigned, so a negative weight is refused where it is proposed
    (by a meta agent) rather than where it is first used (the next round's harness).
    """

    model_config = ConfigDict(validate_assignment=True)

    # "optimize_dev": rank by the weighted dev objective in the metric's direction (policies written before the
    # name was direction-neutral say "maximize_dev", read as "optimize_dev"); "proxy_aware": some dev domains are
    # untrusted and the objective is reweighted.
    mode: Literal["optimize_dev", "proxy_aware"] = "optimize_dev"
    domain_weights: dict[str, float] = {}
    untrusted_domains: list[str] = []
    checkpoint_criterion: Literal["objective", "last"] = "objective"
    provenance: list[Provenance] = []

    @field_validator("mode", mode="before")
    @classmethod
    def _legacy_mode_name(cls, mode: object) -> object:
        return LEGACY_OBJECTIVE_MODES.get(mode, mode) if isinstance(mode, str) else mode

    @field_validator("domain_weights")
    @classmethod
    def _weights_finite_and_non_negative(cls, weights: dict[str, float]) -> dict[str, float]:
        bad = {d: w for d, w in weights.items() if w < 0 or not math.isfinite(w)}
        if bad:
            raise ValueError(f"domain weights must be finite and >= 0: {bad}")
        return weights


class ExternalPlan(BaseModel):
    submit_top: int = 2  # candidates ranked first by the objective are submitted each round
    submit_anchor_every: int = 1  # the anchor is submitted every N rounds to measure external noise


class Policy(BaseModel):
    schema_version: int = POLICY_VERSION
    round: int  # the round this policy governs
    parent_sha256: str | None = None  # hash of the policy it replaced: the chain `audit` checks
    standing_recipe: StandingRecipe = StandingRecipe()
    axes: list[AxisState] = []
    dead_ends: list[DeadEnd] = []
    noise: NoiseRules = NoiseRules()
    objective: SelectionObjective = SelectionObjective()
    external_plan: ExternalPlan = ExternalPlan()
    best_external: float | None = None
    best_external_source: str | None = None
    rounds_without_external_gain: int = 0
    replicate: list[str] = []  # candidate ids whose recipe this round re-runs with a fresh seed before promotion
    # Candidate ids whose knob changes this round runs together, on the standing recipe, as one combination
    # candidate: promising changes measured one at a time, tested as a whole.
    combine: list[str] = []
    asks: list[str] = []  # what workers are asked for this round, in words
    changelog: list[Provenance] = []  # what the meta agent changed to produce this policy

    def active_axes(self) -> list[AxisState]:
        return [a for a in self.axes if a.status == "active"]

    def sha256(self) -> str:
        # A field added after version 1 is hashed only when set, so policies written before it keep their hashes.
        unset = {name for name in HASHED_WHEN_SET if not getattr(self, name)}
        return hashlib.sha256(self.model_dump_json(exclude=unset).encode()).hexdigest()
