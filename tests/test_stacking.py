"""Changes stack in the standing recipe only once tested together: a replicate whose source ran before the standing
recipe changed re-runs the source's knob changes on top of the standing recipe in force (a real campaign on the
synthetic substrate, the offline mutator and the rule meta agent)."""

from __future__ import annotations

from pathlib import Path

from evotrain.campaign.store import CampaignStore
from evotrain.records.layout import CampaignPaths

from .test_synthetic_benchmark import B


def test_a_replicate_after_a_promotion_runs_its_change_on_the_new_standing_recipe(tmp_path: Path) -> None:
    # Seed 4, no trap: round 2 promotes a schedule change and round 3 re-runs a round-1 regularization win on it.
    result = B.run_campaign(
        label="t", seed=4, arm="control", trap_round=3, rounds=3, workers=8, work=tmp_path, keep=True
    )
    assert result.error is None
    paths = CampaignPaths(tmp_path / "t-s0004-control" / "run")
    store = CampaignStore(paths)
    manifests = {m.candidate_id: m for m in store.manifests(up_to_round=3)}
    rebased = [
        m
        for m in manifests.values()
        if m.role == "replicate"
        and m.replicate_of is not None
        and store.policy(m.round).standing_recipe.files
        != store.policy(manifests[m.replicate_of].round).standing_recipe.files
    ]
    assert rebased, "the campaign re-ran no win on a newer standing recipe"
    for m in rebased:
        source = manifests[m.replicate_of or ""]
        anchor = manifests[f"r{m.round:04d}/c01-anchor"]
        assert "applied on the standing recipe in force" in m.rationale
        moved = {f"{c.axis}.{c.knob}" for c in source.changes}
        # every knob the source moved holds the source's value; every other knob the standing recipe's
        for knob, value in m.knob_values.items():
            expected = source.knob_values[knob] if knob in moved else anchor.knob_values[knob]
            assert value == expected, knob
        assert {(c.key, c.new) for c in m.changes} == {(c.key, c.new) for c in source.changes}
    # a later promotion of a rebased replicate keeps the standing recipe's earlier changes
    final = store.policy(4)
    if final.standing_recipe.source in {m.replicate_of for m in rebased}:
        assert len({c.knob for c in final.standing_recipe.changes}) >= 2
