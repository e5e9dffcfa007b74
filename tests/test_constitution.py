"""The constitution: loading it, and one refused violation (and a compliant update) per rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from evotrain.errors import ConfigError, ConstitutionViolation
from evotrain.policy.constitution import DEFAULT_CONSTITUTION_PATH, Constitution, load_constitution
from evotrain.policy.constitution_checks import check_policy_update, enforce
from evotrain.policy.initial import initial_policy
from evotrain.policy.meta_protocol import MetaInputs
from evotrain.policy.meta_rules import RuleMetaAgent
from evotrain.records.evidence import Evidence
from evotrain.records.manifest import Manifest
from evotrain.records.policy import DeadEnd, Policy, StandingRecipe

from .synthetic_campaign import BASE_RECIPE, SPEC, SyntheticCampaign, change, diff_for

LR3 = BASE_RECIPE.replace("lr = 0.001", "lr = 0.003")
CONSTITUTION = load_constitution(DEFAULT_CONSTITUTION_PATH)


def test_default_constitution_loads_with_its_rules() -> None:
    assert CONSTITUTION.external_authoritative and CONSTITUTION.dead_ends_append_only
    assert CONSTITUTION.rotate_after_rounds_without_external_gain == 2
    assert "Don't waste budget on" in CONSTITUTION.text


def test_constitution_without_a_toml_block_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.md"
    path.write_text("# rules\nbe good\n")
    with pytest.raises(ConfigError, match="```toml") as err:
        load_constitution(path)
    assert err.value.path == path


def test_constitution_with_a_bad_field_names_it(tmp_path: Path) -> None:
    path = tmp_path / "c.md"
    text = DEFAULT_CONSTITUTION_PATH.read_text().replace("min_k = 1.0", "min_k = -1\nrotate_every = 3")
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_constitution(path)
    assert "min_k" in err.value.message and "rotate_every" in err.value.message


class Scenario:
    """Round 1: an anchor (external 0.70), a clear winner, a flat candidate and a near-threshold one."""

    def __init__(self, root: Path) -> None:
        self.c = SyntheticCampaign(root)
        self.previous = initial_policy(SPEC)
        self.c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.70)
        self.c.run(
            1,
            "c02-optimizer",
            axis="optimizer",
            skill=0.75,
            external=0.72,
            recipe=LR3,
            changes=[change("optimizer", "lr", 0.001, 0.003)],
        )
        self.c.run(1, "c03-data_mix", axis="data_mix", skill=0.62)
        self.c.run(1, "c04-schedule", axis="schedule", skill=0.65, recipe=BASE_RECIPE.replace("10", "20"))
        self.evidence = self.c.evidence(1, self.previous)
        self.history = self.c.history(1)

    def proposed(self) -> Policy:
        return (
            RuleMetaAgent().propose(MetaInputs(self.previous, self.evidence, SPEC, self.history, CONSTITUTION)).policy
        )

    def breaches(
        self,
        proposed: Policy,
        *,
        evidence: Evidence | None = None,
        previous: Policy | None = None,
        history: list[Manifest] | None = None,
        constitution: Constitution = CONSTITUTION,
    ) -> list[str]:
        return [
            b.rule
            for b in check_policy_update(
                previous=previous or self.previous,
                proposed=proposed,
                evidence=evidence or self.evidence,
                constitution=constitution,
                spec=SPEC,
                history=history or self.history,
            )
        ]


def _with_recipe(policy: Policy, source: str, files: dict[str, str] | None = None) -> Policy:
    recipe = StandingRecipe(files=files or {"recipe.toml": LR3}, diff=diff_for(LR3), source=source)
    return policy.model_copy(update={"standing_recipe": recipe})


@pytest.fixture
def s(tmp_path: Path) -> Scenario:
    return Scenario(tmp_path)


def test_the_rule_agents_proposal_is_compliant(s: Scenario) -> None:
    proposed = s.proposed()
    assert s.breaches(proposed) == []
    assert (
        enforce(
            previous=s.previous,
            proposed=proposed,
            evidence=s.evidence,
            constitution=CONSTITUTION,
            spec=SPEC,
            history=s.history,
        )
        == []
    )


def test_enforce_raises_listing_every_breach(s: Scenario) -> None:
    bad = s.proposed().model_copy(update={"parent_sha256": "f" * 64, "round": 5})
    with pytest.raises(ConstitutionViolation) as err:
        enforce(
            previous=s.previous,
            proposed=bad,
            evidence=s.evidence,
            constitution=CONSTITUTION,
            spec=SPEC,
            history=s.history,
        )
    assert err.value.message.count("[policy_chain]") == 2


def test_rule_1_promotion_against_the_external_target_is_refused(s: Scenario) -> None:
    s.c.run(1, "c05-data_mix", axis="data_mix", skill=0.8, external=0.66, recipe=LR3)  # dev up, external down
    evidence = s.c.evidence(1, s.previous)
    history = s.c.history(1)
    base = s.proposed()
    assert "external_authoritative" in s.breaches(
        _with_recipe(base, "r0001/c05-data_mix"), evidence=evidence, history=history
    )
    # above its anchor, but below the best external known before the round
    previous = s.previous.model_copy(update={"best_external": 0.75, "best_external_source": "r0000/x"})
    proposed = _with_recipe(base.model_copy(update={"parent_sha256": previous.sha256()}), "r0001/c02-optimizer")
    assert s.breaches(proposed, previous=previous) == ["external_authoritative"]
    assert s.breaches(_with_recipe(base, "r0001/c02-optimizer")) == []
    # below the best known by less than the external margin (k · the default external sd 0.01 = 0.02): the best
    # known is the maximum of noisy scores, so this is no contradiction
    assert previous.noise.external_margin() == pytest.approx(0.02)
    close = s.previous.model_copy(update={"best_external": 0.735, "best_external_source": "r0000/x"})
    proposed = _with_recipe(base.model_copy(update={"parent_sha256": close.sha256()}), "r0001/c02-optimizer")
    assert s.breaches(proposed, previous=close) == []


def test_rule_2_a_decoupled_domain_must_be_untrusted_or_downweighted(s: Scenario) -> None:
    proposed = s.proposed()
    flagged = s.evidence.model_copy(deep=True)
    flagged.calibration.decoupled_domains = ["equations"]
    assert s.breaches(proposed, evidence=flagged) == ["gap_calibration"]
    lowered = proposed.model_copy(deep=True)
    lowered.objective.domain_weights["equations"] = 0.5
    assert s.breaches(lowered, evidence=flagged) == []
    untrusted = proposed.model_copy(deep=True)
    untrusted.objective.untrusted_domains = ["equations"]
    assert s.breaches(untrusted, evidence=flagged) == []


def _plateau(c: SyntheticCampaign) -> list[Manifest]:
    """Rounds 2 and 3 explore only the optimization category and never beat round 1's external 0.72."""
    for r in (2, 3):
        c.run(r, "c01-anchor", role="anchor", skill=0.6, external=0.70)
        c.run(r, "c02-optimizer", axis="optimizer", skill=0.6, external=0.71)
        c.run(r, "c03-schedule", axis="schedule", skill=0.6, external=0.70)
    return c.history(3)


