"""Search baselines as workers: Optuna's TPE and random search over the substrate's whole declared space.

What a user would run instead of evotrain's loop, through the same harness, sandboxes, executor, manifests and
evidence, so every baseline trial is auditable like any other. Each call rebuilds the study from the campaign's
own manifests (the harness-written configurations and dev objectives of the earlier rounds, never worker state),
then asks it once for every worker candidate of the round up to this one, in plan order: the candidates of a
round are proposed before any of them has trained, so they are parallel trials, and TPE's constant liar keeps
them apart. The study's sampler is seeded by (campaign seed, round), so the k-th candidate of a round gets the
k-th ask wherever and whenever it is called, a resumed campaign included. A configuration a finished trial or an
earlier candidate of the round already ran is never proposed again.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Literal

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.trial import TrialState, create_trial

from evotrain.records.manifest import Manifest, WorkerUsage
from evotrain.sandbox.knobs import knob_changes, knob_settings, knob_values, write_knob
from evotrain.workers.mutator import fmt, round_sig
from evotrain.workers.protocol import WorkerRequest, WorkerResult
from evotrain.workers.search_space import SearchSpace, build_search_space

SamplerKind = Literal["tpe", "random"]
MAX_ASKS = 64  # asks spent on one candidate before its space is called exhausted (every proposal a repeat)
SIGNIFICANT_DIGITS = 4  # floats are written rounded, so a recipe diff reads 0.003162, not 0.0031622776601683794

Config = tuple[tuple[str, Any], ...]


class SpaceExhausted(Exception):
    """Every configuration the sampler offers has already been run."""


class OptunaWorker:
    """`--agent optuna-tpe` (multivariate TPE, constant liar) or `--agent random` (Optuna's RandomSampler)."""

    def __init__(self, sampler: SamplerKind = "tpe") -> None:
        self.sampler_kind: SamplerKind = sampler
        self.name = "optuna-tpe" if sampler == "tpe" else "random"
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # multivariate TPE and the constant liar are marked experimental; their warning says nothing to a user.
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    def propose(self, request: WorkerRequest) -> WorkerResult:
        started = time.monotonic()
        before = knob_values(request.sandbox, request.spec)
        space = build_search_space(request.spec, knob_settings(request.sandbox, request.spec))
        study, told = self._rebuild_study(request, space)
        seen = {c for c in told.values()}
        position = _position(request)
        try:
            params: dict[str, Any] = {}
            for _ in range(position + 1):
                params = self._ask_new(study, space, seen)
                seen.add(_config(params))
        except SpaceExhausted:
            return WorkerResult(
                rationale=f"{self._label()} found no configuration the campaign has not already run.",
                error="the declared search space is exhausted: every configuration proposed has already run",
                usage=WorkerUsage(turns=1, wall_s=time.monotonic() - started),
            )
        for (axis_name, knob_name), value in space.to_knob_values(params).items():
            knob = request.spec.search.axes[axis_name].knobs[knob_name]
            if before.get((axis_name, knob_name)) != value:
                write_knob(request.sandbox, knob, value)
        changes = knob_changes(before, request.sandbox, request.spec)
        complete = sum(1 for t in study.trials if t.state == TrialState.COMPLETE)
        rationale = (
            f"{self._label()} asked a study rebuilt from {len(told)} earlier trial(s) of this campaign "
            f"({complete} scored) for this round's candidate {position + 1}: "
            + ("; ".join(f"{c.key} {fmt(c.old)} → {fmt(c.new)}" for c in changes) or "the standing recipe's values")
            + "."
        )
        return WorkerResult(
            rationale=rationale, changes=changes, usage=WorkerUsage(turns=1, wall_s=time.monotonic() - started)
        )

    def _label(self) -> str:
        if self.sampler_kind == "tpe":
            return "Optuna TPE (multivariate, constant liar)"
        return "Optuna random search"

    def _sampler(self, seed: int) -> BaseSampler:
        if self.sampler_kind == "tpe":
            return TPESampler(multivariate=True, constant_liar=True, seed=seed)
        return RandomSampler(seed=seed)

    def _rebuild_study(self, request: WorkerRequest, space: SearchSpace) -> tuple[optuna.Study, dict[str, Config]]:
        """A fresh in-memory study holding every earlier trial whose configuration lies in the space."""
        direction = request.spec.metric.direction
        study = optuna.create_study(direction=direction, sampler=self._sampler(request.seeds.sampler))
        told: dict[str, Config] = {}
        distributions = space.distributions
        for manifest in sorted(request.history, key=lambda m: (m.round, m.candidate_id)):
            if manifest.round >= request.round:
                continue
            params = space.to_params(manifest.knob_values)
            if params is None:
                continue
            study.add_trial(_frozen_trial(params, distributions, manifest))
            told[manifest.candidate_id] = _config(params)
        return study, told

    @staticmethod
    def _ask_new(study: optuna.Study, space: SearchSpace, seen: set[Config]) -> dict[str, Any]:
        distributions = space.distributions
        for _ in range(MAX_ASKS):
            trial = study.ask(distributions)
            params = {name: _written(value, distributions[name]) for name, value in trial.params.items()}
            if _config(params) not in seen:
                return params  # the trial stays RUNNING: the constant liar counts it for the next ask
            study.tell(trial, state=TrialState.FAIL)
        raise SpaceExhausted


def _frozen_trial(params: dict[str, Any], distributions: dict[str, BaseDistribution], manifest: Manifest) -> Any:
    if manifest.ok and manifest.selected is not None:
        return create_trial(params=params, distributions=distributions, value=manifest.selected.objective)
    return create_trial(params=params, distributions=distributions, state=TrialState.FAIL)


def _position(request: WorkerRequest) -> int:
    """This candidate's place among the round's worker candidates (0 when called outside a planned round)."""
    try:
        return request.round_candidates.index(request.candidate_id)
    except ValueError:
        return 0


def _written(value: Any, distribution: BaseDistribution) -> Any:
    """The value as the recipe will hold it (floats rounded, still in range), so repeats are judged on what
    actually runs."""
    if isinstance(value, float) and isinstance(distribution, FloatDistribution):
        return min(max(round_sig(value, SIGNIFICANT_DIGITS), distribution.low), distribution.high)
    return value


def _config(params: dict[str, Any]) -> Config:
    return tuple(sorted(params.items()))
