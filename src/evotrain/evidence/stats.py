"""The statistics the loop stands on: paired gains, two noise sources, calibration and the decoupled-proxy flag.

Every function here is pure (numbers in, numbers out, seeded where random) so the collector, the constitution and
the meta agents compute the same quantities the same way.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from evotrain.evidence.reading import domain_scores
from evotrain.records.manifest import Manifest

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
_BOOTSTRAP_CHUNK = 250  # resamples drawn at once: bounds memory for dev sets of many thousand items


# ---- the objective -------------------------------------------------------------------------------------------
def domain_weights(domains: Sequence[str], weights: Mapping[str, float]) -> dict[str, float]:
    """The weight of every metric domain; a domain the policy does not name weighs 1."""
    return {d: float(weights.get(d, 1.0)) for d in domains}


def weighted_objective(scores: Mapping[str, float], weights: Mapping[str, float]) -> float | None:
    """The selection objective: the weighted mean of per-domain dev scores (domains without a score are skipped)."""
    total = sum(weights.get(d, 1.0) for d in scores)
    if total <= 0:
        return None
    return sum(weights.get(d, 1.0) * s for d, s in scores.items()) / total


# ---- noise ---------------------------------------------------------------------------------------------------
def binomial_sd(p: float, n: int) -> float:
    """Sampling sd of a mean score over n items. For 0/1 items it is exact; for scores in [0, 1] an upper bound."""
    if n <= 0:
        return math.inf
    q = min(max(p, 0.0), 1.0)
    return math.sqrt(q * (1.0 - q) / n)


def is_success_rate_items(scores: Iterable[float]) -> bool:
    """Whether every item score is 0 or 1 (and there is at least one): the metric counts successes."""
    values = list(scores)
    return bool(values) and all(v in (0.0, 1.0) for v in values)


def mean_sd(scores: Sequence[float]) -> float | None:
    """Sampling sd of the mean of per-item scores, s/√n with the sample sd s (n − 1 degrees of freedom); None with
    fewer than two items. It holds for any metric and scales with it (scores ×10 give an sd ×10)."""
    values = np.asarray(scores, dtype=float)
    if values.size < 2:
        return None
    return float(values.std(ddof=1)) / math.sqrt(values.size)


def domain_item_sd(
    score: float, n: int, items: Sequence[float] | None, *, success_rate: bool
) -> tuple[float | None, str]:
    """Item-sampling sd of one domain's mean score, and how it was computed.

    A success rate uses the binomial sd of its mean (exact for 0/1 items, and needs only the count); any other
    metric uses the sd of its per-item scores, and has no item noise estimate without them.
    """
    if success_rate:
        return (binomial_sd(score, n) if n > 0 else None), "binomial"
    if items:
        return mean_sd(items), "per-item"
    return None, "unknown"


def weighted_sd(sds: Mapping[str, float], weights: Mapping[str, float]) -> float | None:
    """sd of the weighted objective from independent per-domain sds: sqrt(Σ (w_d / Σw)² sd_d²)."""
    usable = {d: sd for d, sd in sds.items() if math.isfinite(sd)}
    total = sum(weights.get(d, 1.0) for d in usable)
    if not usable or total <= 0:
        return None
    return math.sqrt(sum((weights.get(d, 1.0) / total) ** 2 * sd**2 for d, sd in usable.items()))


def objective_item_sd(domains: Mapping[str, tuple[float, int]], weights: Mapping[str, float]) -> float | None:
    """Binomial item-sampling sd of the weighted objective, from each domain's score and item count (p, n): for a
    success rate (`weighted_sd` of `domain_item_sd` covers any metric)."""
    return weighted_sd({d: binomial_sd(p, n) for d, (p, n) in domains.items() if n > 0}, weights)


def pooled_sd(groups: Iterable[Sequence[float]]) -> tuple[float | None, int]:
    """Pooled within-group sd (each group: runs of one recipe with different seeds) and its degrees of freedom.

    Pooling within recipes keeps a promotion's real effect out of the seed-noise estimate. None until some group
    has two runs.
    """
    ss = 0.0
    dof = 0
    for group in groups:
        values = np.asarray(group, dtype=float)
        if values.size >= 2:
            ss += float(((values - values.mean()) ** 2).sum())
            dof += int(values.size) - 1
    if dof == 0:
        return None, 0
    return math.sqrt(ss / dof), dof


def combined_band(seed_sd: float | None, item_sd: float | None) -> float | None:
    """The noise band: sqrt(seed² + item²) of whichever sources are known."""
    parts = [x for x in (seed_sd, item_sd) if x is not None and math.isfinite(x)]
    if not parts:
        return None
    return math.sqrt(sum(x * x for x in parts))


# ---- paired and unpaired gains -------------------------------------------------------------------------------
@dataclass(frozen=True)
class GainEstimate:
    gain: float
    low: float
    high: float
    n_items: int


@dataclass(frozen=True)
class PairedGain:
    overall: GainEstimate
    domains: dict[str, GainEstimate] = field(default_factory=dict)
    method: str = ""


ItemScores = Mapping[str, Mapping[str, float]]  # domain -> item id -> score


def _paired_diffs(candidate: ItemScores, anchor: ItemScores, sign: float) -> dict[str, npt.NDArray[np.float64]]:
    out: dict[str, npt.NDArray[np.float64]] = {}
    for domain, cand_items in candidate.items():
        anchor_items = anchor.get(domain, {})
        common = sorted(set(cand_items) & set(anchor_items))
        if common:
            out[domain] = sign * np.array([cand_items[i] - anchor_items[i] for i in common], dtype=float)
    return out


def _bootstrap_means(x: npt.NDArray[np.float64], rng: np.random.Generator, n_boot: int) -> npt.NDArray[np.float64]:
    chunks = []
    for start in range(0, n_boot, _BOOTSTRAP_CHUNK):
        rows = min(_BOOTSTRAP_CHUNK, n_boot - start)
        idx = rng.integers(0, x.size, size=(rows, x.size))
        chunks.append(x[idx].mean(axis=1))
    return np.concatenate(chunks)


def _percentiles(samples: npt.NDArray[np.float64], level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_bootstrap_gain(
    candidate: ItemScores,
    anchor: ItemScores,
    weights: Mapping[str, float],
    *,
    sign: float,
    seed: int,
    n_boot: int = BOOTSTRAP_RESAMPLES,
    level: float = CONFIDENCE,
) -> PairedGain | None:
    """Gain of the weighted objective over the anchor on the same dev items, with a paired bootstrap interval.

    Items are resampled within their domain (a stratified bootstrap), so the interval respects the objective's
    fixed domain weights; scipy.stats.bootstrap cannot stratify, hence the numpy loop.
    """
    diffs = _paired_diffs(candidate, anchor, sign)
    total = sum(weights.get(d, 1.0) for d in diffs)
    if not diffs or total <= 0:
        return None
    rng = np.random.default_rng(seed)
    combined = np.zeros(n_boot)
    point = 0.0
    per_domain: dict[str, GainEstimate] = {}
    for domain in sorted(diffs):
        x = diffs[domain]
        boot = _bootstrap_means(x, rng, n_boot)
        low, high = _percentiles(boot, level)
        per_domain[domain] = GainEstimate(float(x.mean()), low, high, int(x.size))
        share = weights.get(domain, 1.0) / total
        combined += share * boot
        point += share * float(x.mean())
    low, high = _percentiles(combined, level)
    n_items = sum(int(x.size) for x in diffs.values())
    return PairedGain(
        overall=GainEstimate(point, low, high, n_items),
        domains=per_domain,
        method=f"paired bootstrap over {n_items} shared dev items ({n_boot} resamples, stratified by domain)",
    )


def unpaired_gain(
    candidate: Mapping[str, tuple[float, int]],
    anchor: Mapping[str, tuple[float, int]],
    weights: Mapping[str, float],
    *,
    sign: float,
    level: float = CONFIDENCE,
) -> PairedGain | None:
    """Fallback without item-level scores: normal interval from the binomial variance of both means (a success rate
    only: for any other metric the counts say nothing about the spread, and the caller has no interval)."""
    common = sorted(set(candidate) & set(anchor))
    total = sum(weights.get(d, 1.0) for d in common)
    if not common or total <= 0:
        return None
    z = float(sps.norm.ppf(0.5 + level / 2.0))
    per_domain: dict[str, GainEstimate] = {}
    point = 0.0
    var = 0.0
    for d in common:
        (pc, nc), (pa, na) = candidate[d], anchor[d]
        g = sign * (pc - pa)
        sd = math.sqrt(binomial_sd(pc, nc) ** 2 + binomial_sd(pa, na) ** 2)
        per_domain[d] = GainEstimate(g, g - z * sd, g + z * sd, min(nc, na))
        share = weights.get(d, 1.0) / total
        point += share * g
        var += share**2 * sd**2
    sd_all = math.sqrt(var)
    n_items = sum(e.n_items for e in per_domain.values())
    return PairedGain(
        overall=GainEstimate(point, point - z * sd_all, point + z * sd_all, n_items),
        domains=per_domain,
        method="unpaired normal interval from binomial variances (no item-level scores)",
    )


# ---- power ---------------------------------------------------------------------------------------------------
def detection_power(effect: float, sd: float, margin: float) -> float:
    """Probability that a true gain `effect` shows as an observed gain above `margin`, when the observed gain is
    the difference of two scores each with sd `sd` (normal approximation: sd of the difference √2·sd)."""
    if sd <= 0 or not math.isfinite(sd):
        return 1.0 if effect > margin else 0.0
    return float(sps.norm.sf((margin - effect) / (math.sqrt(2.0) * sd)))


def resolvable_gain(sd: float, margin: float, power: float) -> float:
    """The smallest true gain that `detection_power` sees with probability `power`: margin + z_power·√2·sd."""
    if sd <= 0 or not math.isfinite(sd):
        return margin
    return margin + float(sps.norm.ppf(min(max(power, 1e-9), 1 - 1e-9))) * math.sqrt(2.0) * sd


# ---- calibration ---------------------------------------------------------------------------------------------
def spearman_with_interval(
    x: Sequence[float], y: Sequence[float], *, seed: int, n_boot: int = 1000, level: float = CONFIDENCE
) -> tuple[float | None, tuple[float, float] | None]:
    """Spearman's rho (n ≥ 3, both sides varying) and a bootstrap percentile interval over pairs (n ≥ 4)."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.size < 3 or np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return None, None
    rho = float(sps.spearmanr(xa, ya).statistic)
    if xa.size < 4:
        return rho, None
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_boot):
        idx = rng.integers(0, xa.size, size=xa.size)
        xs, ys = xa[idx], ya[idx]
        if np.ptp(xs) == 0 or np.ptp(ys) == 0:
            continue  # a resample with no spread has no rank correlation
        samples.append(float(sps.spearmanr(xs, ys).statistic))
    if not samples or len(samples) < n_boot // 2:
        return rho, None
    return rho, _percentiles(np.asarray(samples), level)


