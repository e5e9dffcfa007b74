"""Section 4, surprises: what the round did that the policy did not expect."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from evotrain.evidence import stats
from evotrain.evidence.context import RoundContext
from evotrain.evidence.reading import FAR_ABOVE, candidate_status
from evotrain.records.evidence import Calibration, CandidateSummary, Surprise
from evotrain.records.manifest import Manifest


def find_surprises(
    manifests: Sequence[Manifest],
    summaries: Sequence[CandidateSummary],
    anchor: Manifest | None,
    calibration: Calibration,
    ctx: RoundContext,
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
                        f"dev domain {domain!r} moved past its noise band, beyond the other domains, in "
                        f"{cal.dev_gain_above_noise} candidate(s) while the external score of "
                        f"{cal.external_flat_among_them} of them did not follow: its dev score no longer predicts "
                        "the external target"
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


def _transfer_surprises(summaries: Sequence[CandidateSummary], ctx: RoundContext) -> list[Surprise]:
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
                        f"the dev objective got worse (gain {s.gain:+.4f}, below −threshold) while the external score "
                        f"got better (gain {s.external_gain:+.4f}, above the external band)"
                    ),
                )
            )
    return out


def _dead_end_surprises(manifests: Sequence[Manifest], ctx: RoundContext) -> list[Surprise]:
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


def _reversed_effect_surprises(manifests: Sequence[Manifest], ctx: RoundContext) -> list[Surprise]:
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


def _gap_shift_surprises(calibration: Calibration, ctx: RoundContext) -> list[Surprise]:
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
