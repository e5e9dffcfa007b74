"""The shipped base checkpoint: it is the default profile's (so a fresh machine never trains one), and it knows the
families it was trained on (so a change to the generators that the shipped weights no longer match is caught)."""

import random

import torch

from evotrain.puzzles.answers import verify
from evotrain.puzzles.base import BASE_FAMILY_CYCLE, SHIPPED, BaseConfig, base_checkpoint, document, shipped_fingerprint
from evotrain.puzzles.generators import FAMILIES, generate
from evotrain.puzzles.lm import greedy_generate, load_model, load_tokenizer
from evotrain.puzzles.splits import MIXES


def test_the_package_ships_the_default_profiles_base_checkpoint() -> None:
    assert shipped_fingerprint() == BaseConfig().fingerprint(), (
        "the shipped base checkpoint is stale: retrain it with `python -m evotrain.puzzles.base` and copy it to "
        "src/evotrain/puzzles/substrate_template/model/base (see docs/puzzles.md)"
    )
    assert base_checkpoint(BaseConfig()) == SHIPPED


def test_base_corpus_gives_bit_manipulation_a_double_share() -> None:
    families = [BASE_FAMILY_CYCLE[i % len(BASE_FAMILY_CYCLE)] for i in range(700)]
    assert families.count("bit_manipulation") == 200 and all(families.count(f) == 100 for f in FAMILIES[1:])
    bits = [document(i, 0) for i in (0, 6)]  # the cycle's two bit_manipulation slots
    assert all(doc.splitlines()[-1].removeprefix("Answer: ").strip("01") == "" for doc in bits)


def test_the_shipped_base_answers_the_easy_rules_of_its_corpus() -> None:
    """Numbers to Roman numerals and whole-g gravity are learnt almost perfectly by base training; a generator
    change that the shipped weights do not match drops them to chance."""
    torch.set_num_threads(1)
    model, tok = load_model(SHIPPED, SHIPPED), load_tokenizer(SHIPPED)
    puzzles = []
    for family, complexity in (("numeral", 1), ("gravity", 1)):
        spec = MIXES["dev"][family]
        for i in range(12):
            d = spec.draw(random.Random(f"base-test/{family}/{i}")).model_copy(update={"complexity": complexity})
            puzzles.append(generate(family, f"base-test/{family}/{i}", d))
    outputs = greedy_generate(model, tok, [p.prompt for p in puzzles], max_new_tokens=20)
    correct = [verify(out.split("Answer:")[-1].strip(), p.answer) for p, out in zip(puzzles, outputs, strict=True)]
    assert sum(correct) >= 0.75 * len(puzzles), list(zip([p.answer for p in puzzles], outputs, strict=True))
