"""Answer extraction and verification as the challenge scores them: the rule table of docs/puzzles.md, row by row,
and properties of the rules over generated outputs (hypothesis)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from evotrain.puzzles.answers import (
    NOT_FOUND,
    accuracy,
    boxed_candidates,
    extract_answer,
    score_by_domain,
    score_output,
    verify,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "puzzles.md"
PROPERTY_EXAMPLES = 500  # per property test; docs/puzzles.md states the number


def _cell(text: str) -> str:
    return "" if text == "(empty)" else text.removeprefix("`").removesuffix("`")


def rule_table() -> list[tuple[str, str, str, str, bool]]:
    """(case, model output, gold, extracted, correct) of every row of the table in docs/puzzles.md."""
    block = DOCS.read_text().split("<!-- scorer-rules:start -->")[1].split("<!-- scorer-rules:end -->")[0]
    rows = []
    for line in block.strip().splitlines()[2:]:  # after the header and its rule
        case, output, gold, extracted, correct, _old = (c.strip() for c in line.strip()[1:-1].split(" | "))
        assert correct in {"yes", "no"}, line
        rows.append((case, _cell(output), _cell(gold), _cell(extracted), correct == "yes"))
    return rows


RULES = rule_table()


def test_the_rule_table_is_there() -> None:
    assert len(RULES) >= 30
    assert len({case for case, *_ in RULES}) == len(RULES)  # one row a case


@pytest.mark.parametrize(("case", "output", "gold", "extracted", "correct"), RULES, ids=[r[0] for r in RULES])
def test_rule_table_row(case: str, output: str, gold: str, extracted: str, correct: bool) -> None:
    assert extract_answer(output) == extracted
    assert verify(extract_answer(output), gold) is correct
    assert score_output(output, gold) is correct


# ---- properties ----

# Text around answers: anything but the box opener, so a generated filler opens no box by chance.
filler = st.text(st.characters(codec="utf-8", exclude_characters="\\"), max_size=30)
answer_text = st.text(st.characters(codec="utf-8", exclude_characters="\\"), min_size=1, max_size=20).filter(
    lambda s: s.strip() != "" and "}" not in s
)


@settings(max_examples=PROPERTY_EXAMPLES)
@given(before=filler, answer=answer_text, after=filler.filter(lambda s: "}" not in s))
@example(before="", answer="x", after="")
def test_a_closed_last_box_is_the_answer(before: str, answer: str, after: str) -> None:
    assert extract_answer(f"{before}\\boxed{{{answer}}}{after}") == answer.strip()


@settings(max_examples=PROPERTY_EXAMPLES)
@given(first=answer_text, inner=filler, empties=st.lists(st.sampled_from(["", " ", "\n\t"]), min_size=1, max_size=3))
def test_empty_last_boxes_fall_back_to_the_last_non_empty_one(first: str, inner: str, empties: list[str]) -> None:
    text = f"\\boxed{{{first}}}{inner.replace('}', '')}" + "".join(f"\\boxed{{{e}}}" for e in empties)
    assert extract_answer(text) == first.strip()


@settings(max_examples=PROPERTY_EXAMPLES)
@given(parts=st.lists(filler, min_size=1, max_size=4))
def test_a_candidate_runs_to_the_last_close_before_the_next_box(parts: list[str]) -> None:
    # Every box's content is one generated part followed by "}" and trailing text with no further "}".
    text = "".join(f"\\boxed{{{p}}}tail" for p in parts)
    assert boxed_candidates(text) == parts


@settings(max_examples=PROPERTY_EXAMPLES)
@given(text=filler)
def test_without_a_box_the_answer_is_the_last_number_or_not_found(text: str) -> None:
    numbers = re.findall(r"-?\d+(?:\.\d+)?", text)
    assert extract_answer(text) == (numbers[-1] if numbers else NOT_FOUND)


@settings(max_examples=PROPERTY_EXAMPLES)
@given(x=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_a_number_matches_itself_and_not_one_percent_and_more_away(x: float) -> None:
    gold = repr(x)
    assert verify(repr(x), gold)
    assert verify(f"{x:e}", gold)  # exponent form parses with float()
    far = x * 1.03 if abs(x) > 1e-3 else x + 1.0
    assert not verify(repr(far), gold)


@settings(max_examples=PROPERTY_EXAMPLES)
@given(bits=st.text("01", min_size=1, max_size=12), pad=st.text("0", min_size=1, max_size=3))
def test_a_bit_string_gold_matches_exactly(bits: str, pad: str) -> None:
    assert verify(bits, bits) and verify(f" {bits} ", bits)
    assert not verify(pad + bits, bits)  # equal as numbers, not as bit strings
    assert not verify(bits + ".0", bits)


@settings(max_examples=PROPERTY_EXAMPLES)
@given(
    gold=st.text(st.characters(codec="ascii", categories=["L", "P", "S", "Zs"]), min_size=1, max_size=15),
    flip=st.booleans(),
)
def test_strings_that_do_not_parse_compare_case_insensitively(gold: str, flip: bool) -> None:
    predicted = gold.swapcase() if flip else gold
    try:
        float(gold)
    except ValueError:
        assert verify(predicted, gold) is (predicted.strip().lower() == gold.strip().lower())
    else:  # "inf", "nan", "Infinity" ... are numbers to float(): nan matches nothing, inf matches inf
        number = float(gold)
        assert verify(predicted, gold) is (not math.isnan(number))


# ---- aggregation ----


def test_score_output_and_accuracy() -> None:
    assert score_output("so \\boxed{XIV}", "XIV")
    assert not score_output("so \\boxed{XV}", "XIV")
    assert accuracy(["1", "2", "3", "4"], ["1", "2", "0", "0"]) == 0.5
    assert accuracy([], []) == 0.0
    with pytest.raises(ValueError):
        accuracy(["1"], ["1", "2"])


def test_score_by_domain_counts_missing_predictions_wrong() -> None:
    gold = {"a": ("cipher", "HELLO"), "b": ("cipher", "WORLD"), "c": ("numeral", "XII"), "d": ("gravity", "4.5")}
    predictions = {"a": "\\boxed{hello}", "c": "XII", "d": "it falls 4.5"}  # a bare word is not found; a number is
    overall, domains, correct = score_by_domain(predictions, gold)
    assert correct == {"a": True, "b": False, "c": False, "d": True}
    assert overall == pytest.approx(2 / 4)
    assert domains == {
        "cipher": {"score": 0.5, "n": 2},
        "gravity": {"score": 1.0, "n": 1},
        "numeral": {"score": 0.0, "n": 1},
    }
