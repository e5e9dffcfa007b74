"""The round evidence: exactly five sections, in this order, every round. Only their content changes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from evotrain.records.manifest import CandidateRole

EVIDENCE_VERSION = 1
SECTIONS = ("candidates", "patterns", "calibration", "surprises", "rationale_audit")


class Interval(BaseModel):
    low: float
    high: float


class CandidateSummary(BaseModel):
    candidate_id: str
    role: CandidateRole
    axis: str | None
    axis_category: str | None
    status: str  # "ok" or the failure class
    changes: list[str] = []  # KnobChange.describe() lines
    dev_overall: float | None = None
    dev_domains: dict[str, float] = {}
    objective: float | None = None
    selected_checkpoint: str | None = None
    external: float | None = None
    gain: float | None = None  # objective gain over this round's anchor (signed so + is better)
    gain_interval: Interval | None = None  # paired-bootstrap 95% interval of the gain
    domain_gains: dict[str, float] = {}
    above_noise: bool = False  # gain > the promotion threshold (k from the policy, band from all anchors so far)
    wall_s: float = 0.0
    replicate_of: str | None = None
    gain_method: str = ""  # how the interval was computed (paired bootstrap over N items, or unpaired binomial)
    domain_gain_intervals: dict[str, Interval] = {}
    external_gain: float | None = None  # external score minus the reference anchor's external score
    # Full text of the candidate's editable files (relpath -> content) for candidates that may be promoted, so a
    # meta agent can write the standing recipe from the evidence alone.
    recipe_files: dict[str, str] | None = None


class AxisPattern(BaseModel):
    axis: str
    category: str
    candidates: list[str]
    mean_gain: float | None
    best_gain: float | None
    above_noise: int  # how many of its candidates cleared the threshold
    external_gain: float | None = None  # best external gain over the anchor's external score
    verdict: Literal["promising", "flat", "harmful", "failed", "untested"]


class DomainCalibration(BaseModel):
    domain: str
    points: int  # candidates with both a dev gain on this domain and an external gain
    spearman: float | None = None
    slope: float | None = None
    # candidates whose dev gain on this domain, beyond the other domains' mean gain, cleared the domain noise band
    # (a rise, or a fall: a probe that lowered the domain)
    dev_gain_above_noise: int = 0
    # of those, how many had an external gain, beyond that same mean, that did not follow past the external band
    external_flat_among_them: int = 0
    decoupled: bool = False


class CalibrationPoint(BaseModel):
    candidate_id: str
    round: int
    dev: float
    external: float
    gap: float  # dev - external
    dev_gain: float | None = None
    external_gain: float | None = None


class ExternalPower(BaseModel):
    """Whether the external split could have seen a gain of the size the candidates tested: what the rotation rule
    needs before it reads a flat external target as "nothing worked"."""

    sd: float  # sd of one external score (the calibration's external noise band)
    sd_source: str  # as Calibration.external_noise_source
    n: int | None = None  # external items, when the target reports them
    margin: float  # how far a new external best must clear the old one to count as progress (k · sd)
    effect: float | None = None  # the gain size tested: max(dev threshold, best dev gain submitted in the plateau)
    effect_source: str = ""  # in words, where `effect` came from
    power: float | None = None  # P(observed external gain > margin | true gain = effect); None when unknown
    min_power: float = 0.8  # the policy's noise.min_external_power
    resolvable_gain: float  # the smallest true gain seen with probability min_power
    resolves: bool | None = None  # power >= min_power; None when unknown (the rotation rule then acts as before)
    plateau_rounds: list[int] = []  # the measured rounds without external improvement, as the rules count them
    note: str = ""


class Calibration(BaseModel):
    """Dev against the external target across every candidate of the campaign that has an external score."""

    points: list[CalibrationPoint] = []
    spearman: float | None = None
    spearman_interval: Interval | None = None
    slope: float | None = None
    mean_gap: float | None = None
    dev_noise_band: float | None = None  # the anchor noise band on the objective
    external_noise_band: float | None = None
    seed_sd: float | None = None  # pooled sd of anchor/replicate objectives of one recipe across seeds
    item_sd: float | None = None  # item-sampling sd of the anchor's objective (per-item sd, or binomial)
    k: float = 2.0  # the policy's multiplier: threshold = k · band
    dev_threshold: float | None = None  # the promotion threshold k · dev_noise_band
    external_threshold: float | None = None  # k · external_noise_band
    noise_note: str = ""  # where each noise figure came from, in words
    external_noise_source: str = ""  # "anchors", "binomial", "dev band (assumed)" or "policy default"
    metric_kind: Literal["success_rate", "continuous"] | None = None  # what one dev item's score is
    metric_kind_how: str = ""  # declared in evotrain.toml, or inferred from what
    external_power: ExternalPower | None = None
    domain_noise_bands: dict[str, float] = {}  # per-domain band on the dev domain score
    per_domain: list[DomainCalibration] = []
    decoupled_domains: list[str] = []


class Surprise(BaseModel):
    kind: str
    candidate_id: str | None = None
    description: str


class RationaleAuditEntry(BaseModel):
    candidate_id: str
    stayed_on_axis: bool
    within_editable_paths: bool
    policy_compliant: bool  # no change fell in the dead-end registry; the standing recipe was inherited
    notes: list[str] = []


class Evidence(BaseModel):
    schema_version: int = EVIDENCE_VERSION
    round: int
    policy_sha256: str
    candidates: list[CandidateSummary]
    patterns: list[AxisPattern]
    calibration: Calibration
    surprises: list[Surprise]
    rationale_audit: list[RationaleAuditEntry]
