"""A substrate's declared search space as Optuna distributions, and a trial's knob values as Optuna parameters.

Every knob of every axis is a parameter named `<axis>.<knob>`; a weights knob (a data mix) is one float parameter
per domain, `<axis>.<knob>.<domain>`, in the knob's declared range. The domains of a weights knob are the ones the
substrate's own recipe lists (read from the snapshot), so the space is fixed for a whole campaign.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from evotrain.substrate.spec import Knob, SubstrateSpec


@dataclass(frozen=True)
class KnobParam:
    """One Optuna parameter and the knob (and, for a weights knob, the domain) it sets."""

    name: str
    axis: str
    knob_name: str
    knob: Knob
    domain: str | None
    distribution: BaseDistribution


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[KnobParam, ...]

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return {p.name: p.distribution for p in self.params}

    def to_params(self, knob_values: dict[str, Any]) -> dict[str, Any] | None:
        """A trial's `<axis>.<knob>` values as parameters; None when a knob is missing or outside the space
        (a trial made before the knob was declared, or an agent's edit beyond the range): it cannot be told."""
        out: dict[str, Any] = {}
        for p in self.params:
            value = knob_values.get(f"{p.axis}.{p.knob_name}")
            if p.domain is not None:
                value = value.get(p.domain) if isinstance(value, dict) else None
            if value is None or not _contains(p.distribution, value):
                return None
            out[p.name] = value
        return out

    def to_knob_values(self, params: dict[str, Any]) -> dict[tuple[str, str], Any]:
        """(axis, knob) → the value to write; a weights knob's domains are gathered into its table."""
        out: dict[tuple[str, str], Any] = {}
        for p in self.params:
            value = params[p.name]
            if p.domain is None:
                out[(p.axis, p.knob_name)] = value
            else:
                table = out.setdefault((p.axis, p.knob_name), {})
                table[p.domain] = value
        return out


def build_search_space(spec: SubstrateSpec, base_values: dict[str, Any]) -> SearchSpace:
    """The space of every declared knob; `base_values` (the substrate's own knob values) names a mix's domains."""
    params: list[KnobParam] = []
    for axis_name in sorted(spec.search.axes):
        axis = spec.search.axes[axis_name]
        for knob_name in sorted(axis.knobs):
            knob = axis.knobs[knob_name]
            name = f"{axis_name}.{knob_name}"
            if knob.type == "weights":
                domains = base_values.get(name)
                for domain in sorted(domains) if isinstance(domains, dict) else []:
                    dist = FloatDistribution(_low(knob), _high(knob))
                    params.append(KnobParam(f"{name}.{domain}", axis_name, knob_name, knob, domain, dist))
            else:
                params.append(KnobParam(name, axis_name, knob_name, knob, None, _distribution(knob)))
    return SearchSpace(tuple(params))


def _distribution(knob: Knob) -> BaseDistribution:
    if knob.type == "float":
        return FloatDistribution(_low(knob), _high(knob), log=knob.log)
    if knob.type == "int":
        return IntDistribution(math.ceil(_low(knob)), math.floor(_high(knob)), log=knob.log)
    if knob.type == "bool":
        return CategoricalDistribution([False, True])
    assert knob.choices is not None  # the spec validates a choice knob's list
    return CategoricalDistribution(list(knob.choices))


def _low(knob: Knob) -> float:
    assert knob.low is not None
    return knob.low


def _high(knob: Knob) -> float:
    assert knob.high is not None
    return knob.high


def _contains(distribution: BaseDistribution, value: Any) -> bool:
    if isinstance(distribution, CategoricalDistribution):
        return any(value == c and type(value) is type(c) for c in distribution.choices)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(distribution, IntDistribution) and not float(value).is_integer():
        return False
    assert isinstance(distribution, FloatDistribution | IntDistribution)
    return bool(distribution.low <= value <= distribution.high)
