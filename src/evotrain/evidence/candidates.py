"""Section 1, candidates: each candidate's gain over the round's anchor, paired on the same dev items."""

from __future__ import annotations

from evotrain.evidence import stats
from evotrain.evidence.context import RoundContext
from evotrain.evidence.noise import external_reference
from evotrain.evidence.reading import candidate_status, domain_counts, domain_scores, load_eval_report, selected_eval
from evotrain.records.evidence import CandidateSummary, Interval, Surprise
from evotrain.records.ids import statistics_seed
from evotrain.records.manifest import Manifest


def summarize_candidate(m: Manifest, anchor: Manifest | None, ctx: RoundContext) -> CandidateSummary:
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


def _gain_estimate(m: Manifest, anchor: Manifest, ctx: RoundContext) -> stats.PairedGain | None:
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
    if ctx.noise.metric_kind == "continuous":
        return None  # counts carry no spread for a continuous metric: no interval without item scores
    return stats.unpaired_gain(domain_counts(m), domain_counts(anchor), ctx.weights, sign=ctx.sign)


def _recipe_files(m: Manifest, ctx: RoundContext) -> dict[str, str] | None:
    """The candidate's editable files as a standing recipe would carry them, as its manifest recorded them (None if
    they cannot be carried, or the manifest predates the record)."""
    if m.recipe_files_problem is not None:
        ctx.surprises.append(
            Surprise(kind="unpromotable_recipe", candidate_id=m.candidate_id, description=m.recipe_files_problem)
        )
    return None if m.recipe_files is None else dict(m.recipe_files)