def test_rule_3_rotation_after_two_rounds_without_external_gain(s: Scenario) -> None:
    history = _plateau(s.c)
    previous = s.previous.model_copy(update={"round": 3})
    evidence = s.c.evidence(3, previous)
    proposed = previous.model_copy(
        deep=True, update={"round": 4, "parent_sha256": previous.sha256(), "rounds_without_external_gain": 2}
    )
    for axis in proposed.axes:
        axis.status = "retired" if axis.category == "data" else "active"
    assert s.breaches(proposed, previous=previous, evidence=evidence, history=history) == ["axis_rotation"]
    understated = proposed.model_copy(update={"rounds_without_external_gain": 0})
    assert s.breaches(understated, previous=previous, evidence=evidence, history=history).count("axis_rotation") == 2
    rotated = proposed.model_copy(deep=True)
    for axis in rotated.axes:
        axis.status = "active" if axis.category == "data" else "retired"
    assert s.breaches(rotated, previous=previous, evidence=evidence, history=history) == []


def test_rule_3_does_not_require_rotation_when_the_split_could_not_resolve_the_gains(s: Scenario) -> None:
    for r, anchor_external in ((2, 0.60), (3, 0.66)):  # anchors this noisy hide any gain of the size tested
        s.c.run(r, "c01-anchor", role="anchor", skill=0.6, external=anchor_external)
        s.c.run(r, "c02-optimizer", axis="optimizer", skill=0.6, external=0.71)
        s.c.run(r, "c03-schedule", axis="schedule", skill=0.6, external=0.70)
    history = s.c.history(3)
    previous = s.previous.model_copy(update={"round": 3})
    evidence = s.c.evidence(3, previous)
    assert evidence.calibration.external_power is not None and evidence.calibration.external_power.resolves is False
    proposed = previous.model_copy(
        deep=True, update={"round": 4, "parent_sha256": previous.sha256(), "rounds_without_external_gain": 2}
    )
    for axis in proposed.axes:  # only the explored category stays active: rule 3 would refuse this otherwise
        axis.status = "retired" if axis.category == "data" else "active"
    notes = enforce(
        previous=previous, proposed=proposed, evidence=evidence, constitution=CONSTITUTION, spec=SPEC, history=history
    )
    assert len(notes) == 1 and "could not have resolved a gain of the size tested" in notes[0]


