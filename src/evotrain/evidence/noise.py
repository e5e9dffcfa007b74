"""Noise: the dev noise band from anchors (seed) and the anchor's per-item scores (item: their sd, or binomial for
a success rate), and the external noise band."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from evotrain.evidence import stats
from evotrain.evidence.reading import domain_counts, domain_scores, load_eval_report, selected_eval
from evotrain.records.evaluation import EvalReport
from evotrain.records.manifest import Manifest
from evotrain.records.policy import Policy
from evotrain.substrate.spec import Metric


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
    metric_kind: Literal["success_rate", "continuous"] | None = None
    metric_kind_how: str = ""

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
    """The reference anchor of the latest round up to `up_to_round` whose anchor ran."""
    anchors = {r: m for r, m in stats.reference_anchors(history).items() if r <= up_to_round}
    return anchors[max(anchors)] if anchors else None


# ---- what one item's score is --------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricKind:
    success_rate: bool
    how: str  # in words: declared, or inferred from what

    @property
    def name(self) -> Literal["success_rate", "continuous"]:
        return "success_rate" if self.success_rate else "continuous"


def metric_kind(
    metric: Metric | None, report: EvalReport | None, counts: Mapping[str, tuple[float, int]]
) -> MetricKind:
    """Whether the metric is a success rate (binomial item noise applies) or continuous (per-item sd): declared by
    `[metric].kind`, else inferred from the anchor's item scores (all 0 or 1), else from its domain scores (a
    report without items whose scores all lie in [0, 1] is taken for a success rate, as before `kind` existed)."""
    declared = metric.kind if metric is not None else "auto"
    if declared != "auto":
        return MetricKind(declared == "success_rate", f'declared `kind = "{declared}"`')
    items = [i.score for i in report.items] if report is not None and report.items else []
    if items:
        if stats.is_success_rate_items(items):
            return MetricKind(True, "inferred: every item score of the anchor is 0 or 1")
        return MetricKind(False, "inferred: the anchor's item scores are not all 0 or 1")
    if not counts:
        return MetricKind(True, "not yet known (no anchor has been evaluated); taken for a success rate")
    if all(0.0 <= p <= 1.0 for p, _ in counts.values()):
        return MetricKind(True, "assumed: no item scores, and every domain score lies in [0, 1]")
    return MetricKind(False, "assumed: no item scores, and a domain score lies outside [0, 1]")


def anchor_report(anchor: Manifest | None, campaign_root: Path | None) -> EvalReport | None:
    ckpt = selected_eval(anchor) if anchor is not None else None
    if ckpt is None or campaign_root is None:
        return None
    report, _ = load_eval_report(campaign_root, ckpt.report)
    return report


def estimate_dev_noise(
    history: Sequence[Manifest],
    *,
    round_no: int,
    weights: Mapping[str, float],
    domains: Sequence[str],
    k: float,
    metric: Metric | None = None,
    campaign_root: Path | None = None,
) -> DevNoise:
    """Seed noise pooled over runs of one recipe (objective re-scored under the current weights, so a reweighting
    does not masquerade as noise) plus the item-sampling noise of the latest anchor's objective.

    The item noise is the analytic sd of the mean of the anchor's per-item scores, per domain (s/√n), combined
    with the objective's weights; for a success rate it is the binomial sd, which is the same figure for 0/1 items
    and needs only the counts. The analytic sd rather than a bootstrap: one anchor has no partner to pair with
    (a paired bootstrap over shared items needs two runs, and would mix their seed noise into the item noise),
    the bootstrap sd of a mean converges to s/√n anyway, and the analytic figure is exact, deterministic and
    scales with the metric. Paired bootstraps still give every candidate's gain interval (`candidates`).
    """
    groups = replication_groups(history)
    objective_groups = [
        [v for m in g if (v := stats.weighted_objective(domain_scores(m), weights)) is not None] for g in groups
    ]
    seed_sd, dof = stats.pooled_sd(objective_groups)
    anchor = latest_anchor(history, round_no)
    report = anchor_report(anchor, campaign_root)
    counts = domain_counts(anchor) if anchor is not None else {}
    kind = metric_kind(metric, report, counts)
    per_item = report.item_scores() if report is not None else {}
    domain_items: dict[str, float] = {}
    methods: set[str] = set()
    for d, (p, n) in counts.items():
        items = list(per_item.get(d, {}).values())
        sd, method = stats.domain_item_sd(p, n, items, success_rate=kind.success_rate)
        methods.add(method)
        if sd is not None:
            domain_items[d] = sd
    item_sd = stats.weighted_sd(domain_items, weights) if anchor is not None else None
    band = stats.combined_band(seed_sd, item_sd)
    runs = sum(len(g) for g in objective_groups if len(g) >= 2)
    recipes = sum(1 for g in objective_groups if len(g) >= 2)
    if seed_sd is None:
        seed_note = "seed noise not yet measured (needs two runs of one recipe: unchanged anchors, or a replicate)"
    else:
        seed_note = f"seed sd {seed_sd:.4f} pooled over {runs} runs of {recipes} recipe(s) ({dof} degrees of freedom)"
    if anchor is None:
        item_note = "item noise unknown (no anchor has run)"
    elif item_sd is None:
        item_note = (
            f"item noise unknown: {metric.name if metric else 'the metric'} is {kind.name} ({kind.how}) and "
            f"{anchor.candidate_id}'s report holds no item scores to measure it"
        )
    elif kind.success_rate:
        item_note = (
            f"item sd {item_sd:.4f} (binomial, from {anchor.candidate_id}'s dev item counts; success rate, {kind.how})"
        )
    else:
        item_note = (
            f"item sd {item_sd:.4f} (sd of the mean of {anchor.candidate_id}'s per-item scores; continuous metric, "
            f"{kind.how})"
        )
    domain_bands: dict[str, float] = {}
    for d in domains:
        d_seed, _ = stats.pooled_sd([[domain_scores(m)[d] for m in g if d in domain_scores(m)] for g in groups])
        d_band = stats.combined_band(d_seed, domain_items.get(d))
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
        metric_kind=kind.name,
        metric_kind_how=kind.how,
    )


ExternalNoiseSource = Literal["anchors", "binomial", "dev band (assumed)", "policy default"]


def estimate_external_noise(
    history: Sequence[Manifest], policy: Policy, *, success_rate: bool = True, dev_band: float | None = None
) -> tuple[float, ExternalNoiseSource]:
    """External sd: from anchors' external scores (pooled per recipe) when two exist, never below (for a success
    rate) the binomial sd of the external item count, which stands alone until two anchors exist; else the
    policy's assumed default — which is a number on a success rate's scale, so a continuous metric assumes its
    dev noise band instead (same metric, same scale)."""
    anchor_groups: dict[str, list[float]] = defaultdict(list)
    for m in history:
        if m.role == "anchor" and m.external is not None:
            anchor_groups[m.recipe_diff].append(m.external.score)
    sd, _ = stats.pooled_sd(anchor_groups.values())
    ref = external_count_reference(history)
    binomial = None
    if success_rate and ref is not None and ref.external is not None and ref.external.n:
        if 0.0 <= ref.external.score <= 1.0:
            binomial = stats.binomial_sd(ref.external.score, ref.external.n)
    # Two or three anchors give a very uncertain sd, often far too small (a lucky pair of close scores would make
    # every external difference look significant); for a success rate the binomial sd of the item count is the
    # floor: the sampling noise of the external items alone, before any seed noise.
    if sd is not None and sd > 0 and (binomial is None or sd >= binomial):
        return sd, "anchors"
    if binomial is not None:
        return binomial, "binomial"
    if sd is not None and sd > 0:  # identical anchor scores say too little to set a band of zero
        return sd, "anchors"
    if not success_rate and dev_band is not None and dev_band > 0:
        return dev_band, "dev band (assumed)"
    return policy.noise.external_sd_default, "policy default"


def external_count_reference(history: Sequence[Manifest]) -> Manifest | None:
    """The run whose external item count describes the external split: the latest anchor that has one, else the
    latest candidate."""
    with_n = [m for m in history if m.external is not None and m.external.n]
    return max(with_n, key=lambda m: (m.role == "anchor", m.round)) if with_n else None


def external_reference(history: Sequence[Manifest], round_no: int) -> Manifest | None:
    """The anchor whose external score a round's candidates are compared with: this round's, else the latest
    earlier anchor that was submitted."""
    submitted = [m for m in history if m.role == "anchor" and m.external is not None and m.round <= round_no]
    same = [m for m in submitted if m.round == round_no]
    if same:
        return min(same, key=lambda m: m.candidate_id)
    return min(submitted, key=lambda m: (-m.round, m.candidate_id)) if submitted else None
