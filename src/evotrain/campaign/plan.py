"""Who runs in a round: the policy's anchors (no change, fresh seeds; `noise.anchors_per_round`, one by default),
its replicates (`noise.replicates` fresh-seed runs of each recipe it names), its combination (the changes of the
candidates it names, run together; at most one), then one worker per active axis (distinct axes while there are
enough)."""

from __future__ import annotations

from evotrain.records.events import CandidatePlan
from evotrain.records.ids import candidate_dirname, derive_seed
from evotrain.records.policy import Policy
from evotrain.substrate.spec import SubstrateSpec


def plan_round(
    policy: Policy, spec: SubstrateSpec, round_no: int, workers: int, campaign_seed: int
) -> list[CandidatePlan]:
    """`workers` counts every candidate, the anchors included (the paper's 1 anchor + 7 axes is workers=8). The
    first anchor, `c01-anchor`, is the one gains are measured against; further anchors (`c02-anchor`, …) measure
    seed noise. At least one slot is left for a worker or replicate when `workers` allows it."""

    def seed_for(name: str) -> int:
        return derive_seed(campaign_seed, round_no, name)

    anchors = max(1, min(policy.noise.anchors_per_round, workers - 1))
    plans = []
    for index in range(1, anchors + 1):
        anchor = candidate_dirname(index, None)
        plans.append(CandidatePlan(name=anchor, role="anchor", seed=seed_for(anchor)))
    replicate_runs = [source for source in policy.replicate for _ in range(policy.noise.replicates)]
    for source in replicate_runs[: max(0, workers - len(plans))]:
        index = len(plans) + 1
        label = _axis_of(source)
        name = f"c{index:02d}-replicate-{label}"
        axis = label if label in spec.search.axes else None  # a combination's replicate has no single axis
        category = spec.search.axes[label].category if axis is not None else None
        plans.append(
            CandidatePlan(
                name=name, role="replicate", axis=axis, axis_category=category, seed=seed_for(name), replicate_of=source
            )
        )
    if len(policy.combine) >= 2 and workers - len(plans) >= 2:  # a combination never takes the last worker slot
        name = f"c{len(plans) + 1:02d}-combination"
        plans.append(CandidatePlan(name=name, role="combination", seed=seed_for(name), combines=list(policy.combine)))
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
    """`r0002/c03-optimizer` → `optimizer`; `r0003/c02-replicate-optimizer` → `optimizer`; `r0003/c05-combination`
    → `combination`."""
    name = candidate_id.rsplit("/", 1)[-1]
    axis = name.split("-", 1)[1] if "-" in name else name
    return axis.removeprefix("replicate-")