def robust_slope(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Theil–Sen slope of y on x (robust to the odd outlier run); None with fewer than two distinct x."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.size < 2 or np.unique(xa).size < 2:
        return None
    return float(sps.theilslopes(ya, xa).slope)


@dataclass(frozen=True)
class DecouplingCount:
    dev_above: int  # candidates whose dev gain on the domain cleared the domain threshold, a rise or a fall
    external_flat: int  # of those, candidates whose external gain did not follow past the external threshold
    decoupled: bool


def decoupling(
    pairs: Sequence[tuple[float, float]],
    *,
    dev_threshold: float,
    external_threshold: float,
    min_candidates: int = 2,
    shares: Sequence[float] | None = None,
) -> DecouplingCount:
    """The decoupled-proxy flag for one dev domain, over (dev gain on the domain, external gain) pairs.

    A candidate moved the domain when its dev gain on it cleared the domain's noise threshold either way: a rise,
    or a fall (the paper's downweighting probe, which damaged the weak domain without damaging the external
    target). It stayed flat when the external gain did not follow it in the same direction past the external
    threshold — and, with `shares` (the domain's share of the metric, per pair), past half of what the external
    target would have moved had the domain transferred as on dev (the move times the share): an external gain of
    +0.05 where transfer implied +0.12 is closer to no transfer than to transfer. Flagged when at least
    `min_candidates` candidates moved the domain and stayed flat, and those are at least half of the candidates that
    moved it (a domain whose dev moves mostly transfer is not decoupled because of one flat probe). With `shares`,
    one flat candidate is enough when the external split could not have missed it: its implied external move is more
    than twice the external threshold.
    """
    moved = [i for i, (d, _) in enumerate(pairs) if abs(d) > dev_threshold]
    implied = [abs(d) * shares[i] if shares is not None else 0.0 for i, (d, _) in enumerate(pairs)]
    flat = [i for i in moved if _did_not_follow(*pairs[i], max(external_threshold, implied[i] / 2))]
    decisive = shares is not None and any(implied[i] > 2 * external_threshold for i in flat)
    decoupled = (len(flat) >= min_candidates or decisive) and 2 * len(flat) >= len(moved)
    return DecouplingCount(len(moved), len(flat), decoupled)


def _did_not_follow(dev: float, external: float, bar: float) -> bool:
    return external <= bar if dev > 0 else external >= -bar


# ---- bookkeeping over manifests ------------------------------------------------------------------------------
def reference_anchors(history: Iterable[Manifest]) -> dict[int, Manifest]:
    """Per round, the anchor gains are measured against: the first (by candidate id) that ran to a selected
    checkpoint. A round's further anchors (`noise.anchors_per_round` > 1) only measure seed noise."""
    out: dict[int, Manifest] = {}
    for m in history:
        if m.role == "anchor" and m.ok and (m.round not in out or m.candidate_id < out[m.round].candidate_id):
            out[m.round] = m
    return out


def round_anchor(manifests: Iterable[Manifest], round_no: int) -> Manifest | None:
    """The round's (reference) anchor, if it ran to a selected checkpoint."""
    return reference_anchors(m for m in manifests if m.round == round_no).get(round_no)


def candidate_gains(
    history: Sequence[Manifest], sign: float, weights: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Objective gain over its own round's anchor for every ok non-anchor candidate of the campaign.

    Each gain is read under the objective of the policy its round ran under. With `weights` (an objective's domain
    weights), every run is scored again under that one objective, from its selected checkpoint's domain scores: a
    run made before a domain was distrusted and one made after then compare on one scale.
    """
    anchors = reference_anchors(history)
    out: dict[str, float] = {}
    for m in history:
        anchor = anchors.get(m.round)
        if m.role == "anchor" or not m.ok or anchor is None:
            continue
        mine, theirs = _objective(m, weights), _objective(anchor, weights)
        if mine is not None and theirs is not None:  # None: weights that sum to zero score nothing
            out[m.candidate_id] = sign * (mine - theirs)
    return out


def _objective(m: Manifest, weights: Mapping[str, float] | None) -> float | None:
    assert m.selected is not None
    return m.selected.objective if weights is None else weighted_objective(domain_scores(m), weights)


def recipe_run_gains(
    history: Sequence[Manifest], sign: float, source: str, weights: Mapping[str, float] | None = None
) -> list[float]:
    """The objective gains of every run of one recipe: the candidate itself, then each replicate of it (each over
    its own round's anchor, so the runs are independent draws of the change's effect); with `weights`, all under
    that one objective (see `candidate_gains`)."""
    gains = candidate_gains(history, sign, weights)
    runs = [m.candidate_id for m in history if m.candidate_id == source]
    runs += [m.candidate_id for m in history if m.role == "replicate" and m.replicate_of == source]
    return [gains[c] for c in runs if c in gains]


def threshold_for_runs(threshold: float, runs: int) -> float:
    """The promotion threshold for the mean gain of `runs` independent runs: the one-run threshold k·band over √n,
    which keeps the false-promotion rate of a change with no effect the same whatever the number of runs."""
    return threshold / math.sqrt(max(1, runs))


@dataclass(frozen=True)
class ExternalProgress:
    best: float | None
    best_source: str | None
    rounds_without_gain: int
    plateau_rounds: list[int]  # the measured rounds since the last external improvement
    measured_rounds: list[int]


def external_progress(history: Sequence[Manifest], sign: float, margin: float = 0.0) -> ExternalProgress:
    """Best external score so far and how many measured rounds in a row failed to beat it by more than `margin`.

    A round counts only if some candidate of it has an external score: a round the external budget skipped is
    neither progress nor plateau. The external score is taken to point the same way as the dev metric. `margin`
    (k times the external noise sd) keeps an anchor's lucky draw from counting as progress.
    """
    by_round: dict[int, list[Manifest]] = defaultdict(list)
    for m in history:
        if m.external is not None:
            by_round[m.round].append(m)
    best: float | None = None
    source: str | None = None
    plateau: list[int] = []
    for round_no in sorted(by_round):
        top = max(by_round[round_no], key=lambda m: sign * m.external.score if m.external else -math.inf)
        assert top.external is not None
        if best is None or sign * (top.external.score - best) > margin:
            best, source = top.external.score, top.candidate_id
            plateau = []
        else:
            plateau.append(round_no)
    return ExternalProgress(best, source, len(plateau), plateau, sorted(by_round))


def failed_anchor_rounds(history: Sequence[Manifest]) -> set[int]:
    """Rounds whose anchor failed: their failures say nothing about the workers' changes (the stack was broken)."""
    return {m.round for m in history if m.role == "anchor" and m.failure is not None}


def categories_explored(history: Sequence[Manifest], rounds: Iterable[int]) -> set[str]:
    """Axis categories that worker or replicate candidates explored in the given rounds."""
    wanted = set(rounds)
    return {m.axis_category for m in history if m.round in wanted and m.role != "anchor" and m.axis_category}
