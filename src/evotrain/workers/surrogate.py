"""A response-surface proposer: an additive quadratic model of the dev objective over the declared space, fitted
to the campaign's own trials, from which each proposal slot of a round draws one posterior sample and proposes
that sample's best configuration (Thompson sampling).

Why not Optuna's samplers here: with 20–30 trials over a dozen parameters, TPE's densities and a GP's kernel both
spend the data on interactions they cannot resolve yet, while a post-training recipe's knobs act close to
additively and with one best value each (a learning rate too small or too large; docs/puzzles.md measures it). An
additive quadratic in each knob's (log-)scaled value is that prior, and Bayesian ridge keeps it honest while the
data are fewer than its coefficients. Measured against TPE and random search in docs/benchmarks.md.

Each knob `v` in `[low, high]` becomes `u` in [0, 1] (in log space for a log knob) with features `u` and `u²`; a
choice or bool knob is one-hot; a weights knob is one float knob per domain. The model is fitted to every earlier
trial's harness-written knob values and dev objective (never worker state), so, as for the Optuna workers, the
k-th proposal slot of a round gets the k-th draw wherever and whenever it is called, a resumed campaign included.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from evotrain.records.manifest import Manifest, WorkerUsage
from evotrain.sandbox.knobs import knob_changes, knob_settings, knob_values, write_knob
from evotrain.workers.mutator import fmt, round_sig
from evotrain.workers.protocol import WorkerRequest, WorkerResult
from evotrain.workers.search_space import KnobParam, SearchSpace, build_search_space

MIN_TRIALS = 6  # below this many scored trials a proposal is a uniform draw over the space
PRIOR_PRECISION = 1.0  # ridge on standardised features: the prior that a knob does nothing
UNIFORM_CANDIDATES = 2048
LOCAL_CANDIDATES = 256  # perturbations around each of the best observed configurations
LOCAL_SD = 0.12  # in the unit scale of a knob
LOCAL_FLIP = 0.2  # chance a perturbation changes a choice knob
SIGNIFICANT_DIGITS = 4
GREEDY_FIRST = os.environ.get("EVOTRAIN_SURROGATE_GREEDY", "0") == "1"

Config = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Encoder:
    """Parameters ↔ unit-scale vectors ↔ model features."""

    params: tuple[KnobParam, ...]

    def unit(self, params: dict[str, Any]) -> list[Any]:
        """Each parameter in [0, 1] (numeric) or as its choice (categorical)."""
        out: list[Any] = []
        for p in self.params:
            value, dist = params[p.name], p.distribution
            if isinstance(dist, CategoricalDistribution):
                out.append(value)
            else:
                assert isinstance(dist, FloatDistribution | IntDistribution)
                out.append(_to_unit(float(value), float(dist.low), float(dist.high), dist.log))
        return out

    def features(self, unit: list[Any]) -> np.ndarray:
        row: list[float] = []
        for p, u in zip(self.params, unit, strict=True):
            if isinstance(p.distribution, CategoricalDistribution):
                row.extend(1.0 if u == c else 0.0 for c in p.distribution.choices[1:])
            else:
                row.extend((u - 0.5, (u - 0.5) ** 2))
        return np.asarray(row, dtype=float)

    def from_unit(self, unit: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p, u in zip(self.params, unit, strict=True):
            dist = p.distribution
            if isinstance(dist, CategoricalDistribution):
                out[p.name] = u
                continue
            assert isinstance(dist, FloatDistribution | IntDistribution)
            value = _from_unit(min(max(u, 0.0), 1.0), float(dist.low), float(dist.high), dist.log)
            if isinstance(dist, IntDistribution):
                out[p.name] = int(min(max(round(value), dist.low), dist.high))
            else:
                out[p.name] = min(max(round_sig(value, SIGNIFICANT_DIGITS), dist.low), dist.high)
        return out

    def uniform(self, rng: np.random.Generator) -> list[Any]:
        return [
            p.distribution.choices[int(rng.integers(len(p.distribution.choices)))]
            if isinstance(p.distribution, CategoricalDistribution)
            else float(rng.random())
            for p in self.params
        ]

    def perturb(self, unit: list[Any], rng: np.random.Generator) -> list[Any]:
        out: list[Any] = []
        for p, u in zip(self.params, unit, strict=True):
            dist = p.distribution
            if isinstance(dist, CategoricalDistribution):
                flip = rng.random() < LOCAL_FLIP
                out.append(dist.choices[int(rng.integers(len(dist.choices)))] if flip else u)
            else:
                out.append(min(max(u + rng.normal(0.0, LOCAL_SD), 0.0), 1.0))
        return out


@dataclass(frozen=True)
class Posterior:
    """Bayesian ridge over standardised features: mean and covariance of the coefficients, in objective units."""

    mean: np.ndarray
    cov: np.ndarray
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float
    y_scale: float

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        return rng.multivariate_normal(self.mean, self.cov, method="eigh")

    def predict(self, features: np.ndarray, weights: np.ndarray) -> np.ndarray:
        z = (features - self.x_mean) / self.x_scale
        return self.y_mean + self.y_scale * (z @ weights)


def fit(features: np.ndarray, y: np.ndarray) -> Posterior:
    x_mean = features.mean(axis=0)
    x_scale = features.std(axis=0)
    x_scale[x_scale == 0] = 1.0
    z = (features - x_mean) / x_scale
    y_mean, y_scale = float(y.mean()), float(y.std()) or 1.0
    t = (y - y_mean) / y_scale
    precision = z.T @ z + PRIOR_PRECISION * np.eye(z.shape[1])
    cov_unit = np.linalg.inv(precision)
    mean = cov_unit @ z.T @ t
    residual = t - z @ mean
    # noise variance: residuals and the prior's share, at least a small floor so a perfect fit still explores
    sigma2 = max((residual @ residual + PRIOR_PRECISION * mean @ mean) / max(len(t), 1), 1e-3)
    return Posterior(mean, sigma2 * cov_unit, x_mean, x_scale, y_mean, y_scale)


class SurrogateWorker:
    """Proposals from the additive quadratic response surface (see the module docstring)."""

    name = "surrogate"

    def propose(self, request: WorkerRequest) -> WorkerResult:
        started = time.monotonic()
        before = knob_values(request.sandbox, request.spec)
        space = build_search_space(request.spec, knob_settings(request.sandbox, request.spec))
        encoder = Encoder(space.params)
        trials, seen = _trials(request, space)
        position = _position(request)
        scored = [(params, y) for params, y in trials if y is not None]
        sign = -1.0 if request.spec.metric.direction == "minimize" else 1.0
        posterior, units = None, [encoder.unit(params) for params, _ in scored]
        if len(scored) >= MIN_TRIALS:
            features = np.stack([encoder.features(u) for u in units])
            posterior = fit(features, sign * np.asarray([y for _, y in scored]))
            how = f"the best configuration of one posterior draw of a response surface fitted to {len(scored)} trials"
        else:
            how = f"a uniform draw over the declared space (fewer than {MIN_TRIALS} scored trials to fit)"
        params: dict[str, Any] | None = None
        for slot in range(position + 1):  # the round's earlier slots first, so no two slots propose the same
            rng = np.random.default_rng([request.seeds.sampler, slot])
            if posterior is None:
                params = _uniform_new(encoder, seen, rng)
            else:
                params = _thompson(encoder, posterior, units, seen, rng, greedy=slot == 0 and GREEDY_FIRST)
            if params is None:
                break
            seen.add(_config(params))
        if params is None:
            return WorkerResult(
                rationale="The response surface found no configuration the campaign has not already run.",
                error="the declared search space is exhausted: every configuration proposed has already run",
                usage=WorkerUsage(turns=1, wall_s=time.monotonic() - started),
            )
        for (axis_name, knob_name), value in space.to_knob_values(params).items():
            knob = request.spec.search.axes[axis_name].knobs[knob_name]
            if before.get((axis_name, knob_name)) != value:
                write_knob(request.sandbox, knob, value)
        changes = knob_changes(before, request.sandbox, request.spec)
        rationale = (
            f"Response surface (additive quadratic, Bayesian ridge), proposal {position + 1} of the round: {how}: "
            + ("; ".join(f"{c.key} {fmt(c.old)} → {fmt(c.new)}" for c in changes) or "the standing recipe's values")
            + "."
        )
        return WorkerResult(
            rationale=rationale, changes=changes, usage=WorkerUsage(turns=1, wall_s=time.monotonic() - started)
        )


def _trials(
    request: WorkerRequest, space: SearchSpace
) -> tuple[list[tuple[dict[str, Any], float | None]], set[Config]]:
    """Every earlier trial whose configuration lies in the space, with its dev objective (None when it failed)."""
    trials: list[tuple[dict[str, Any], float | None]] = []
    seen: set[Config] = set()
    for m in sorted(request.history, key=lambda m: (m.round, m.candidate_id)):
        if m.round >= request.round:
            continue
        params = space.to_params(m.knob_values)
        if params is None:
            continue
        seen.add(_config(params))
        trials.append((params, _objective(m)))
    return trials, seen


def _objective(m: Manifest) -> float | None:
    if m.ok and m.selected is not None and math.isfinite(m.selected.objective):
        return m.selected.objective
    return None


def _thompson(
    encoder: Encoder,
    posterior: Posterior,
    observed: list[list[Any]],
    seen: set[Config],
    rng: np.random.Generator,
    *,
    greedy: bool = False,
) -> dict[str, Any] | None:
    weights = posterior.mean if greedy else posterior.draw(rng)
    observed_features = np.stack([encoder.features(u) for u in observed])
    best_observed = np.argsort(-posterior.predict(observed_features, posterior.mean))[:3]
    pool = [encoder.uniform(rng) for _ in range(UNIFORM_CANDIDATES)]
    for index in best_observed:
        pool.extend(encoder.perturb(observed[index], rng) for _ in range(LOCAL_CANDIDATES))
    scores = posterior.predict(np.stack([encoder.features(u) for u in pool]), weights)
    for index in np.argsort(-scores):
        params = encoder.from_unit(pool[index])
        if _config(params) not in seen:
            return params
    return None


def _uniform_new(encoder: Encoder, seen: set[Config], rng: np.random.Generator) -> dict[str, Any] | None:
    for _ in range(64):
        params = encoder.from_unit(encoder.uniform(rng))
        if _config(params) not in seen:
            return params
    return None


def _position(request: WorkerRequest) -> int:
    try:
        return request.round_candidates.index(request.candidate_id)
    except ValueError:
        return 0


def _to_unit(value: float, low: float, high: float, log: bool) -> float:
    if log and low > 0:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low) if high > low else 0.0


def _from_unit(u: float, low: float, high: float, log: bool) -> float:
    if log and low > 0:
        return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    return low + u * (high - low)


def _config(params: dict[str, Any]) -> Config:
    return tuple(sorted(params.items()))
