"""Section 3, calibration: dev against external scores across the campaign, overall and per domain."""

from __future__ import annotations

from collections import defaultdict

from evotrain.evidence import stats
from evotrain.evidence.context import RoundContext
from evotrain.evidence.noise import external_count_reference, external_reference
from evotrain.evidence.reading import selected_eval
from evotrain.records.evidence import Calibration, CalibrationPoint, DomainCalibration, ExternalPower, Interval
from evotrain.records.ids import statistics_seed
from evotrain.trial.evaluation import domain_shares

Pairs = dict[str, list[tuple[float, float]]]
Shares = dict[str, list[float]]


def calibration_points(ctx: RoundContext) -> tuple[list[CalibrationPoint], Pairs, Pairs, Shares]:
    """Every candidate of the campaign with an external score; per dev domain, (dev gain, external gain) pairs; and
    per dev domain, (excess, external residual) pairs: the domain's dev gain beyond the mean dev gain of the other
    domains, and the external gain beyond that same mean. A candidate that moves several knobs at once raises every
    domain; the excess is what it did to this domain alone, and the residual is what the external target gave it
    beyond the common movement (the whole external gain for a change that moved only this domain); with each
    excess pair, the domain's share of the metric (its items' share, or 1/domains for a mean over domains)."""
    points: list[CalibrationPoint] = []
    per_domain: Pairs = defaultdict(list)
    excess: Pairs = defaultdict(list)
    shares: Shares = defaultdict(list)
    anchors = stats.reference_anchors(ctx.history)
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
            gains = {
                d: ctx.sign * (s.score - anchor_domains[d]) for d, s in ckpt.domains.items() if d in anchor_domains
            }
            share = domain_shares(ctx.spec.metric, {d: s.n for d, s in anchor_ckpt.domains.items()})
            for d, gain in gains.items():
                per_domain[d].append((gain, point.external_gain))
                others = [g for o, g in gains.items() if o != d]
                common = sum(others) / len(others) if others else 0.0
                excess[d].append((gain - common, point.external_gain - common))
                shares[d].append(share.get(d, 0.0))
        points.append(point)
    return points, per_domain, excess, shares


def calibrate(ctx: RoundContext) -> Calibration:
    points, per_domain, excess, shares = calibration_points(ctx)
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
            stats.decoupling(
                excess.get(d, []),
                dev_threshold=threshold,
                external_threshold=ctx.external_threshold,
                shares=shares.get(d, []),
            )
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
        metric_kind=ctx.noise.metric_kind,
        metric_kind_how=ctx.noise.metric_kind_how,
        external_power=external_power(ctx),
        domain_noise_bands=ctx.noise.domain_bands,
        per_domain=domains,
        decoupled_domains=[c.domain for c in domains if c.decoupled],
    )


def external_power(ctx: RoundContext) -> ExternalPower:
    """Could the external split have resolved a gain of the size tested? The size tested is the larger of the dev
    promotion threshold (the smallest gain the loop acts on) and the best dev gain among the externally scored
    candidates of the plateau rounds (of this round when there is no plateau); the split's resolution is the
    external sd (anchors, binomial or the policy's default) against the margin k·sd a new best must clear."""
    sd, margin = ctx.external_sd, ctx.external_threshold
    min_power = ctx.policy.noise.min_external_power
    progress = stats.external_progress(ctx.history, ctx.sign, ctx.policy.noise.external_margin())
    rounds = set(progress.plateau_rounds) or {ctx.round_no}
    gains = stats.candidate_gains(ctx.history, ctx.sign)
    tested = [
        (gains[m.candidate_id], m.candidate_id)
        for m in ctx.history
        if m.round in rounds and m.external is not None and m.candidate_id in gains
    ]
    threshold = ctx.noise.threshold
    candidates: list[tuple[float, str]] = []
    if threshold is not None:
        candidates.append((threshold, "the dev promotion threshold"))
    if tested:
        best, who = max(tested)
        candidates.append((best, f"the best dev gain submitted ({who})"))
    effect, source = max(candidates) if candidates else (None, "")
    power = stats.detection_power(effect, sd, margin) if effect is not None else None
    resolves = None if power is None else power >= min_power
    ref = external_count_reference(ctx.history)
    n = ref.external.n if ref is not None and ref.external is not None else None
    smallest = stats.resolvable_gain(sd, margin, min_power)
    split = f"external sd {sd:.4f} (from {ctx.external_source}" + (f"; {n} external items" if n else "") + ")"
    where = f"rounds {', '.join(map(str, progress.plateau_rounds))}" if progress.plateau_rounds else "this round"
    if power is None:
        note = (
            f"{split}: a new best must clear {margin:.4f}; no gain size to test yet (no dev threshold, no submitted "
            f"candidate), so the power is unknown"
        )
    else:
        assert effect is not None
        verdict = (
            "a flat external target there is evidence that nothing tested transferred"
            if resolves
            else "a flat external target there cannot tell a real gain of that size from none"
        )
        note = (
            f"{split}: a new best must clear {margin:.4f}; a true gain of {effect:+.4f} ({source}, {where}) shows "
            f"with power {power:.2f} ({'≥' if resolves else '<'} {min_power:.2f}); the split resolves gains of "
            f"{smallest:+.4f} or more; {verdict}"
        )
    return ExternalPower(
        sd=sd,
        sd_source=ctx.external_source,
        n=n,
        margin=margin,
        effect=effect,
        effect_source=source,
        power=power,
        min_power=min_power,
        resolvable_gain=smallest,
        resolves=resolves,
        plateau_rounds=progress.plateau_rounds,
        note=note,
    )