def test_rule_3_allows_when_no_other_category_exists(s: Scenario) -> None:
    history = _plateau(s.c)
    s.c.run(3, "c04-data_mix", axis="data_mix", skill=0.6, external=0.70)  # every category explored
    history = s.c.history(3)
    previous = s.previous.model_copy(update={"round": 3})
    evidence = s.c.evidence(3, previous)
    proposed = previous.model_copy(
        update={"round": 4, "parent_sha256": previous.sha256(), "rounds_without_external_gain": 2}
    )
    notes = enforce(
        previous=previous, proposed=proposed, evidence=evidence, constitution=CONSTITUTION, spec=SPEC, history=history
    )
    assert len(notes) == 1 and "no other category exists" in notes[0]


def test_rule_4_dead_ends_only_grow(s: Scenario) -> None:
    entry = DeadEnd(round=1, axis="optimizer", knob="lr", direction="increase", description="lr up hurt")
    previous = s.previous.model_copy(update={"dead_ends": [entry]})
    proposed = s.proposed().model_copy(update={"parent_sha256": previous.sha256()})
    assert s.breaches(proposed.model_copy(update={"dead_ends": []}), previous=previous) == ["dead_ends_append_only"]
    edited = entry.model_copy(update={"description": "fine after all"})
    assert s.breaches(proposed.model_copy(update={"dead_ends": [edited]}), previous=previous) == [
        "dead_ends_append_only"
    ]
    more = DeadEnd(round=2, axis="schedule", knob="warmup", direction="decrease", description="no")
    assert s.breaches(proposed.model_copy(update={"dead_ends": [entry, more]}), previous=previous) == []


def test_rule_5_the_standing_recipe_never_touches_frozen_or_undeclared_paths(s: Scenario) -> None:
    base = s.proposed()
    frozen = _with_recipe(base, "r0001/c02-optimizer", {"recipe.toml": LR3, "eval/evaluate.py": "cheat()"})
    assert s.breaches(frozen) == ["substrate_frozen"]
    undeclared = _with_recipe(base, "r0001/c02-optimizer", {"recipe.toml": LR3, "train.py": "x"})
    assert s.breaches(undeclared) == ["substrate_frozen"]


def test_rule_6_promotion_needs_a_gain_above_the_threshold(s: Scenario) -> None:
    base = s.proposed()
    assert s.breaches(_with_recipe(base, "r0001/c03-data_mix")) == ["promotion_threshold"]  # gain 0.02 < 0.04
    assert s.breaches(_with_recipe(base, "r0001/c04-schedule")) == ["promotion_threshold"]  # near: needs a replicate
    assert s.breaches(_with_recipe(base, "r0001/c02-optimizer")) == []
    # a replicate that confirms the near-threshold win makes it promotable
    s.c.run(2, "c01-anchor", role="anchor", skill=0.6)
    s.c.run(
        2,
        "c02-replicate-schedule",
        role="replicate",
        axis="schedule",
        replicate_of="r0001/c04-schedule",
        skill=0.66,
        recipe=BASE_RECIPE.replace("10", "20"),
    )
    previous = base
    evidence = s.c.evidence(2, previous)
    proposed = _with_recipe(
        previous.model_copy(update={"round": 3, "parent_sha256": previous.sha256()}), "r0001/c04-schedule"
    )
    assert s.breaches(proposed, previous=previous, evidence=evidence, history=s.c.history(2)) == []


def test_rule_6_policy_chain_and_min_k(s: Scenario) -> None:
    proposed = s.proposed()
    assert s.breaches(proposed.model_copy(update={"parent_sha256": None})) == ["policy_chain"]
    assert s.breaches(proposed.model_copy(update={"round": 3})) == ["policy_chain"]
    low_k = proposed.model_copy(deep=True)
    low_k.noise.k = 0.5
    assert s.breaches(low_k) == ["promotion_threshold"]
