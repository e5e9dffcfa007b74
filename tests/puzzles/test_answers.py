"""Answer extraction and verification follow the challenge's public scoring rules."""

import pytest

from evotrain.puzzles.answers import accuracy, extract_answer, score_by_domain, score_output, verify


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The rule is NOT. \\boxed{10110010}", "10110010"),
        ("first \\boxed{1} then \\boxed{2}", "2"),  # the last box wins
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # braces nest
        ("\\boxed{ XLII }", "XLII"),  # stripped
        ("good \\boxed{7} then cut \\boxed{8", "7"),  # an unclosed box falls back to the previous one
        ("Reasoning...\nFinal answer: 12.5", "12.5"),
        ("final answer is: hello world\nmore", "hello world"),
        ("Final answer: 3\nFinal answer: 4", "4"),
        ("the value is 3 and then 4.25 meters", "4.25"),
        ("x = -7", "-7"),
        ("no digits here\nsecond line\n\n", "second line"),
        ("", ""),
        ("\\boxed{12} Final answer: 13", "12"),  # a box beats a final-answer line
    ],
)
def test_extract_answer(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


def test_binary_strings_match_exactly() -> None:
    assert verify("10110010", "10110010")
    assert not verify("1011001", "10110010")
    assert not verify("010110010", "10110010")  # would be equal as numbers
    assert not verify("10110010.0", "10110010")
    assert verify(" 0101 ", "0101")


@pytest.mark.parametrize(
    ("predicted", "gold", "ok"),
    [
        ("12.34", "12.34", True),
        ("12.40", "12.34", True),  # within 1 % relative
        ("12.5", "12.34", False),  # 1.3 % off
        ("0.000001", "0.0", True),  # absolute tolerance 1e-5 around zero
        ("0.001", "0.0", False),
        ("100.0", "100", False),  # "100" is a bit string: exact match only
        ("100", "100", True),
        ("1e2", "100.0", True),
        ("abc", "12", False),
        ("-3", "-3.00", True),
    ],
)
def test_numbers_match_with_tolerance(predicted: str, gold: str, ok: bool) -> None:
    assert verify(predicted, gold) is ok


def test_relative_tolerance_boundary() -> None:
    assert verify("101", "102.0")  # 0.98 % off
    assert not verify("100.9", "103.0")  # 2 % off


def test_other_strings_case_insensitive() -> None:
    assert verify("xlii", "XLII")
    assert verify("  Hello World ", "hello world")
    assert not verify("hello  world", "hello world")
    assert verify("@#+", "@#+")
    assert not verify("@#-", "@#+")


def test_score_output_and_accuracy() -> None:
    assert score_output("so \\boxed{XIV}", "XIV")
    assert not score_output("so \\boxed{XV}", "XIV")
    assert accuracy(["1", "2", "3", "4"], ["1", "2", "0", "0"]) == 0.5
    assert accuracy([], []) == 0.0
    with pytest.raises(ValueError):
        accuracy(["1"], ["1", "2"])


def test_score_by_domain_counts_missing_predictions_wrong() -> None:
    gold = {"a": ("cipher", "HELLO"), "b": ("cipher", "WORLD"), "c": ("numeral", "XII")}
    overall, domains, correct = score_by_domain({"a": "\\boxed{hello}", "c": "XI"}, gold)
    assert correct == {"a": True, "b": False, "c": False}
    assert overall == pytest.approx(1 / 3)
    assert domains == {"cipher": {"score": 0.5, "n": 2}, "numeral": {"score": 0.0, "n": 1}}
