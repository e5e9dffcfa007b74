"""Noise: the dev noise band from anchors (seed) and item counts (binomial), and the external noise band."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from evotrain.evidence import stats
from evotrain.evidence.reading import domain_counts, domain_scores
from evotrain.records.manifest import Manifest
from evotrain.records.policy import Policy


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
