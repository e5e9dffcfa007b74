"""Section 2, patterns: a verdict per axis (promising, flat, harmful, failed, untested)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

from evotrain.evidence import stats
from evotrain.evidence.context import RoundContext
from evotrain.evidence.reading import INFRA_FAILURES
from evotrain.records.evidence import AxisPattern, CandidateSummary
from evotrain.records.manifest import Manifest

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


def axis_patterns(summaries: Sequence[CandidateSummary], ctx: RoundContext) -> list[AxisPattern]:
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
