"""The round plan reads the policy's noise rules: anchors per round and replicates per near-threshold win."""

from __future__ import annotations

from evotrain.campaign.plan import plan_round
from evotrain.policy.initial import initial_policy

from .synthetic_campaign import SPEC


def test_one_anchor_and_one_replicate_by_default() -> None:
    policy = initial_policy(SPEC).model_copy(update={"replicate": ["r0001/c02-schedule"]})
    plans = plan_round(policy, SPEC, 2, 4, 0)
    assert [(p.name, p.role) for p in plans[:2]] == [("c01-anchor", "anchor"), ("c02-replicate-schedule", "replicate")]
    assert [p.role for p in plans[2:]] == ["worker", "worker"]


def test_anchors_per_round_and_replicates_come_from_the_policy() -> None:
    policy = initial_policy(SPEC).model_copy(deep=True, update={"replicate": ["r0001/c02-schedule"]})
    policy.noise.anchors_per_round = 2
    policy.noise.replicates = 2
    plans = plan_round(policy, SPEC, 2, 6, 0)
    assert [(p.name, p.role) for p in plans][:4] == [
        ("c01-anchor", "anchor"),
        ("c02-anchor", "anchor"),
        ("c03-replicate-schedule", "replicate"),
        ("c04-replicate-schedule", "replicate"),
    ]
    assert all(p.replicate_of == "r0001/c02-schedule" for p in plans[2:4])
    assert [p.role for p in plans[4:]] == ["worker", "worker"]
    assert len({p.seed for p in plans}) == len(plans)  # every run its own seed
    # a slot is always left for someone who changes something
    policy.noise.anchors_per_round = 5
    assert [p.role for p in plan_round(policy, SPEC, 2, 3, 0)] == ["anchor", "anchor", "replicate"]
    assert [p.role for p in plan_round(policy, SPEC, 2, 1, 0)] == ["anchor"]


def test_a_combination_follows_the_replicates_and_never_takes_the_last_worker_slot() -> None:
    policy = initial_policy(SPEC).model_copy(
        update={"replicate": ["r0001/c02-optimizer"], "combine": ["r0001/c02-optimizer", "r0001/c03-schedule"]}
    )
    plans = plan_round(policy, SPEC, round_no=2, workers=5, campaign_seed=0)
    assert [p.role for p in plans] == ["anchor", "replicate", "combination", "worker", "worker"]
    combination = plans[2]
    assert combination.name == "c03-combination" and combination.axis is None
    assert combination.combines == ["r0001/c02-optimizer", "r0001/c03-schedule"]
    assert [p.role for p in plan_round(policy, SPEC, round_no=2, workers=3, campaign_seed=0)] == [
        "anchor",
        "replicate",
        "worker",
    ]
    again = policy.model_copy(update={"replicate": ["r0002/c03-combination"], "combine": []})
    replicate = plan_round(again, SPEC, round_no=3, workers=4, campaign_seed=0)[1]
    assert replicate.name == "c02-replicate-combination" and replicate.axis is None
