"""The collector: one pass over a round's manifests (and the campaign's history) into the five-section evidence.

candidates → patterns → calibration → surprises → rationale_audit, every round, in that order. Gains are paired
against the round's anchor on the same dev items; noise comes from anchors (seed) and item counts (binomial);
calibration spans every candidate of the campaign that has an external score.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from evotrain.errors import EvotrainError
from evotrain.evidence import stats
from evotrain.records.evaluation import EvalReport, read_eval_report
from evotrain.records.evidence import (
    AxisPattern,
    Calibration,
    CalibrationPoint,
    CandidateSummary,
    DomainCalibration,
    Evidence,
    Interval,
    RationaleAuditEntry,
    Surprise,
)
from evotrain.records.ids import statistics_seed
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import CheckpointEval, Manifest
from evotrain.records.policy import Policy
from evotrain.sandbox.diff import editable_files_changed
from evotrain.substrate.spec import SubstrateSpec

# Failures that say something about the recipe (as opposed to the worker, or the cluster).
RECIPE_FAILURES = frozenset(
    {"step_failed", "timeout", "killed", "oom", "missing_output", "bad_output", "no_checkpoints"}
)
INFRA_FAILURES = frozenset({"preempted", "node_failure", "cancelled"})
FAR_ABOVE = 2.0  # "far above noise": a dev gain at least this many promotion thresholds high


# ---- evaluation reports --------------------------------------------------------------------------------------
def load_eval_report(campaign_root: Path, relpath: str) -> tuple[EvalReport | None, str | None]:
    """The report, or None and the reason it could not be read (the collector falls back to unpaired stats)."""
    path = campaign_root / relpath
    try:
        return read_eval_report(path), None
    except FileNotFoundError:
        return None, f"evaluation report {relpath} is missing"
    except (ValidationError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"evaluation report {relpath} is not a valid report ({type(exc).__name__})"


def selected_eval(m: Manifest) -> CheckpointEval | None:
    if m.selected is None:
        return None
    for ckpt in m.checkpoints:
        if ckpt.checkpoint == m.selected.checkpoint:
            return ckpt
    return None


def domain_scores(m: Manifest) -> dict[str, float]:
    ckpt = selected_eval(m)
    return {d: s.score for d, s in ckpt.domains.items()} if ckpt else {}


def domain_counts(m: Manifest) -> dict[str, tuple[float, int]]:
    ckpt = selected_eval(m)
    return {d: (s.score, s.n) for d, s in ckpt.domains.items()} if ckpt else {}


def candidate_status(m: Manifest) -> str:
    if m.failure is not None:
        return m.failure.failure_class
    return "ok" if m.selected is not None else "no_selection"


# ---- noise ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DevNoise:
    seed_sd: float | None
    item_sd: float | None
    band: float | None
    threshold: float | None
    observations: int
    note: str
    domain_bands: dict[str, float] = field(default_factory=dict)

    def domain_threshold(self, domain: str, k: float) -> float | None:
        band = self.domain_bands.get(domain)
        return k * band if band is not None else None


def replication_groups(history: Sequence[Manifest]) -> list[list[Manifest]]:
    """Runs of one recipe under different seeds: anchors, replicates and the candidates they replicate, grouped by
    their recipe diff against the substrate (identical diff = identical recipe)."""
    replicated = {m.replicate_of for m in history if m.role == "replicate" and m.replicate_of}
    groups: dict[str, list[Manifest]] = defaultdict(list)
    for m in history:
        if m.ok and (m.role in ("anchor", "replicate") or m.candidate_id in replicated):
            groups[m.recipe_diff].append(m)
    return list(groups.values())


def latest_anchor(history: Sequence[Manifest], up_to_round: int) -> Manifest | None:
    anchors = [m for m in history if m.role == "anchor" and m.ok and m.round <= up_to_round]
    return max(anchors, key=lambda m: m.round) if anchors else None


def estimate_dev_noise(
    history: Sequence[Manifest], *, round_no: int, weights: Mapping[str, float], domains: Sequence[str], k: float
) -> DevNoise:
    """Seed noise pooled over runs of one recipe (objective re-scored under the current weights, so a reweighting
    does not masquerade as noise) plus the binomial item noise of the latest anchor."""
    groups = replication_groups(history)
    objective_groups = [
        [v for m in g if (v := stats.weighted_objective(domain_scores(m), weights)) is not None] for g in groups
    ]
    seed_sd, dof = stats.pooled_sd(objective_groups)
    anchor = latest_anchor(history, round_no)
    item_sd = stats.objective_item_sd(domain_counts(anchor), weights) if anchor else None
    band = stats.combined_band(seed_sd, item_sd)
    runs = sum(len(g) for g in objective_groups if len(g) >= 2)
    recipes = sum(1 for g in objective_groups if len(g) >= 2)
    if seed_sd is None:
        seed_note = "seed noise not yet measured (needs two runs of one recipe: unchanged anchors, or a replicate)"
    else:
        seed_note = f"seed sd {seed_sd:.4f} pooled over {runs} runs of {recipes} recipe(s) ({dof} degrees of freedom)"
    item_note = (
        f"item sd {item_sd:.4f} (binomial, from {anchor.candidate_id}'s dev item counts)"
        if anchor is not None and item_sd is not None
        else "item noise unknown (no anchor has run)"
    )
    domain_bands: dict[str, float] = {}
    for d in domains:
        d_seed, _ = stats.pooled_sd([[domain_scores(m)[d] for m in g if d in domain_scores(m)] for g in groups])
        d_item = None
        if anchor is not None and d in domain_counts(anchor):
            p, n = domain_counts(anchor)[d]
            d_item = stats.binomial_sd(p, n) if n > 0 else None
        d_band = stats.combined_band(d_seed, d_item)
        if d_band is not None:
            domain_bands[d] = d_band
    return DevNoise(
        seed_sd=seed_sd,
        item_sd=item_sd,
        band=band,
        threshold=k * band if band is not None else None,
        observations=len([m for m in history if m.role == "anchor" and m.ok]),
        note=f"{seed_note}; {item_note}; band = sqrt(seed² + item²); threshold = k·band with k = {k:g}",
        domain_bands=domain_bands,
    )


def estimate_external_noise(
    history: Sequence[Manifest], policy: Policy
) -> tuple[float, Literal["anchors", "binomial", "policy default"]]:
    """External sd: from anchors' external scores (pooled per recipe) when two exist, else the binomial sd of the
    external item count, else the policy's assumed default."""
    anchor_groups: dict[str, list[float]] = defaultdict(list)
    for m in history:
        if m.role == "anchor" and m.external is not None:
            anchor_groups[m.recipe_diff].append(m.external.score)
    sd, _ = stats.pooled_sd(anchor_groups.values())
    if sd is not None and sd > 0:  # identical anchor scores say too little to set a band of zero
        return sd, "anchors"
    with_n = [m for m in history if m.external is not None and m.external.n]
    if with_n:
        ref = max(with_n, key=lambda m: (m.role == "anchor", m.round))
        assert ref.external is not None and ref.external.n is not None
        if 0.0 <= ref.external.score <= 1.0:
            return stats.binomial_sd(ref.external.score, ref.external.n), "binomial"
    return policy.noise.external_sd_default, "policy default"


