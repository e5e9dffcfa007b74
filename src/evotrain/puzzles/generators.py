"""Seeded generators for the six Wonderland puzzle families.

Every puzzle shows a few input -> output examples of a hidden rule and asks for one more, in the style of the
NVIDIA Nemotron reasoning challenge ("In Alice's Wonderland, ..."). A puzzle is fully determined by
(family, seed string, difficulty), so splits are reproducible bit for bit.

Difficulty knobs, shared by all families:

* ``n_examples``: how many solved examples the prompt shows;
* ``complexity``: 1 (easy rules) .. 3 (hard rules); what it means is written beside each family;
* ``max_value``: the range of the numbers involved (ignored by cipher);
* ``template``: which wording of the prompt (0..len(TEMPLATES[family]) - 1).

Tokenisation note: puzzle payloads (bit strings, cipher phrases, Roman numerals, numbers, symbols) use only
upper-case letters, digits and punctuation, while the template wording is lower-case prose. The substrate's
tokenizer merges template words into single tokens and keeps every payload character on its own.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

Family = Literal["bit_manipulation", "cipher", "numeral", "unit_conversion", "gravity", "equations"]
FAMILIES: tuple[Family, ...] = (
    "bit_manipulation",
    "cipher",
    "numeral",
    "unit_conversion",
    "gravity",
    "equations",
)
T = TypeVar("T")
OPENING = "In Alice's Wonderland, "


class Difficulty(BaseModel):
    model_config = ConfigDict(frozen=True)

    n_examples: int = Field(4, ge=1, le=12)
    complexity: int = Field(1, ge=1, le=3)
    max_value: int = Field(20, ge=2)
    template: int = Field(0, ge=0)


class Puzzle(BaseModel):
    """One puzzle: the prompt a model sees, the gold answer, and a short worked trace."""

    id: str
    family: Family
    prompt: str
    answer: str
    trace: str = ""
    rule: str = ""  # a name for the hidden rule, for analysis only (never shown to a model)
    difficulty: Difficulty = Difficulty()


# (header, example line format, query line). {x}/{y} are an example's input/output, {q} the query input.
Template = tuple[str, str, str]

TEMPLATES: dict[str, list[Template]] = {
    "bit_manipulation": [
        (
            "a secret bit manipulation rule transforms 8-bit binary numbers. Here are some examples:",
            "{x} -> {y}",
            "Now, determine the output for: {q}",
        ),
        (
            "the royal scribes apply a hidden rule to every 8-bit binary string. Observe:",
            "input {x} gives {y}",
            "What does input {q} give?",
        ),
        (
            "a magic mirror changes binary numbers with a secret rule. The mirror showed:",
            "{x} becomes {y}",
            "Find what {q} becomes.",
        ),
    ],
    "cipher": [
        (
            "secret encryption rules are used on text. Here are some examples:",
            "{x} -> {y}",
            "Now, decrypt the following text: {q}",
        ),
        (
            "the queen writes her letters in a secret code. Some coded messages and their meaning:",
            "{x} means {y}",
            "What does {q} mean?",
        ),
        (
            "the caterpillar speaks in a hidden cipher. He said:",
            "{x} for {y}",
            "Translate {q} please.",
        ),
    ],
    "numeral": [
        (
            "numbers are secretly converted into a different numeral system. Some examples are given below:",
            "{x} -> {y}",
            "Now, write the number {q} in the Wonderland numeral system.",
        ),
        (
            "the clocks show numbers in a strange way. The clock maker wrote:",
            "{x} is shown as {y}",
            "How is {q} shown?",
        ),
        (
            "the playing cards count in their own system. They told Alice:",
            "{x} is written {y}",
            "How is {q} written?",
        ),
    ],
    "unit_conversion": [
        (
            "a secret unit conversion is applied to measurements. For example:",
            "{x} m becomes {y}",
            "Now, convert the following measurement: {q} m",
        ),
        (
            "the hatter measures tea with a strange unit. His notes say:",
            "{x} cups is {y}",
            "How much is {q} cups?",
        ),
        (
            "distances are measured with a hidden unit. The rabbit found:",
            "{x} steps equal {y}",
            "What do {q} steps equal?",
        ),
    ],
    "gravity": [
        (
            "the gravitational constant has been secretly changed. Here are some example observations:",
            "For t = {x}s, distance = {y} m",
            "Now, determine the falling distance for t = {q}s given d = 0.5*g*t^2.",
        ),
        (
            "things fall in a strange way. The rabbit dropped a watch and measured:",
            "after {x}s it fell {y} m",
            "How far does it fall after {q}s?",
        ),
        (
            "a hidden gravity pulls things down. The duchess timed some falls:",
            "time {x}s distance {y} m",
            "What distance for time {q}s?",
        ),
    ],
    "equations": [
        (
            "a secret set of transformation rules is applied to equations. Below are a few examples:",
            "{x} = {y}",
            "Now, determine the result for: {q}",
        ),
        (
            "the mad hatter does sums by his own rules. He wrote on the table:",
            "{x} gives {y}",
            "What does {q} give?",
        ),
        (
            "the dormouse dreams of odd equations. In his dream:",
            "{x} equals {y}",
            "What does {q} equal?",
        ),
    ],
}


def render_prompt(family: str, template: int, examples: list[tuple[str, str]], query: str) -> str:
    header, line, ask = TEMPLATES[family][template % len(TEMPLATES[family])]
    body = "\n".join(line.format(x=x, y=y) for x, y in examples)
    return f"{OPENING}{header}\n{body}\n{ask.format(q=query)}"


# --------------------------------------------------------------------------------------------------------------
# bit_manipulation: 8-bit strings.
#   complexity 1: NOT, reverse, rotate or shift by 1;
#   complexity 2: rotate/shift by 2-3, XOR/AND/OR with a mask, swap nibbles;
#   complexity 3: majority/choice of rotations, or a composition of two simpler rules.
Bits = tuple[int, ...]
BitOp = tuple[str, Callable[[Bits], Bits]]


def _rotl(x: Bits, k: int) -> Bits:
    return x[k:] + x[:k]


def _shl(x: Bits, k: int) -> Bits:
    return x[k:] + (0,) * k


def _shr(x: Bits, k: int) -> Bits:
    return (0,) * k + x[:-k]


def _mask_op(name: str, mask: Bits, f: Callable[[int, int], int]) -> BitOp:
    text = "".join(map(str, mask))
    return f"{name} {text}", lambda x: tuple(f(a, b) for a, b in zip(x, mask, strict=True))


def _bit_op(rng: random.Random, complexity: int, n_bits: int = 8) -> BitOp:
    if complexity == 1:
        ops: list[BitOp] = [
            ("not", lambda x: tuple(1 - b for b in x)),
            ("reverse", lambda x: x[::-1]),
            ("rotate left 1", lambda x: _rotl(x, 1)),
            ("rotate right 1", lambda x: _rotl(x, -1)),
            ("shift left 1", lambda x: _shl(x, 1)),
            ("shift right 1", lambda x: _shr(x, 1)),
        ]
        return rng.choice(ops)
    if complexity == 2:
        k = rng.randint(2, 3)
        mask = tuple(rng.randint(0, 1) for _ in range(n_bits))
        half = n_bits // 2
        ops = [
            (f"rotate left {k}", lambda x: _rotl(x, k)),
            (f"rotate right {k}", lambda x: _rotl(x, -k)),
            (f"shift left {k}", lambda x: _shl(x, k)),
            (f"shift right {k}", lambda x: _shr(x, k)),
            _mask_op("xor", mask, lambda a, b: a ^ b),
            _mask_op("and", mask, lambda a, b: a & b),
            _mask_op("or", mask, lambda a, b: a | b),
            ("swap nibbles", lambda x: x[half:] + x[:half]),
        ]
        return rng.choice(ops)
    kind = rng.randint(0, 2)
    if kind == 0:
        return "majority", lambda x: tuple(
            int(a + b + c >= 2) for a, b, c in zip(x, _rotl(x, 1), _rotl(x, -1), strict=True)
        )
    if kind == 1:
        return "choice", lambda x: tuple(b if a else c for a, b, c in zip(x, _rotl(x, 1), _rotl(x, -1), strict=True))
    (n1, f1), (n2, f2) = _bit_op(rng, 1, n_bits), _bit_op(rng, 2, n_bits)
    return f"{n1} then {n2}", lambda x: f2(f1(x))


def bit_manipulation(seed: str, d: Difficulty) -> Puzzle:
    rng = random.Random(seed)
    name, op = _bit_op(rng, d.complexity)
    inputs = _distinct(rng, d.n_examples + 1, lambda: tuple(rng.randint(0, 1) for _ in range(8)))
    show = ["".join(map(str, x)) for x in inputs]
    outs = ["".join(map(str, op(x))) for x in inputs]
    answer = outs[-1]
    examples = list(zip(show[:-1], outs[:-1], strict=True))
    return Puzzle(
        id=seed,
        family="bit_manipulation",
        prompt=render_prompt("bit_manipulation", d.template, examples, show[-1]),
        answer=answer,
        trace=f"rule: {name}",
        rule=name.split(" 0")[0].split(" 1")[0],
        difficulty=d,
    )


# --------------------------------------------------------------------------------------------------------------
# cipher: a letter substitution on short upper-case phrases.
#   complexity 1: a shift (Caesar) cipher by 1..3 letters; 2: a shift by 1..25; 3: a random substitution.
#   The query's letters always appear in the examples, so every puzzle is solvable.
WORDS = (
    "ALICE RABBIT QUEEN KING HATTER TEA CAT DOOR KEY CAKE TIME GARDEN ROSE CARD MOUSE TURTLE HARE DREAM "
    "BOTTLE HOLE RIVER CLOCK WHITE RED GOLD BOOK TREE MIRROR CROWN SONG DANCE SMILE WATCH LAKE MOON STAR "
    "SEA PAINT JAM TART QUIET WISE OLD LITTLE HAPPY DARK BRIGHT STRANGE CURIOUS SLEEPY DUCHESS KNIGHT"
).split()
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _phrase(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def cipher(seed: str, d: Difficulty) -> Puzzle:
    rng = random.Random(seed)
    if d.complexity < 3:
        shift = rng.randint(1, 3) if d.complexity == 1 else rng.randint(1, 25)
        key = {c: ALPHABET[(i + shift) % 26] for i, c in enumerate(ALPHABET)}
        rule = f"shift {shift}"
    else:
        perm = list(ALPHABET)
        rng.shuffle(perm)
        key = dict(zip(ALPHABET, perm, strict=True))
        rule = "substitution"
    n_words = 2

    def encode(text: str) -> str:
        return "".join(key.get(c, c) for c in text)

    for _ in range(1000):
        plains = [_phrase(rng, n_words) for _ in range(d.n_examples)]
        covered = set("".join(plains))
        query = _phrase(rng, rng.randint(1, n_words))
        if set(query.replace(" ", "")) <= covered and query not in plains:
            break
    else:  # pragma: no cover - with these word lists a solvable query is found in a few tries
        raise RuntimeError(f"no solvable cipher query for {seed}")
    examples = [(encode(p), p) for p in plains]
    letters = dict.fromkeys(c for c in encode(query) if c != " ")
    inverse = {v: k for k, v in key.items()}
    trace = " ".join(f"{c}>{inverse[c]}" for c in letters)
    return Puzzle(
        id=seed,
        family="cipher",
        prompt=render_prompt("cipher", d.template, examples, encode(query)),
        answer=query,
        trace=trace,
        rule=rule,
        difficulty=d,
    )


# --------------------------------------------------------------------------------------------------------------
# numeral: Roman numerals of 1..max_value (at most 3999).
#   complexity 1: number -> Roman; 2: Roman -> number;
#   complexity 3: number -> "Wonderland numerals": Roman numerals whose seven symbols are written with other
#   letters (a hidden substitution drawn per puzzle). The examples use every symbol the answer needs, so the
#   substitution can be read off them: the model must both induce the letters and apply the Roman rules.
_ROMAN = [
    (1000, "M"),
    (900, "CM"),
    (500, "D"),
    (400, "CD"),
    (100, "C"),
    (90, "XC"),
    (50, "L"),
    (40, "XL"),
    (10, "X"),
    (9, "IX"),
    (5, "V"),
    (4, "IV"),
    (1, "I"),
]


def to_roman(n: int) -> str:
    if not 1 <= n <= 3999:
        raise ValueError(f"no Roman numeral for {n}")
    out = []
    for value, symbol in _ROMAN:
        while n >= value:
            out.append(symbol)
            n -= value
    return "".join(out)


def from_roman(text: str) -> int:
    values = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
    total = 0
    for i, c in enumerate(text):
        v = values[c]
        total += -v if i + 1 < len(text) and values[text[i + 1]] > v else v
    return total


def _roman_parts(n: int) -> list[str]:
    parts, place = [], 1
    while n:
        digit = n % 10
        if digit:
            parts.append(to_roman(digit * place))
        n //= 10
        place *= 10
    return parts[::-1]


_ROMAN_SYMBOLS = "IVXLCDM"
# Letters a Wonderland numeral may use: none of the Roman symbols, so no digit keeps its Roman look by chance.
_WONDERLAND_LETTERS = "ABEFGHJKNPQRSTUWYZ"


def numeral(seed: str, d: Difficulty) -> Puzzle:
    rng = random.Random(seed)
    top = min(d.max_value, 3999)
    if d.complexity == 3:
        return _wonderland_numeral(seed, rng, top, d)
    values = _distinct(rng, d.n_examples + 1, lambda: rng.randint(1, top))
    to_number = d.complexity == 2
    pairs = [(to_roman(v), str(v)) if to_number else (str(v), to_roman(v)) for v in values]
    q, answer = pairs[-1]
    n = values[-1]
    trace = f"{n} = " + " + ".join(_roman_parts(n))
    return Puzzle(
        id=seed,
        family="numeral",
        prompt=render_prompt("numeral", d.template, pairs[:-1], q),
        answer=answer,
        trace=trace,
        rule="from_roman" if to_number else "to_roman",
        difficulty=d,
    )


def _wonderland_numeral(seed: str, rng: random.Random, top: int, d: Difficulty) -> Puzzle:
    letters = rng.sample(_WONDERLAND_LETTERS, len(_ROMAN_SYMBOLS))
    key = dict(zip(_ROMAN_SYMBOLS, letters, strict=True))

    def write(n: int) -> str:
        return "".join(key[c] for c in to_roman(n))

    for _ in range(1000):
        values = _distinct(rng, d.n_examples + 1, lambda: rng.randint(1, top))
        if set(to_roman(values[-1])) <= set("".join(to_roman(v) for v in values[:-1])):
            break
    else:  # pragma: no cover - three or more examples cover a query's symbols within a few tries
        raise RuntimeError(f"no solvable Wonderland numeral for {seed}")
    pairs = [(str(v), write(v)) for v in values]
    q, answer = pairs[-1]
    n = values[-1]
    used = dict.fromkeys(to_roman(n))
    trace = f"{n} = " + " + ".join(_roman_parts(n)) + "; " + " ".join(f"{c}>{key[c]}" for c in used)
    return Puzzle(
        id=seed,
        family="numeral",
        prompt=render_prompt("numeral", d.template, pairs[:-1], q),
        answer=answer,
        trace=trace,
        rule="wonderland",
        difficulty=d,
    )


# --------------------------------------------------------------------------------------------------------------
# unit_conversion: y = factor * x, answers to 2 decimals.
#   complexity 1: a "round" factor (0.5 .. 3 in halves, not 1) and whole-number inputs up to max_value;
#   complexity 2: a factor 0.5 .. 4.0 with 2 decimals, inputs with 1 decimal;
#   complexity 3: as 2, inputs with 2 decimals.
_ROUND_FACTORS = (0.5, 1.5, 2.0, 2.5, 3.0)


def _fmt(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}"


def unit_conversion(seed: str, d: Difficulty) -> Puzzle:
    rng = random.Random(seed)
    if d.complexity == 1:
        factor, decimals = rng.choice(_ROUND_FACTORS), 0
    else:
        factor, decimals = rng.randint(50, 400) / 100, d.complexity - 1
    scale = 10**decimals
    xs = _distinct(rng, d.n_examples + 1, lambda: rng.randint(scale, d.max_value * scale) / scale)
    pairs = [(_fmt(x, decimals), _fmt(x * factor, 2)) for x in xs]
    q, answer = pairs[-1]
    return Puzzle(
        id=seed,
        family="unit_conversion",
        prompt=render_prompt("unit_conversion", d.template, pairs[:-1], q),
        answer=answer,
        trace=f"factor {factor:g}; {q} * {factor:g} = {answer}",
        rule=f"factor {factor:g}",
        difficulty=d,
    )


# --------------------------------------------------------------------------------------------------------------
# gravity: d = 0.5 * g * t^2 with a hidden g, answers to 2 decimals.
#   complexity 1: an even whole g in 2..10 and whole t in 1..max_value;
#   complexity 2: g with one decimal in 1.0..20.0, whole t;  complexity 3: as 2, t with one decimal.
def gravity(seed: str, d: Difficulty) -> Puzzle:
    rng = random.Random(seed)
    g = rng.randrange(2, 11, 2) if d.complexity == 1 else rng.randint(10, 200) / 10
    t_decimals = 1 if d.complexity == 3 else 0
    scale = 10**t_decimals
    ts = _distinct(rng, d.n_examples + 1, lambda: rng.randint(scale, d.max_value * scale) / scale)
    pairs = [(_fmt(t, t_decimals), _fmt(0.5 * g * t * t, 2)) for t in ts]
    q, answer = pairs[-1]
    return Puzzle(
        id=seed,
        family="gravity",
        prompt=render_prompt("gravity", d.template, pairs[:-1], q),
        answer=answer,
        trace=f"g = {g:g}; 0.5 * {g:g} * {q}^2 = {answer}",
        rule="whole g" if d.complexity == 1 else "decimal g",
        difficulty=d,
    )


# --------------------------------------------------------------------------------------------------------------
# equations: an operator symbol with a hidden meaning.
#   complexity 1: a op b on numbers up to max_value, op one of add, subtract, concatenate, reverse-concatenate;
#   complexity 2: the "reversed digits" rules: reverse both operands, add or subtract, reverse the result;
#   complexity 3: symbol strings: the operator concatenates, reverses or interleaves them.
OPERATORS = "+-*#@&%^"
SYMBOLS = "!?$<>[]{}|~"


def _reverse_digits(n: int) -> int:
    sign = "-" if n < 0 else ""
    return int(sign + str(abs(n))[::-1])


_NUMERIC_RULES: dict[int, dict[str, Callable[[int, int], str]]] = {
    1: {
        "add": lambda a, b: str(a + b),
        "subtract": lambda a, b: str(a - b),
        "concatenate": lambda a, b: f"{a}{b}",
        "reverse concatenate": lambda a, b: f"{b}{a}",
    },
    2: {
        "reversed add": lambda a, b: str(_reverse_digits(_reverse_digits(a) + _reverse_digits(b))),
        "reversed subtract": lambda a, b: str(_reverse_digits(_reverse_digits(a) - _reverse_digits(b))),
    },
}
# A reversed-digits rule agrees with its plain rule when no digit carries or borrows (12+23 = 35 either way): such
# pairs are never drawn, so every example and query shows the reversal and a plain add/subtract never solves it.
_PLAIN_OF_REVERSED: dict[str, Callable[[int, int], str]] = {
    "reversed add": _NUMERIC_RULES[1]["add"],
    "reversed subtract": _NUMERIC_RULES[1]["subtract"],
}
_SYMBOL_RULES: dict[str, Callable[[str, str], str]] = {
    "concatenate": lambda a, b: a + b,
    "reverse concatenate": lambda a, b: b + a,
    "reverse all": lambda a, b: (a + b)[::-1],
    "interleave": lambda a, b: "".join(x + y for x, y in zip(a, b, strict=True)),
}


def equations(seed: str, d: Difficulty) -> Puzzle:
    rng = random.Random(seed)
    op = rng.choice(OPERATORS)
    if d.complexity < 3:
        rules = _NUMERIC_RULES[d.complexity]
        name = rng.choice(sorted(rules))
        low = 10 if d.max_value >= 20 else 1
        plain = _PLAIN_OF_REVERSED.get(name)

        def pair() -> tuple[int, int]:
            for _ in range(1000):
                a, b = rng.randint(low, d.max_value), rng.randint(low, d.max_value)
                if plain is None or plain(a, b) != rules[name](a, b):
                    return a, b
            raise ValueError(f"no operands up to {d.max_value} tell {name!r} from its plain rule")

        operands = _distinct(rng, d.n_examples + 1, pair)
        pairs = [(f"{a}{op}{b}", rules[name](a, b)) for a, b in operands]
    else:
        name = rng.choice(sorted(_SYMBOL_RULES))

        def word() -> str:
            return "".join(rng.choice(SYMBOLS) for _ in range(2))

        operands_s = _distinct(rng, d.n_examples + 1, lambda: (word(), word()))
        pairs = [(f"{a}{op}{b}", _SYMBOL_RULES[name](a, b)) for a, b in operands_s]
    q, answer = pairs[-1]
    return Puzzle(
        id=seed,
        family="equations",
        prompt=render_prompt("equations", d.template, pairs[:-1], q),
        answer=answer,
        trace=f"{op} means {name}",
        rule=name,
        difficulty=d,
    )


def _distinct(rng: random.Random, n: int, draw: Callable[[], T]) -> list[T]:
    """n distinct draws (the last one is the query, so it never repeats an example)."""
    seen: list[T] = []
    for _ in range(100 * n):
        x = draw()
        if x not in seen:
            seen.append(x)
            if len(seen) == n:
                return seen
    raise ValueError(f"cannot draw {n} distinct values; widen the value range")


GENERATORS: dict[str, Callable[[str, Difficulty], Puzzle]] = {
    "bit_manipulation": bit_manipulation,
    "cipher": cipher,
    "numeral": numeral,
    "unit_conversion": unit_conversion,
    "gravity": gravity,
    "equations": equations,
}


def generate(family: str, seed: str, difficulty: Difficulty | None = None) -> Puzzle:
    """One puzzle of ``family``, fully determined by ``seed`` (any string) and ``difficulty``."""
    if family not in GENERATORS:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    return GENERATORS[family](seed, difficulty or Difficulty())
