"""Splits are deterministic, disjoint, and the external split is shifted where (and only where) intended."""

from collections import Counter

from evotrain.puzzles.generators import FAMILIES
from evotrain.puzzles.splits import DEV_MIX, EXTERNAL_MIX, MIXES, make_split, puzzle


def test_splits_are_deterministic_and_seeded() -> None:
    assert make_split("dev", 5) == make_split("dev", 5)
    assert make_split("dev", 5, seed=1) != make_split("dev", 5, seed=0)
    assert puzzle("train", "cipher", 3) == make_split("train", 4)[FAMILIES.index("cipher") * 4 + 3]


def test_every_split_has_every_family_and_unique_ids() -> None:
    for split in ("train", "dev", "external", "control"):
        items = make_split(split, 10)
        factor = {"equations": 2} if split != "train" else {}  # equations get twice the evaluation items
        assert Counter(p.family for p in items) == {f: 10 * factor.get(f, 1) for f in FAMILIES}
        assert len({p.id for p in items}) == len(items)


def test_train_pool_excludes_evaluation_prompts() -> None:
    held_out = frozenset(p.prompt for split in ("dev", "external", "control") for p in make_split(split, 30))
    train = make_split("train", 300, exclude=held_out)
    assert len(train) == 300 * len(FAMILIES)
    assert not held_out & {p.prompt for p in train}
    assert held_out & {p.prompt for p in make_split("train", 300)}  # small puzzle spaces do collide


def test_control_is_unshifted_and_external_is_shifted() -> None:
    assert MIXES["control"] == MIXES["dev"] == MIXES["train"] == DEV_MIX
    shifted = {f for f in FAMILIES if EXTERNAL_MIX[f] != DEV_MIX[f]}
    assert shifted == {"bit_manipulation", "unit_conversion", "gravity", "equations"}
    external = make_split("external", 200)
    dev = make_split("dev", 200)

    def eq_stats(items: list) -> tuple[set[int], float]:
        eq = [p for p in items if p.family == "equations"]
        rev = sum(p.rule.startswith("reversed") for p in eq) / len(eq)
        return {p.difficulty.template for p in eq}, rev

    assert eq_stats(dev) == ({0, 1}, 0.0)  # the reversed-digit rules never appear in dev (nor in train)
    templates, reversed_share = eq_stats(external)
    assert templates == {2} and reversed_share == 1.0
    external_eq = [p for p in external if p.family == "equations"]
    assert not any(p.difficulty.complexity == 1 for p in external_eq)  # no rule the training pool teaches as numbers
    bits = [p for p in external if p.family == "bit_manipulation"]
    assert {p.difficulty.n_examples for p in bits} == {3}
