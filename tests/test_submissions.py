"""Which candidates a round submits to the external target."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from evotrain.campaign.submissions import choose_submissions
from evotrain.policy.initial import initial_policy
from evotrain.records.policy import ExternalPlan, Policy

from .synthetic_campaign import SPEC, SyntheticCampaign


def _round(c: SyntheticCampaign) -> None:
    c.run(1, "c01-anchor", role="anchor", skill=0.6)
    c.run(1, "c02-optimizer", axis="optimizer", skill=0.7)  # lifts every domain: the objective's best
    c.run(1, "c03-schedule", axis="schedule", skill=0.66)
    c.run(1, "c04-data_mix", axis="data_mix", skill={"cipher": 0.6, "equations": 0.75, "numeral": 0.6})  # leans
    c.run(1, "c05-optimizer", axis="optimizer", skill=0.62)


def test_the_candidate_leaning_on_one_domain_is_probed_beside_the_objectives_best(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    _round(c)
    manifests = c.round_manifests(1)
    # equations +0.15 ranks third on the objective (+0.05 against +0.10 and +0.06), but it is the one to probe
    chosen = choose_submissions(ExternalPlan(submit_top=1, submit_probe=1), SPEC, 1, manifests)
    assert chosen == {"r0001/c02-optimizer", "r0001/c04-data_mix", "r0001/c01-anchor"}
    without = choose_submissions(ExternalPlan(submit_top=2, submit_probe=0), SPEC, 1, manifests)
    assert without == {"r0001/c02-optimizer", "r0001/c03-schedule", "r0001/c01-anchor"}


def test_a_candidate_already_submitted_as_the_best_is_not_probed_twice(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    _round(c)
    chosen = choose_submissions(
        ExternalPlan(submit_top=4, submit_probe=1, submit_anchor_every=0), SPEC, 1, c.round_manifests(1)
    )
    assert chosen == {"r0001/c02-optimizer", "r0001/c03-schedule", "r0001/c04-data_mix", "r0001/c05-optimizer"}


def test_a_policy_written_before_the_probe_keeps_its_hash() -> None:
    policy = initial_policy(SPEC)
    # what the version before the probe hashed: the same JSON without the field (nor `combine`, hashed when set)
    text = policy.model_dump_json(exclude={"combine": True, "external_plan": {"submit_probe"}})
    assert "submit_probe" not in json.loads(text)["external_plan"]
    read = Policy.model_validate_json(text)
    assert read.external_plan.submit_probe == 1
    assert read.sha256() == hashlib.sha256(text.encode()).hexdigest()
    assert read.model_copy(update={"external_plan": ExternalPlan(submit_probe=0)}).sha256() != read.sha256()
