"""Every generator is deterministic given its seed, respects its difficulty and computes correct answers."""

import re

import pytest

from evotrain.puzzles.answers import verify
from evotrain.puzzles.generators import (
    FAMILIES,
    TEMPLATES,
    Difficulty,
    from_roman,
    generate,
    to_roman,
)

ALL = [(f, c) for f in FAMILIES for c in (1, 2, 3)]


def _examples(prompt: str) -> list[str]:
    return prompt.splitlines()[1:-1]


@pytest.mark.parametrize(("family", "complexity"), ALL)
def test_deterministic_and_seed_sensitive(family: str, complexity: int) -> None:
    d = Difficulty(complexity=complexity)
    assert generate(family, "s-1", d) == generate(family, "s-1", d)
    prompts = {generate(family, f"s-{i}", d).prompt for i in range(20)}
    assert len(prompts) >= 15


@pytest.mark.parametrize(("family", "complexity"), ALL)
@pytest.mark.parametrize("template", [0, 1, 2])
def test_prompt_shape_and_difficulty(family: str, complexity: int, template: int) -> None:
    for n in (2, 5):
        d = Difficulty(complexity=complexity, n_examples=n, template=template, max_value=30)
        p = generate(family, f"shape-{n}", d)
        assert p.prompt.startswith("In Alice's Wonderland, ")
        assert p.family == family and p.difficulty == d and p.answer
        lines = p.prompt.splitlines()
        header, _line, ask = TEMPLATES[family][template]
        assert lines[0].endswith(header)
        assert len(_examples(p.prompt)) == n
        assert lines[-1].split("{q}")[0].startswith(ask.split("{q}")[0])


def test_unknown_family() -> None:
    with pytest.raises(ValueError):
        generate("chess", "x")


# ---- bit_manipulation -----------------------------------------------------------------------------------
def _apply_bits(rule: str, trace: str, x: str) -> str:
    """An independent re-implementation of the named bit rules, on strings."""
    name = trace.removeprefix("rule: ")
    if " then " in name:
        first, second = name.split(" then ")
        return _apply_bits("", "rule: " + second, _apply_bits("", "rule: " + first, x))
    words = name.split()
    if name == "not":
        return x.translate(str.maketrans("01", "10"))
    if name == "reverse":
        return x[::-1]
    if name == "swap nibbles":
        return x[4:] + x[:4]
    if words[0] in ("rotate", "shift"):
        k = int(words[2])
        if words[0] == "rotate":
            return x[k:] + x[:k] if words[1] == "left" else x[-k:] + x[:-k]
        return x[k:] + "0" * k if words[1] == "left" else "0" * k + x[:-k]
    if words[0] in ("xor", "and", "or"):
        m = words[1]
        ops = {"xor": lambda a, b: a ^ b, "and": lambda a, b: a & b, "or": lambda a, b: a | b}
        return "".join(str(ops[words[0]](int(a), int(b))) for a, b in zip(x, m, strict=True))
    left, right = x[1:] + x[0], x[-1] + x[:-1]
    if name == "majority":
        return "".join(str(int(int(a) + int(b) + int(c) >= 2)) for a, b, c in zip(x, left, right, strict=True))
    assert name == "choice"
    return "".join(b if a == "1" else c for a, b, c in zip(x, left, right, strict=True))


@pytest.mark.parametrize("complexity", [1, 2, 3])
def test_bit_manipulation_answers(complexity: int) -> None:
    names = set()
    for i in range(60):
        p = generate("bit_manipulation", f"b-{i}", Difficulty(complexity=complexity))
        names.add(p.rule)
        pairs = [line.split(" -> ") for line in _examples(p.prompt)]
        query = p.prompt.splitlines()[-1].split(": ")[-1]
        assert re.fullmatch(r"[01]{8}", query) and re.fullmatch(r"[01]{8}", p.answer)
        for x, y in pairs:
            assert _apply_bits(p.rule, p.trace, x) == y
        assert _apply_bits(p.rule, p.trace, query) == p.answer
        assert query not in [x for x, _ in pairs]
    assert len(names) >= 3
    if complexity == 1:
        assert names <= {"not", "reverse", "rotate left", "rotate right", "shift left", "shift right"}


