"""The statistics the loop stands on, checked on synthetic data with a known truth."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from evotrain.evidence import stats

from .synthetic_campaign import SyntheticCampaign


def _paired_sample(rng: np.random.Generator, n: int, p_anchor: float, p_cand: float) -> tuple[dict, dict]:
    """Correlated 0/1 outcomes on shared items: a latent difficulty per item, plus per-run flips."""
    u = rng.random(n)
    anchor = (u < p_anchor).astype(float)
    cand = (u < p_cand).astype(float)
    flips_a, flips_c = rng.random(n) < 0.05, rng.random(n) < 0.05
    anchor = np.where(flips_a, 1 - anchor, anchor)
    cand = np.where(flips_c, 1 - cand, cand)
    return (
        {"d": {f"i{i}": float(c) for i, c in enumerate(cand)}},
        {"d": {f"i{i}": float(a) for i, a in enumerate(anchor)}},
    )


def test_paired_bootstrap_interval_covers_the_true_gain() -> None:
    rng = np.random.default_rng(7)
    p_anchor, p_cand, n = 0.55, 0.62, 400
    # Each run's expected score: p·(1 − f) + (1 − p)·f with flip rate f = 0.05.
    true_gain = (p_cand - p_anchor) * (1 - 2 * 0.05)
    covered = 0
    trials = 40
    for t in range(trials):
        cand, anchor = _paired_sample(rng, n, p_anchor, p_cand)
        est = stats.paired_bootstrap_gain(cand, anchor, {"d": 1.0}, sign=1.0, seed=t, n_boot=1000)
        assert est is not None
        assert est.overall.low <= est.overall.gain <= est.overall.high
        covered += est.overall.low <= true_gain <= est.overall.high
    assert covered / trials >= 0.85  # nominal 95%


def test_paired_interval_is_narrower_than_unpaired_on_correlated_items() -> None:
    rng = np.random.default_rng(3)
    cand, anchor = _paired_sample(rng, 500, 0.6, 0.66)
    paired = stats.paired_bootstrap_gain(cand, anchor, {"d": 1.0}, sign=1.0, seed=1)
    counts_c = {"d": (float(np.mean(list(cand["d"].values()))), 500)}
    counts_a = {"d": (float(np.mean(list(anchor["d"].values()))), 500)}
    unpaired = stats.unpaired_gain(counts_c, counts_a, {"d": 1.0}, sign=1.0)
    assert paired is not None and unpaired is not None
    assert paired.overall.gain == pytest.approx(unpaired.overall.gain)
    assert paired.overall.high - paired.overall.low < 0.8 * (unpaired.overall.high - unpaired.overall.low)


def test_bootstrap_is_seeded_and_respects_direction() -> None:
    rng = np.random.default_rng(0)
    cand, anchor = _paired_sample(rng, 200, 0.5, 0.6)
    a = stats.paired_bootstrap_gain(cand, anchor, {"d": 1.0}, sign=1.0, seed=5)
    b = stats.paired_bootstrap_gain(cand, anchor, {"d": 1.0}, sign=1.0, seed=5)
    lower_is_better = stats.paired_bootstrap_gain(cand, anchor, {"d": 1.0}, sign=-1.0, seed=5)
    assert a == b
    assert lower_is_better is not None and a is not None
    assert lower_is_better.overall.gain == pytest.approx(-a.overall.gain)


def test_weighted_objective_and_item_sd() -> None:
    assert stats.weighted_objective({"a": 0.5, "b": 1.0}, {"a": 1.0, "b": 3.0}) == pytest.approx(0.875)
    assert stats.binomial_sd(0.5, 100) == pytest.approx(0.05)
    # Two equal domains of 100 items at p = 0.5: sd of their mean is 0.05 / sqrt(2).
    sd = stats.objective_item_sd({"a": (0.5, 100), "b": (0.5, 100)}, {})
    assert sd == pytest.approx(0.05 / math.sqrt(2))


def test_pooled_sd_uses_only_repeated_recipes() -> None:
    assert stats.pooled_sd([[0.5], [0.7]]) == (None, 0)
    sd, dof = stats.pooled_sd([[0.50, 0.52], [0.80, 0.84], [0.9]])
    assert dof == 2
    assert sd == pytest.approx(math.sqrt((0.0002 + 0.0008) / 2))
    assert stats.combined_band(0.03, 0.04) == pytest.approx(0.05)
    assert stats.combined_band(None, 0.04) == pytest.approx(0.04)


def test_decoupling_flag_raised_when_dev_rises_and_external_stays_flat() -> None:
    pairs = [(0.10, 0.004), (0.12, -0.006), (0.08, 0.01), (0.01, 0.02)]
    flag = stats.decoupling(pairs, dev_threshold=0.05, external_threshold=0.02)
    assert flag == stats.DecouplingCount(dev_above=3, external_flat=3, decoupled=True)


def test_decoupling_flag_not_raised_when_external_moves_with_dev() -> None:
    pairs = [(0.10, 0.06), (0.12, 0.08), (0.08, 0.05), (0.01, 0.0)]
    flag = stats.decoupling(pairs, dev_threshold=0.05, external_threshold=0.02)
    assert flag.dev_above == 3 and flag.external_flat == 0 and not flag.decoupled
    # one flat probe among transferring gains is not enough
    assert not stats.decoupling(
        [(0.1, 0.0), (0.1, 0.06), (0.1, 0.07)], dev_threshold=0.05, external_threshold=0.02
    ).decoupled


def test_one_flat_candidate_flags_a_domain_only_when_the_external_split_could_not_have_missed_it() -> None:
    # a quarter of the metric: a +0.24 domain gain would show as +0.06 externally, three times the 0.02 threshold
    decisive = stats.decoupling([(0.24, 0.0)], dev_threshold=0.05, external_threshold=0.02, shares=[0.25])
    assert decisive == stats.DecouplingCount(dev_above=1, external_flat=1, decoupled=True)
    # +0.12 would show as +0.03: a flat external target could be noise, one candidate is no pattern
    weak = stats.decoupling([(0.12, 0.0)], dev_threshold=0.05, external_threshold=0.02, shares=[0.25])
    assert weak.dev_above == 1 and not weak.decoupled
    assert not stats.decoupling([(0.24, 0.0)], dev_threshold=0.05, external_threshold=0.02).decoupled
    # a decisive flat candidate among transferring ones is still outvoted
    mixed = [(0.24, 0.0), (0.2, 0.06), (0.2, 0.05)]
    assert not stats.decoupling(mixed, dev_threshold=0.05, external_threshold=0.02, shares=[0.25] * 3).decoupled


def test_a_fall_the_external_target_does_not_follow_is_decoupling_too() -> None:
    # the paper's downweighting probe: the weak domain's dev score fell, the external target did not
    falls = [(-0.10, 0.005), (-0.12, 0.0)]
    assert stats.decoupling(falls, dev_threshold=0.05, external_threshold=0.02).decoupled
    followed = [(-0.10, -0.04), (-0.12, -0.05)]
    flag = stats.decoupling(followed, dev_threshold=0.05, external_threshold=0.02)
    assert flag.dev_above == 2 and flag.external_flat == 0 and not flag.decoupled


def test_spearman_and_slope() -> None:
    x = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]
    rho, interval = stats.spearman_with_interval(x, [2 * v for v in x], seed=0)
    assert rho == pytest.approx(1.0)
    assert interval is not None and interval[0] <= 1.0
    assert stats.robust_slope(x, [2 * v + 0.1 for v in x]) == pytest.approx(2.0)
    assert stats.spearman_with_interval([0.1, 0.2], [0.3, 0.4], seed=0) == (None, None)
    assert stats.spearman_with_interval([0.1, 0.2, 0.3], [0.3, 0.1, 0.4], seed=0)[1] is None  # n < 4: no interval


def test_item_sd_of_a_mean_for_any_metric() -> None:
    # 0/1 items: the binomial sd is the per-item sd with n degrees of freedom
    items = [1.0] * 60 + [0.0] * 40
    assert stats.is_success_rate_items(items) and not stats.is_success_rate_items([0.0, 0.5])
    sd, how = stats.domain_item_sd(0.6, 100, items, success_rate=True)
    assert how == "binomial" and sd == pytest.approx(float(np.std(items)) / 10)
    # continuous scores: s/√n with the sample sd, and ×10 scores give ×10 the sd (never a clamped 0)
    rng = np.random.default_rng(3)
    errors = list(rng.exponential(0.3, size=400))
    one, how = stats.domain_item_sd(float(np.mean(errors)), 400, errors, success_rate=False)
    ten, _ = stats.domain_item_sd(10 * float(np.mean(errors)), 400, [10 * e for e in errors], success_rate=False)
    assert how == "per-item" and one == pytest.approx(float(np.std(errors, ddof=1)) / 20)
    assert ten == pytest.approx(10 * one)  # type: ignore[operator]
    assert stats.domain_item_sd(3.0, 400, None, success_rate=False) == (None, "unknown")
    assert stats.weighted_sd({"a": 0.05, "b": 0.05}, {}) == pytest.approx(0.05 / math.sqrt(2))


def test_detection_power_and_the_smallest_resolvable_gain() -> None:
    # a true gain equal to the margin is seen half the time; the resolvable gain at 0.8 is seen 80 % of the time
    assert stats.detection_power(0.05, 0.02, 0.05) == pytest.approx(0.5)
    smallest = stats.resolvable_gain(0.02, 0.04, 0.8)
    assert stats.detection_power(smallest, 0.02, 0.04) == pytest.approx(0.8)
    assert smallest == pytest.approx(0.04 + 0.8416 * math.sqrt(2) * 0.02, abs=1e-4)
    # the puzzles split of issue 16: anchors 0.259 / 0.200 / 0.229 / 0.235 cannot resolve a +0.048 gain
    sd = float(np.std([0.259, 0.200, 0.229, 0.235], ddof=1))
    assert stats.detection_power(0.048, sd, 2 * sd) < 0.6
    # scale-free: ×10 scores, ×10 sd, ×10 margin, ×10 gain give the same power
    assert stats.detection_power(0.4, 0.1, 0.2) == pytest.approx(stats.detection_power(4.0, 1.0, 2.0))


def test_a_recipes_runs_are_scored_again_under_one_objective(tmp_path: Path) -> None:
    # a candidate run before equations was distrusted and its replicate run after: each over its own round's anchor
    c = SyntheticCampaign(tmp_path, n_items=100)
    c.run(1, "c01-anchor", role="anchor", skill=0.5)
    c.run(1, "c02-data_mix", axis="data_mix", skill={"cipher": 0.5, "equations": 0.8, "numeral": 0.5})
    c.run(2, "c01-anchor", role="anchor", skill=0.6)
    c.run(
        2,
        "c02-replicate-data_mix",
        role="replicate",
        axis="data_mix",
        replicate_of="r0001/c02-data_mix",
        skill={"cipher": 0.6, "equations": 0.8, "numeral": 0.7},
    )
    history = c.history(2)
    as_run = stats.recipe_run_gains(history, 1.0, "r0001/c02-data_mix")
    assert as_run == pytest.approx([0.1, 0.1], abs=0.02)  # equal weights: (0.3 + 0 + 0) / 3 and (0 + 0.2 + 0.1) / 3
    rescored = stats.recipe_run_gains(history, 1.0, "r0001/c02-data_mix", {"equations": 0.25})
    assert rescored == pytest.approx([0.25 * 0.3 / 2.25, (0.25 * 0.2 + 0.1) / 2.25], abs=0.02)


def test_an_external_gain_short_of_half_the_implied_transfer_did_not_follow() -> None:
    # a quarter of the metric: +0.48 on the domain implies +0.12 externally; +0.05 clears the 0.04 threshold but is
    # closer to no transfer than to transfer, so the candidate stayed flat (and alone decides: 0.12 > 2 × 0.04)
    short = stats.decoupling([(0.48, 0.05)], dev_threshold=0.05, external_threshold=0.04, shares=[0.25])
    assert short == stats.DecouplingCount(dev_above=1, external_flat=1, decoupled=True)
    followed = stats.decoupling([(0.48, 0.08)], dev_threshold=0.05, external_threshold=0.04, shares=[0.25])
    assert followed.external_flat == 0 and not followed.decoupled
    # where the implied move is small the external threshold is the bar, as without shares
    small = stats.decoupling(
        [(0.12, 0.045), (0.1, 0.05)], dev_threshold=0.05, external_threshold=0.04, shares=[0.25] * 2
    )
    assert small.external_flat == 0 and not small.decoupled
