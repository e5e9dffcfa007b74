"""The collector: one pass over a round's manifests (and the campaign's history) into the five-section evidence.

Each section is a module of this package (candidates, patterns, calibration, surprises, rationale_audit), with
the noise estimates in `noise`, what they all read in `context`, and the manifest accessors in `reading`.

candidates → patterns → calibration → surprises → rationale_audit, every round, in that order. Gains are paired
against the round's anchor on the same dev items; noise comes from anchors (seed) and the anchor's per-item scores
(item: their sd, or binomial for a success rate); calibration spans every candidate of the campaign that has an
external score.
"""

from collections.abc import Sequence
from pathlib import Path

from evotrain.evidence import stats
from evotrain.evidence.calibration import calibrate
from evotrain.evidence.candidates import summarize_candidate
from evotrain.evidence.context import RoundContext
from evotrain.evidence.noise import estimate_dev_noise, estimate_external_noise
from evotrain.evidence.patterns import axis_patterns
from evotrain.evidence.rationale_audit import audit_rationale
from evotrain.evidence.surprises import find_surprises
from evotrain.records.evidence import Evidence
from evotrain.records.manifest import Manifest
from evotrain.records.policy import Policy
from evotrain.substrate.spec import SubstrateSpec


def collect_evidence(
    *,
    round_no: int,
    policy: Policy,
    spec: SubstrateSpec,
    round_manifests: list[Manifest],
    history: list[Manifest],
    campaign_root: Path,
) -> Evidence:
    """The round's evidence: the five sections, in order. `history` holds every manifest so far, this round's too."""
    history = _with_round(history, round_manifests)
    weights = stats.domain_weights(spec.metric.domains, policy.objective.domain_weights)
    k = policy.noise.k
    noise = estimate_dev_noise(
        history,
        round_no=round_no,
        weights=weights,
        domains=spec.metric.domains,
        k=k,
        metric=spec.metric,
        campaign_root=campaign_root,
    )
    external_sd, external_source = estimate_external_noise(
        history, policy, success_rate=noise.metric_kind != "continuous", dev_band=noise.band
    )
    ctx = RoundContext(
        round_no=round_no,
        policy=policy,
        spec=spec,
        history=history,
        campaign_root=campaign_root,
        weights=weights,
        sign=spec.metric.sign,
        k=k,
        noise=noise,
        external_sd=external_sd,
        external_source=external_source,
    )
    ordered = sorted(round_manifests, key=lambda m: (m.role != "anchor", m.candidate_id))
    anchor = stats.round_anchor(ordered, round_no) or next((m for m in ordered if m.role == "anchor"), None)
    summaries = [summarize_candidate(m, anchor, ctx) for m in ordered]
    patterns = axis_patterns(summaries, ctx)
    calibration = calibrate(ctx)
    surprises = find_surprises(ordered, summaries, anchor, calibration, ctx)
    audit = [audit_rationale(m, ctx) for m in ordered]
    return Evidence(
        round=round_no,
        policy_sha256=policy.sha256(),
        candidates=summaries,
        patterns=patterns,
        calibration=calibration,
        surprises=surprises,
        rationale_audit=audit,
    )


def _with_round(history: Sequence[Manifest], round_manifests: Sequence[Manifest]) -> list[Manifest]:
    """History with this round's manifests (the caller's copies win: they may carry a fresh external score)."""
    current = {m.candidate_id: m for m in round_manifests}
    out = [current.pop(m.candidate_id, m) for m in history]
    return out + list(current.values())