# ---- cipher -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("complexity", [1, 2, 3])
def test_cipher_is_a_consistent_solvable_substitution(complexity: int) -> None:
    for i in range(40):
        p = generate("cipher", f"c-{i}", Difficulty(complexity=complexity))
        mapping: dict[str, str] = {}
        for line in _examples(p.prompt):
            coded, plain = line.split(" -> ")
            assert len(coded) == len(plain)
            for c, q in zip(coded, plain, strict=True):
                assert mapping.setdefault(c, q) == q  # one cipher letter, one plain letter
        query = p.prompt.splitlines()[-1].split(": ")[-1]
        assert "".join(mapping.get(c, c) for c in query) == p.answer  # solvable from the examples alone
        assert p.answer.replace(" ", "").isupper()
        shifts = {(ord(c) - ord(q)) % 26 for c, q in mapping.items() if c != " "}
        if complexity < 3:
            assert len(shifts) == 1 and p.rule == f"shift {shifts.pop()}"
        if complexity == 1:
            assert 1 <= int(p.rule.split()[1]) <= 3
        n_words = {len(line.split(" -> ")[1].split()) for line in _examples(p.prompt)}
        assert n_words == {2}


# ---- numeral ------------------------------------------------------------------------------------------------
def test_roman_round_trip() -> None:
    assert to_roman(1994) == "MCMXCIV" and to_roman(100) == "C" and to_roman(49) == "XLIX"
    assert all(from_roman(to_roman(n)) == n for n in range(1, 400))
    with pytest.raises(ValueError):
        to_roman(0)


@pytest.mark.parametrize("complexity", [1, 2])
def test_numeral_answers_and_range(complexity: int) -> None:
    directions = set()
    for i in range(40):
        p = generate("numeral", f"n-{i}", Difficulty(complexity=complexity, max_value=100))
        q = p.prompt.splitlines()[-1].split("number ")[-1].split(" in ")[0]
        for line in [*_examples(p.prompt), f"{q} -> {p.answer}"]:
            x, y = line.split(" -> ")
            n, roman = (int(x), y) if x.isdigit() else (int(y), x)
            assert 1 <= n <= 100 and to_roman(n) == roman
        directions.add(p.rule)
    assert directions == {1: {"to_roman"}, 2: {"from_roman"}}[complexity]


def test_wonderland_numerals_are_roman_under_a_hidden_substitution_readable_from_the_examples() -> None:
    seen_keys = set()
    for i in range(60):
        p = generate("numeral", f"w-{i}", Difficulty(complexity=3, n_examples=3, max_value=3999))
        assert p.rule == "wonderland"
        q = p.prompt.splitlines()[-1].split("number ")[-1].split(" in ")[0]
        key: dict[str, str] = {}
        for line in [*_examples(p.prompt), f"{q} -> {p.answer}"]:
            x, y = line.split(" -> ")
            roman = to_roman(int(x))
            assert len(roman) == len(y) and not set(y) & set("IVXLCDM")
            for r, w in zip(roman, y, strict=True):
                assert key.setdefault(r, w) == w  # one consistent substitution per puzzle
        assert len(set(key.values())) == len(key)  # and it is one-to-one
        example_letters = "".join(line.split(" -> ")[1] for line in _examples(p.prompt))
        assert set(p.answer) <= set(example_letters)  # every letter of the answer is shown in an example
        seen_keys.add(tuple(sorted(key.items())))
    assert len(seen_keys) > 50  # drawn per puzzle, not fixed


# ---- unit_conversion and gravity ---------------------------------------------------------------------------
def _numbers(line: str) -> list[float]:
    return [float(v) for v in re.findall(r"\d+(?:\.\d+)?", line)]


