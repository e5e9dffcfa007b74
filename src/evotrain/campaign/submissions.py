"""Which of a round's candidates the external target scores: the objective's best, a probe, and the anchor.

The objective's best are what the loop would keep. The probe is the candidate whose dev gain leans hardest on one
domain (beyond the other domains' mean, weighted by the domain's share of the metric, rises and falls alike):
that is where dev and the external target may disagree, and only an external score tells whether they do. Without
it, a gain that sits in one weak domain ranks low on the overall objective and is never submitted, so a proxy that
stopped predicting the external target is never seen (the paper's round 3). The anchor measures external noise.
"""

from __future__ import annotations

from collections.abc import Sequence

from evotrain.evidence import stats
from evotrain.evidence.reading import domain_counts
from evotrain.records.manifest import Manifest
from evotrain.records.policy import ExternalPlan
from evotrain.substrate.spec import SubstrateSpec
from evotrain.trial.evaluation import domain_shares


def choose_submissions(plan: ExternalPlan, spec: SubstrateSpec, round_no: int, manifests: list[Manifest]) -> set[str]:
    """The candidates the selection objective ranks first, the probes, and the anchor every N rounds."""
    sign = spec.metric.sign
    ranked = sorted(
        (m for m in manifests if m.ok and m.role != "anchor" and m.selected is not None),
        key=lambda m: -sign * m.selected.objective if m.selected else 0.0,
    )
    chosen = {m.candidate_id for m in ranked[: plan.submit_top]}
    leans = sorted(
        (
            (lean, m.candidate_id)
            for m in ranked
            if m.candidate_id not in chosen and (lean := domain_lean(spec, m, manifests)) > 0
        ),
        reverse=True,
    )
    chosen |= {cid for _, cid in leans[: plan.submit_probe]}
    if plan.submit_anchor_every > 0 and (round_no - 1) % plan.submit_anchor_every == 0:
        chosen |= {m.candidate_id for m in manifests if m.role == "anchor" and m.ok}
    return chosen


def domain_lean(spec: SubstrateSpec, m: Manifest, round_manifests: Sequence[Manifest]) -> float:
    """How far a candidate's dev gain leans on one domain: the largest |domain gain − the other domains' mean gain|
    × that domain's share of the metric, over its round's anchor (0 without an anchor or with one domain)."""
    anchor = stats.round_anchor(round_manifests, m.round)
    if anchor is None:
        return 0.0
    base = domain_counts(anchor)
    scores = domain_counts(m)
    gains = {d: spec.metric.sign * (s - base[d][0]) for d, (s, _) in scores.items() if d in base}
    if len(gains) < 2:
        return 0.0
    shares = domain_shares(spec.metric, {d: n for d, (_, n) in base.items()})
    return max(
        abs(g - sum(o for e, o in gains.items() if e != d) / (len(gains) - 1)) * shares.get(d, 0.0)
        for d, g in gains.items()
    )
