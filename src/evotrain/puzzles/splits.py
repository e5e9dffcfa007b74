"""The splits of the puzzles substrate, and the distribution shift of the external split.

Splits (item counts are per family; every split has all six families):

* ``train``: the training pool the recipe's data pipeline draws from (with answers and worked traces);
* ``dev``: what workers evaluate on and may read (with answers);
* ``external``: the external target. Its prompts go into the substrate, its answers do NOT (they go to a
  separate answers file the external target holds). It is drawn from a deliberately SHIFTED distribution;
* ``control``: a second external split drawn from the dev distribution (no shift), answers held outside too;
* ``base``: the corpus of the base-training step (the base checkpoint is trained on it at substrate build).

MAINTAINERS ONLY -- the shift of the external split (never write this into a file inside the substrate; workers
must discover the decoupling from the external scores, as in the paper's round 3):

* equations: dev and the training pool use the template wordings 0/1 and mostly the plain numeric rules
  (complexity 1: add, subtract, concatenate, reverse-concatenate) plus some symbol rules (complexity 3).
  External uses the held-out wording 2 and only the "reversed digits" rules (complexity 2), which appear nowhere
  in the training pool. Neither plain numeric rules nor symbol rules: with a quarter of plain numeric rules,
  upsampling equations raised external equations too (measured 0.04 -> 0.09), and with 15 % symbol rules it still
  did (0.016 -> 0.048 over 5 seeds; the symbol rules are the training pool's). Upsampling equations in the data
  mix therefore raises dev equations (and control equations) without raising external equations: the proxy trap.
* bit_manipulation: external shows 3 examples instead of 5 and has more complex rules.
* unit_conversion: external has mostly (60 %, dev 20 %) non-round factors with decimal inputs.
* gravity: external has fall times up to 9 s instead of 6 s.
* cipher and numeral: no shift.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field

from evotrain.puzzles.generators import FAMILIES, Difficulty, Puzzle, generate


class FamilySpec(BaseModel):
    """A distribution over difficulties for one family."""

    model_config = ConfigDict(frozen=True)

    n_examples: tuple[int, int] = (3, 4)  # inclusive range
    complexity: dict[int, float] = Field(default_factory=lambda: {1: 1.0})  # level -> weight
    max_value: int = 20
    templates: tuple[int, ...] = (0, 1)

    def draw(self, rng: random.Random) -> Difficulty:
        levels = sorted(self.complexity)
        level = rng.choices(levels, weights=[self.complexity[c] for c in levels])[0]
        return Difficulty(
            n_examples=rng.randint(*self.n_examples),
            complexity=level,
            max_value=self.max_value,
            template=rng.choice(self.templates),
        )


# The dev distribution (also the training pool's, the base corpus's and the control split's).
DEV_MIX: dict[str, FamilySpec] = {
    "bit_manipulation": FamilySpec(n_examples=(5, 5), complexity={1: 0.9, 2: 0.1}),
    "cipher": FamilySpec(n_examples=(3, 4), complexity={1: 0.6, 2: 0.2, 3: 0.2}),
    "numeral": FamilySpec(n_examples=(3, 3), complexity={1: 0.35, 2: 0.35, 3: 0.3}, max_value=3999),
    "unit_conversion": FamilySpec(n_examples=(3, 3), complexity={1: 0.8, 2: 0.2}, max_value=20),
    "gravity": FamilySpec(n_examples=(3, 3), complexity={1: 0.8, 2: 0.2}, max_value=6),
    "equations": FamilySpec(n_examples=(3, 4), complexity={1: 0.8, 3: 0.2}, max_value=30),
}
# The shifted external distribution (see the module docstring).
EXTERNAL_MIX: dict[str, FamilySpec] = {
    **DEV_MIX,
    "bit_manipulation": FamilySpec(n_examples=(3, 3), complexity={1: 0.6, 2: 0.3, 3: 0.1}),
    "unit_conversion": FamilySpec(n_examples=(3, 3), complexity={1: 0.4, 2: 0.6}, max_value=20),
    "gravity": FamilySpec(n_examples=(3, 3), complexity={1: 0.8, 2: 0.2}, max_value=9),
    "equations": FamilySpec(n_examples=(3, 4), complexity={2: 1.0}, max_value=30, templates=(2,)),
}
MIXES: dict[str, dict[str, FamilySpec]] = {
    "train": DEV_MIX,
    "dev": DEV_MIX,
    "external": EXTERNAL_MIX,
    "control": DEV_MIX,
    "base": DEV_MIX,
}
SIZES = {"train": 1500, "dev": 50, "external": 50, "control": 50}
HIDDEN_SPLITS = ("external", "control")
# Equations get twice the items of the other families in dev, external and control: the hardest family, with the
# smallest gains, whose dev/external decoupling (the proxy trap) must be resolvable from seed and item noise.
EVALUATION_SPLITS = ("dev", *HIDDEN_SPLITS)
ITEMS_FACTOR = {"equations": 2}


def items_per_family(split: str, family: str, n_per_family: int) -> int:
    return n_per_family * ITEMS_FACTOR.get(family, 1) if split in EVALUATION_SPLITS else n_per_family


def puzzle(split: str, family: str, index: int, seed: int = 0) -> Puzzle:
    """Item ``index`` of ``family`` in ``split``: a pure function of its arguments."""
    key = f"{seed}/{split}/{family}/{index}"
    difficulty = MIXES[split][family].draw(random.Random(key + "/difficulty"))
    p = generate(family, key, difficulty)
    return p.model_copy(update={"id": f"{split}-{FAMILIES.index(family)}{index:05d}"})


def make_split(
    split: str, n_per_family: int | None = None, seed: int = 0, exclude: frozenset[str] = frozenset()
) -> list[Puzzle]:
    """All items of a split, family by family, skipping any whose prompt is in ``exclude``.

    ``n_per_family`` (default ``SIZES[split]``) is multiplied by ``ITEMS_FACTOR`` in the evaluation splits.

    The builder passes the dev and external prompts as ``exclude`` for the training pool: some families have
    small puzzle spaces, and an evaluation prompt must never be a training prompt.
    """
    n = SIZES[split] if n_per_family is None else n_per_family
    items: list[Puzzle] = []
    for family in FAMILIES:
        index, kept = 0, 0
        while kept < items_per_family(split, family, n):
            p = puzzle(split, family, index, seed)
            index += 1
            if p.prompt not in exclude:
                items.append(p)
                kept += 1
    return items