def external_reference(history: Sequence[Manifest], round_no: int) -> Manifest | None:
    """The anchor whose external score a round's candidates are compared with: this round's, else the latest
    earlier anchor that was submitted."""
    submitted = [m for m in history if m.role == "anchor" and m.external is not None and m.round <= round_no]
    same = [m for m in submitted if m.round == round_no]
    if same:
        return same[0]
    return max(submitted, key=lambda m: m.round) if submitted else None


# ---- diffs (for the rationale audit) ------------------------------------------------------------------------
_DIFF_HEADER = re.compile(r"^diff --git a/(.+?) b/", re.MULTILINE)


def split_diff(diff: str) -> dict[str, str]:
    """A recipe diff split per file (relpath -> that file's section)."""
    starts = [(m.start(), m.group(1)) for m in _DIFF_HEADER.finditer(diff)]
    out = {}
    for i, (start, relpath) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(diff)
        out[relpath] = diff[start:end]
    return out


def added_lines(section: str) -> list[str]:
    return [line[1:].strip() for line in section.splitlines() if line.startswith("+") and not line.startswith("+++")]


# ---- the collector -------------------------------------------------------------------------------------------
@dataclass
class _Round:
    round_no: int
    policy: Policy
    spec: SubstrateSpec
    history: Sequence[Manifest]
    campaign_root: Path
    weights: dict[str, float]
    sign: float
    k: float
    noise: DevNoise
    external_sd: float
    external_source: str
    surprises: list[Surprise] = field(default_factory=list)

    @property
    def external_threshold(self) -> float:
        return self.k * self.external_sd


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
    noise = estimate_dev_noise(history, round_no=round_no, weights=weights, domains=spec.metric.domains, k=k)
    external_sd, external_source = estimate_external_noise(history, policy)
    ctx = _Round(
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
    anchor = next((m for m in ordered if m.role == "anchor"), None)
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


# ---- section 1: candidates -----------------------------------------------------------------------------------
def summarize_candidate(m: Manifest, anchor: Manifest | None, ctx: _Round) -> CandidateSummary:
    ckpt = selected_eval(m)
    summary = CandidateSummary(
        candidate_id=m.candidate_id,
        role=m.role,
        axis=m.axis,
        axis_category=m.axis_category,
        status=candidate_status(m),
        changes=[c.describe() for c in m.changes],
        dev_overall=ckpt.overall if ckpt else None,
        dev_domains=domain_scores(m),
        objective=m.selected.objective if m.selected else None,
        selected_checkpoint=m.selected.checkpoint if m.selected else None,
        external=m.external.score if m.external else None,
        wall_s=m.cost.wall_s,
        replicate_of=m.replicate_of,
    )
    reference = external_reference(ctx.history, ctx.round_no)
    if m.external is not None and reference is not None and reference.external is not None and m.role != "anchor":
        summary.external_gain = ctx.sign * (m.external.score - reference.external.score)
    if m.role == "anchor" or not m.ok or anchor is None or not anchor.ok:
        return summary
    assert m.selected is not None and anchor.selected is not None
    summary.gain = ctx.sign * (m.selected.objective - anchor.selected.objective)
    summary.domain_gains = {
        d: ctx.sign * (s - domain_scores(anchor)[d]) for d, s in domain_scores(m).items() if d in domain_scores(anchor)
    }
    estimate = _gain_estimate(m, anchor, ctx)
    if estimate is not None:
        summary.gain_interval = Interval(low=estimate.overall.low, high=estimate.overall.high)
        summary.gain_method = estimate.method
        summary.domain_gain_intervals = {d: Interval(low=e.low, high=e.high) for d, e in estimate.domains.items()}
    threshold = ctx.noise.threshold
    summary.above_noise = threshold is not None and summary.gain > threshold
    if summary.gain > 0:
        summary.recipe_files = _recipe_files(m, ctx)
    return summary


def _gain_estimate(m: Manifest, anchor: Manifest, ctx: _Round) -> stats.PairedGain | None:
    cand_ckpt, anchor_ckpt = selected_eval(m), selected_eval(anchor)
    if cand_ckpt is None or anchor_ckpt is None:
        return None
    reports = []
    for who, ckpt in ((m, cand_ckpt), (anchor, anchor_ckpt)):
        report, problem = load_eval_report(ctx.campaign_root, ckpt.report)
        if problem is not None:
            ctx.surprises.append(Surprise(kind="missing_report", candidate_id=who.candidate_id, description=problem))
        reports.append(report)
    cand_report, anchor_report = reports
    if cand_report is not None and anchor_report is not None and cand_report.items and anchor_report.items:
        paired = stats.paired_bootstrap_gain(
            cand_report.item_scores(),
            anchor_report.item_scores(),
            ctx.weights,
            sign=ctx.sign,
            seed=statistics_seed(ctx.round_no, m.candidate_id),
        )
        if paired is not None:
            return paired
    return stats.unpaired_gain(domain_counts(m), domain_counts(anchor), ctx.weights, sign=ctx.sign)


def _recipe_files(m: Manifest, ctx: _Round) -> dict[str, str] | None:
    """The candidate's editable files as a standing recipe would carry them (None if they cannot be read)."""
    paths = CampaignPaths(ctx.campaign_root)
    round_name, _, name = m.candidate_id.partition("/")
    sandbox = paths.round(m.round).candidate(name or round_name).sandbox
    if not sandbox.is_dir():
        return None
    try:
        return editable_files_changed(paths.substrate, sandbox, ctx.spec)
    except EvotrainError as exc:
        ctx.surprises.append(Surprise(kind="unpromotable_recipe", candidate_id=m.candidate_id, description=exc.message))
        return None


# ---- section 2: patterns -------------------------------------------------------------------------------------
Verdict = Literal["promising", "flat", "harmful", "failed", "untested"]


def axis_verdict(gains: Sequence[float], failed: int, threshold: float | None) -> Verdict:
    """promising: a candidate cleared the threshold; harmful: every candidate lost more than it; failed: none ran."""
    if not gains:
        return "failed" if failed else "untested"
    if threshold is not None and max(gains) > threshold:
        return "promising"
    if threshold is not None and max(gains) < -threshold:
        return "harmful"
    return "flat"


def axis_patterns(summaries: Sequence[CandidateSummary], ctx: _Round) -> list[AxisPattern]:
    by_axis: dict[str, list[CandidateSummary]] = defaultdict(list)
    for s in summaries:
        if s.role != "anchor" and s.axis:
            by_axis[s.axis].append(s)
    active = [a.name for a in ctx.policy.active_axes()]
    out = []
    for axis in sorted(set(by_axis) | set(active)):
        members = by_axis.get(axis, [])
        gains = [s.gain for s in members if s.gain is not None]
        failed = sum(1 for s in members if s.status not in ("ok",) and s.status not in INFRA_FAILURES)
        ext = [s.external_gain for s in members if s.external_gain is not None]
        category = (
            ctx.spec.search.axes[axis].category if axis in ctx.spec.search.axes else (members[0].axis_category or "")
        )
        out.append(
            AxisPattern(
                axis=axis,
                category=category,
                candidates=[s.candidate_id for s in members],
                mean_gain=sum(gains) / len(gains) if gains else None,
                best_gain=max(gains) if gains else None,
                above_noise=sum(1 for s in members if s.above_noise),
                external_gain=max(ext) if ext else None,
                verdict=axis_verdict(gains, failed, ctx.noise.threshold) if members else "untested",
            )
        )
    return out


def round_axis_verdicts(
    history: Sequence[Manifest], sign: float, threshold: float | None
) -> dict[tuple[int, str], Verdict]:
    """The verdict of every (round, axis) the campaign ran, judged with one threshold (for retiring axes)."""
    gains = stats.candidate_gains(history, sign)
    broken = stats.failed_anchor_rounds(history)
    members: dict[tuple[int, str], list[Manifest]] = defaultdict(list)
    for m in history:
        if m.role != "anchor" and m.axis and m.round not in broken:
            members[(m.round, m.axis)].append(m)
    out: dict[tuple[int, str], Verdict] = {}
    for key, ms in members.items():
        g = [gains[m.candidate_id] for m in ms if m.candidate_id in gains]
        failed = sum(1 for m in ms if m.failure is not None and m.failure.failure_class not in INFRA_FAILURES)
        out[key] = axis_verdict(g, failed, threshold)
    return out


# ---- section 3: calibration ----------------------------------------------------------------------------------
def calibration_points(ctx: _Round) -> tuple[list[CalibrationPoint], dict[str, list[tuple[float, float]]]]:
    """Every candidate of the campaign with an external score; and per dev domain, (dev gain, external gain) pairs."""
    points: list[CalibrationPoint] = []
    per_domain: dict[str, list[tuple[float, float]]] = defaultdict(list)
    anchors = {m.round: m for m in ctx.history if m.role == "anchor" and m.ok}
    for m in sorted(ctx.history, key=lambda m: (m.round, m.candidate_id)):
        ckpt = selected_eval(m)
        if m.external is None or ckpt is None:
            continue
        point = CalibrationPoint(
            candidate_id=m.candidate_id,
            round=m.round,
            dev=ckpt.overall,
            external=m.external.score,
            gap=ckpt.overall - m.external.score,
        )
        anchor = anchors.get(m.round)
        reference = external_reference(ctx.history, m.round)
        anchor_ckpt = selected_eval(anchor) if anchor else None
        if m.role != "anchor" and anchor_ckpt is not None and reference is not None and reference.external is not None:
            point.dev_gain = ctx.sign * (ckpt.overall - anchor_ckpt.overall)
            point.external_gain = ctx.sign * (m.external.score - reference.external.score)
            anchor_domains = {d: s.score for d, s in anchor_ckpt.domains.items()}
            for d, s in ckpt.domains.items():
                if d in anchor_domains:
                    per_domain[d].append((ctx.sign * (s.score - anchor_domains[d]), point.external_gain))
        points.append(point)
    return points, per_domain


def calibrate(ctx: _Round) -> Calibration:
    points, per_domain = calibration_points(ctx)
    paired = [(p.dev_gain, p.external_gain) for p in points if p.dev_gain is not None and p.external_gain is not None]
    xs = [x for x, _ in paired]
    ys = [y for _, y in paired]
    rho, interval = stats.spearman_with_interval(xs, ys, seed=statistics_seed("calibration", ctx.round_no))
    domains = []
    for d in ctx.spec.metric.domains:
        pairs = per_domain.get(d, [])
        d_rho, _ = stats.spearman_with_interval([a for a, _ in pairs], [b for _, b in pairs], seed=0, n_boot=0)
        threshold = ctx.noise.domain_threshold(d, ctx.k)
        count = (
            stats.decoupling(pairs, dev_threshold=threshold, external_threshold=ctx.external_threshold)
            if threshold is not None
            else stats.DecouplingCount(0, 0, False)
        )
        domains.append(
            DomainCalibration(
                domain=d,
                points=len(pairs),
                spearman=d_rho,
                slope=stats.robust_slope([a for a, _ in pairs], [b for _, b in pairs]),
                dev_gain_above_noise=count.dev_above,
                external_flat_among_them=count.external_flat,
                decoupled=count.decoupled,
            )
        )
    return Calibration(
        points=points,
        spearman=rho,
        spearman_interval=Interval(low=interval[0], high=interval[1]) if interval else None,
        slope=stats.robust_slope(xs, ys),
        mean_gap=sum(p.gap for p in points) / len(points) if points else None,
        dev_noise_band=ctx.noise.band,
        external_noise_band=ctx.external_sd,
        seed_sd=ctx.noise.seed_sd,
        item_sd=ctx.noise.item_sd,
        k=ctx.k,
        dev_threshold=ctx.noise.threshold,
        external_threshold=ctx.external_threshold,
        noise_note=ctx.noise.note,
        external_noise_source=ctx.external_source,
        domain_noise_bands=ctx.noise.domain_bands,
        per_domain=domains,
        decoupled_domains=[c.domain for c in domains if c.decoupled],
    )


# ---- section 4: surprises ------------------------------------------------------------------------------------
def find_surprises(
    manifests: Sequence[Manifest],
    summaries: Sequence[CandidateSummary],
    anchor: Manifest | None,
    calibration: Calibration,
    ctx: _Round,
) -> list[Surprise]:
    out = list(ctx.surprises)
    out += _anchor_surprises(anchor)
    out += _transfer_surprises(summaries, ctx)
    out += _dead_end_surprises(manifests, ctx)
    out += _reversed_effect_surprises(manifests, ctx)
    out += _gap_shift_surprises(calibration, ctx)
    for domain in calibration.decoupled_domains:
        if domain not in ctx.policy.objective.untrusted_domains:
            cal = next(c for c in calibration.per_domain if c.domain == domain)
            out.append(
                Surprise(
                    kind="decoupled_proxy",
                    description=(
                        f"dev domain {domain!r} rose above its noise band in {cal.dev_gain_above_noise} candidate(s) "
                        f"while the external gain of {cal.external_flat_among_them} of them stayed inside the external "
                        "band: its dev gains no longer predict the external target"
                    ),
                )
            )
    return out


def _anchor_surprises(anchor: Manifest | None) -> list[Surprise]:
    if anchor is None:
        return [Surprise(kind="anchor_missing", description="the round has no anchor: no gain can be measured")]
    if not anchor.ok:
        why = anchor.failure.message if anchor.failure else "no checkpoint was selected"
        return [
            Surprise(
                kind="anchor_failed",
                candidate_id=anchor.candidate_id,
                description=f"the anchor failed ({candidate_status(anchor)}: {why}); this round's gains are unmeasured",
            )
        ]
    return []


def _transfer_surprises(summaries: Sequence[CandidateSummary], ctx: _Round) -> list[Surprise]:
    out: list[Surprise] = []
    threshold = ctx.noise.threshold
    if threshold is None:
        return out
    for s in summaries:
        if s.gain is None or s.external_gain is None:
            continue
        if s.gain > FAR_ABOVE * threshold and s.external_gain <= 0:
            out.append(
                Surprise(
                    kind="dev_gain_without_external",
                    candidate_id=s.candidate_id,
                    description=(
                        f"dev objective gain {s.gain:+.4f} is over {FAR_ABOVE:g}× the threshold {threshold:.4f}, "
                        f"yet the external gain is {s.external_gain:+.4f}"
                    ),
                )
            )
        elif s.gain < -threshold and s.external_gain > ctx.external_threshold:
            out.append(
                Surprise(
                    kind="external_gain_despite_dev_loss",
                    candidate_id=s.candidate_id,
                    description=(
                        f"dev objective fell {s.gain:+.4f} (below −threshold) while the external score rose "
                        f"{s.external_gain:+.4f} (above the external band)"
                    ),
                )
            )
    return out


def _dead_end_surprises(manifests: Sequence[Manifest], ctx: _Round) -> list[Surprise]:
    out = []
    for m in manifests:
        for change in m.changes:
            for dead in ctx.policy.dead_ends:
                if dead.blocks(change.axis, change.knob, change.direction, change.new):
                    out.append(
                        Surprise(
                            kind="dead_end_repeated",
                            candidate_id=m.candidate_id,
                            description=(
                                f"{change.describe()} repeats dead end (round {dead.round}): {dead.description}"
                            ),
                        )
                    )
                    break
    return out


def _reversed_effect_surprises(manifests: Sequence[Manifest], ctx: _Round) -> list[Surprise]:
    """A knob move whose clear effect this round is opposite to the clear effect it had in earlier rounds."""
    threshold = ctx.noise.threshold
    if threshold is None:
        return []
    gains = stats.candidate_gains(ctx.history, ctx.sign)
    prior: dict[tuple[str, str, str], list[tuple[str, float]]] = defaultdict(list)
    for m in ctx.history:
        if m.round < ctx.round_no and m.candidate_id in gains and abs(gains[m.candidate_id]) > threshold:
            for c in m.changes:
                prior[(c.axis, c.knob, c.direction)].append((m.candidate_id, gains[m.candidate_id]))
    out = []
    for m in manifests:
        g = gains.get(m.candidate_id)
        if g is None or abs(g) <= threshold:
            continue
        for c in m.changes:
            opposite = [(cid, pg) for cid, pg in prior[(c.axis, c.knob, c.direction)] if pg * g < 0]
            if opposite:
                cid, pg = opposite[-1]
                out.append(
                    Surprise(
                        kind="reversed_effect",
                        candidate_id=m.candidate_id,
                        description=(
                            f"{c.axis}.{c.knob} {c.direction} gave {g:+.4f} here but {pg:+.4f} in {cid}: "
                            "its effect depends on the rest of the recipe"
                        ),
                    )
                )
    return out


def _gap_shift_surprises(calibration: Calibration, ctx: _Round) -> list[Surprise]:
    now = [p.gap for p in calibration.points if p.round == ctx.round_no]
    before = [p.gap for p in calibration.points if p.round < ctx.round_no]
    band = stats.combined_band(ctx.noise.band, ctx.external_sd)
    if not now or not before or band is None:
        return []
    shift = sum(now) / len(now) - sum(before) / len(before)
    if abs(shift) <= ctx.k * band:
        return []
    return [
        Surprise(
            kind="gap_shift",
            description=(
                f"the dev−external gap moved {shift:+.4f} this round (mean {sum(now) / len(now):+.4f} vs "
                f"{sum(before) / len(before):+.4f} before), beyond k·band = {ctx.k * band:.4f}"
            ),
        )
    ]


# ---- section 5: rationale audit ------------------------------------------------------------------------------
def audit_rationale(m: Manifest, ctx: _Round) -> RationaleAuditEntry:
    """Stayed on axis, within editable paths, complied with the policy — and why not, in notes.

    On axis: every recorded change names the candidate's axis, and every file the worker edited (beyond what it
    inherited) either holds one of the axis's knobs or holds no knob at all (free-form code such as a data
    pipeline, which any axis may touch; noted). A file holding only other axes' knobs is off axis. Edits inside a
    file shared by several axes are judged by the recorded changes alone.
    """
    notes: list[str] = []
    inherited = _inherited_diff(m, ctx)
    edited = _worker_edited_files(m, inherited)
    on_axis = _check_axis(m, edited, ctx.spec, notes)
    within = _check_paths(m, notes)
    compliant = _check_policy(m, inherited, ctx, notes)
    return RationaleAuditEntry(
        candidate_id=m.candidate_id,
        stayed_on_axis=on_axis,
        within_editable_paths=within,
        policy_compliant=compliant,
        notes=notes,
    )


def _inherited_diff(m: Manifest, ctx: _Round) -> dict[str, str]:
    """What the candidate's fork started from: the standing recipe, or for a replicate its source's recipe."""
    if m.role == "replicate" and m.replicate_of:
        source = next((h for h in ctx.history if h.candidate_id == m.replicate_of), None)
        if source is not None:
            return split_diff(source.recipe_diff)
    return split_diff(ctx.policy.standing_recipe.diff)


def _worker_edited_files(m: Manifest, inherited: Mapping[str, str]) -> list[str]:
    sections = split_diff(m.recipe_diff)
    edited = {f for f in m.edited_files if sections.get(f) != inherited.get(f)}
    edited |= {f for f in inherited if f not in sections}  # an inherited file put back to the substrate's content
    return sorted(edited)


def _knob_files(spec: SubstrateSpec) -> dict[str, set[str]]:
    files: dict[str, set[str]] = defaultdict(set)
    for axis_name, axis in spec.search.axes.items():
        for knob in axis.knobs.values():
            files[knob.file].add(axis_name)
    return files


def _check_axis(m: Manifest, edited: Sequence[str], spec: SubstrateSpec, notes: list[str]) -> bool:
    ok = True
    if m.role in ("anchor", "replicate"):
        if m.changes or edited:
            notes.append(f"the {m.role} must run its recipe unchanged but edited {', '.join(edited) or 'knobs'}")
            ok = False
        return ok
    for c in m.changes:
        if c.axis != m.axis:
            notes.append(f"change {c.describe()} is on axis {c.axis!r}, not the assigned {m.axis!r}")
            ok = False
    return _check_axis_files(m, edited, spec, notes) and ok


def _check_axis_files(m: Manifest, edited: Sequence[str], spec: SubstrateSpec, notes: list[str]) -> bool:
    ok = True
    knob_files = _knob_files(spec)
    for f in edited:
        owners = knob_files.get(f)
        if owners is None:
            notes.append(f"edited free-form file {f} (holds no declared knob)")
        elif m.axis not in owners:
            notes.append(f"edited {f}, which holds knobs of {', '.join(sorted(owners))} only")
            ok = False
    return ok


def _check_paths(m: Manifest, notes: list[str]) -> bool:
    for v in m.violations:
        notes.append(f"violation: {v.kind} {v.path}" + (f" ({v.detail})" if v.detail else ""))
    return not m.violations


def _check_policy(m: Manifest, inherited: Mapping[str, str], ctx: _Round, notes: list[str]) -> bool:
    ok = True
    for c in m.changes:
        dead = next((d for d in ctx.policy.dead_ends if d.blocks(c.axis, c.knob, c.direction, c.new)), None)
        if dead is not None:
            notes.append(f"{c.describe()} is in the dead-end registry (round {dead.round}: {dead.description})")
            ok = False
    reverted = _reverted_lines(m, inherited)
    if reverted:
        notes.append(
            f"reverts {len(reverted)} inherited recipe line(s) without a recorded change: " + "; ".join(reverted[:5])
        )
        ok = False
    return ok


def _reverted_lines(m: Manifest, inherited: Mapping[str, str]) -> list[str]:
    """Inherited recipe lines missing from the candidate's diff that no recorded knob change explains."""
    sections = split_diff(m.recipe_diff)
    explained = _changed_key_names(m)
    out = []
    for relpath, section in inherited.items():
        present = set(added_lines(sections.get(relpath, "")))
        for line in added_lines(section):
            if not line or line in present:
                continue
            name = re.split(r"[\s=:]", line, maxsplit=1)[0].strip("\"'[]")
            if name not in explained:
                out.append(f"{relpath}: {line}")
    return out


def _changed_key_names(m: Manifest) -> set[str]:
    names: set[str] = set()
    for c in m.changes:
        names.add(c.key.rsplit(".", 1)[-1])
        names.add(c.key)
        for value in (c.old, c.new):
            if isinstance(value, Mapping):
                names.update(str(k) for k in value)
    return names
