"""Who runs in a round: one anchor (no change, fresh seed), replicates the policy asks for, then one worker per
active axis (distinct axes while there are enough)."""

from __future__ import annotations

from evotrain.records.events import CandidatePlan
from evotrain.records.ids import candidate_dirname, derive_seed
from evotrain.records.policy import Policy
from evotrain.substrate.spec import SubstrateSpec


def plan_round(
    policy: Policy, spec: SubstrateSpec, round_no: int, workers: int, campaign_seed: int
) -> list[CandidatePlan]:
    """`workers` counts every candidate, the anchor included (the paper's 1 anchor + 7 axes is workers=8)."""

    def seed_for(name: str) -> int:
        return derive_seed(campaign_seed, round_no, name)

    anchor = candidate_dirname(1, None)
    plans = [CandidatePlan(name=anchor, role="anchor", seed=seed_for(anchor))]
    for source in policy.replicate[: max(0, workers - 1)]:
        index = len(plans) + 1
        axis = _axis_of(source)
        name = f"c{index:02d}-replicate-{axis}"
        category = spec.search.axes[axis].category if axis in spec.search.axes else None
        plans.append(
            CandidatePlan(
                name=name, role="replicate", axis=axis, axis_category=category, seed=seed_for(name), replicate_of=source
            )
        )
    active = policy.active_axes()
    slots = workers - len(plans)
    if not active or slots <= 0:
        return plans
    # Rotate the starting axis each round so that, with fewer slots than axes, every axis gets its turn.
    start = ((round_no - 1) * slots) % len(active)
    for i in range(slots):
        axis_state = active[(start + i) % len(active)]
        index = len(plans) + 1
        name = candidate_dirname(index, axis_state.name)
        plans.append(
            CandidatePlan(
                name=name, role="worker", axis=axis_state.name, axis_category=axis_state.category, seed=seed_for(name)
            )
        )
    return plans


def _axis_of(candidate_id: str) -> str:
    """`r0002/c03-optimizer` → `optimizer`; `r0003/c02-replicate-optimizer` → `optimizer`."""
    name = candidate_id.rsplit("/", 1)[-1]
    axis = name.split("-", 1)[1] if "-" in name else name
    return axis.removeprefix("replicate-")