@pytest.mark.parametrize("complexity", [1, 2, 3])
def test_unit_conversion_has_one_hidden_factor(complexity: int) -> None:
    for i in range(40):
        p = generate("unit_conversion", f"u-{i}", Difficulty(complexity=complexity, max_value=20))
        factor = float(p.rule.split()[-1])
        q = _numbers(p.prompt.splitlines()[-1])[0]
        assert verify(f"{q * factor:.2f}", p.answer) and re.fullmatch(r"\d+\.\d\d", p.answer)
        for line in _examples(p.prompt):
            x, y = _numbers(line)
            assert abs(x * factor - y) <= 0.005 + 1e-9 and 0 < x <= 20
        if complexity == 1:
            assert all(x.is_integer() for x in (_numbers(line)[0] for line in _examples(p.prompt)))


@pytest.mark.parametrize("complexity", [1, 2, 3])
def test_gravity_follows_half_g_t_squared(complexity: int) -> None:
    for i in range(40):
        p = generate("gravity", f"g-{i}", Difficulty(complexity=complexity, max_value=6))
        g = float(p.trace.split(";")[0].split("=")[1])
        estimates = []
        for line in _examples(p.prompt):
            t, d = _numbers(line)
            assert 0 < t <= 6
            estimates.append(2 * d / t**2)
            assert abs(0.5 * g * t * t - d) <= 0.005 + 1e-9
        assert max(estimates) - min(estimates) < 1e-2  # one hidden g explains every example
        t = _numbers(p.prompt.splitlines()[-1])[0]
        assert verify(f"{0.5 * g * t * t:.2f}", p.answer)
        if complexity == 1:
            assert g.is_integer() and g % 2 == 0


# ---- equations ----------------------------------------------------------------------------------------------
def _rev(n: int) -> int:
    return int(("-" if n < 0 else "") + str(abs(n))[::-1])


EQ = {
    "add": lambda a, b: str(int(a) + int(b)),
    "subtract": lambda a, b: str(int(a) - int(b)),
    "concatenate": lambda a, b: a + b,
    "reverse concatenate": lambda a, b: b + a,
    "reversed add": lambda a, b: str(_rev(_rev(int(a)) + _rev(int(b)))),
    "reversed subtract": lambda a, b: str(_rev(_rev(int(a)) - _rev(int(b)))),
    "reverse all": lambda a, b: (a + b)[::-1],
    "interleave": lambda a, b: "".join(x + y for x, y in zip(a, b, strict=True)),
}


@pytest.mark.parametrize("complexity", [1, 2, 3])
def test_equations_apply_one_hidden_rule(complexity: int) -> None:
    rules = set()
    for i in range(60):
        p = generate("equations", f"e-{i}", Difficulty(complexity=complexity, max_value=50))
        op = p.trace[0]
        lines = [*_examples(p.prompt), p.prompt.splitlines()[-1].split(": ")[-1] + " = " + p.answer]
        for line in lines:
            lhs, rhs = line.split(" = ")
            a, b = lhs.split(op)
            assert EQ[p.rule](a, b) == rhs
            if complexity < 3:
                assert 10 <= int(a) <= 50 and 10 <= int(b) <= 50
        rules.add(p.rule)
    expected = {
        1: {"add", "subtract", "concatenate", "reverse concatenate"},
        2: {"reversed add", "reversed subtract"},
        3: {"concatenate", "reverse concatenate", "reverse all", "interleave"},
    }
    assert rules == expected[complexity]


def test_reversed_digit_equations_never_agree_with_the_plain_rule() -> None:
    plain = {"reversed add": lambda a, b: a + b, "reversed subtract": lambda a, b: a - b}
    for i in range(60):
        p = generate("equations", f"r-{i}", Difficulty(complexity=2, max_value=30))
        op = p.trace[0]
        lines = [*_examples(p.prompt), p.prompt.splitlines()[-1].split(": ")[-1] + " = " + p.answer]
        for line in lines:
            lhs, rhs = line.split(" = ")
            a, b = (int(x) for x in lhs.split(op))
            assert int(rhs) != plain[p.rule](a, b)
