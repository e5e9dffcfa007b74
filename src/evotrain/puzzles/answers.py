"""Answer extraction and verification as the Nemotron reasoning challenge scores them: the ONE implementation.

The substrates' frozen evaluation (a copy sealed into each substrate, see evotrain.substrate.seal), the
external-target scorer (`evotrain.puzzles.score`) and the leaderboard server use this module, so a model is scored
the same way everywhere. It imports nothing but the standard library. The rules, written from the behaviour of
the challenge's public metric (docs/puzzles.md, "Scoring", has the table of cases, each a test):

* extraction: every ``\\boxed{`` opens a candidate that runs to the last ``}`` before the next ``\\boxed{`` (or
  the end of the text), so an answer may itself hold ``}``; a ``\\boxed{`` with no ``}`` after it is no
  candidate. The last candidate that is not empty (after stripping whitespace) is the answer. Without one, the
  last number of the text by the pattern ``-?\\d+(?:\\.\\d+)?`` (no exponent, no leading ``+``, no trailing dot);
  without a number, :data:`NOT_FOUND`;
* verification: a gold answer made only of 0/1 characters (a bit string) must match exactly; otherwise, when
  both sides parse with Python's ``float()``, they match within relative tolerance 1e-2 (absolute 1e-5), so
  ``nan`` never matches and ``inf`` matches ``Infinity``; when either does not parse (``1,234`` does not), the
  two are compared case-insensitively after stripping whitespace;
* accuracy is the fraction of items verified correct.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

BOXED = "\\boxed{"
NOT_FOUND = "NOT_FOUND"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
BIT_STRING = re.compile(r"[01]+")
REL_TOL = 1e-2
ABS_TOL = 1e-5


def boxed_candidates(text: str) -> list[str]:
    """The content of every ``\\boxed{`` in ``text``, in order: up to the last ``}`` before the next box or the end."""
    opens = [m.start() for m in re.finditer(re.escape(BOXED), text)]
    candidates: list[str] = []
    for i, start in enumerate(opens):
        end = opens[i + 1] if i + 1 < len(opens) else len(text)
        close = text.rfind("}", start + len(BOXED), end)
        if close != -1:
            candidates.append(text[start + len(BOXED) : close])
    return candidates


def extract_answer(text: str) -> str:
    """The final answer in a model's output ``text``, or :data:`NOT_FOUND` (see the module docstring)."""
    boxed = [c.strip() for c in boxed_candidates(text) if c.strip()]
    if boxed:
        return boxed[-1]
    numbers = NUMBER.findall(text)
    return numbers[-1] if numbers else NOT_FOUND


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def verify(predicted: str, gold: str) -> bool:
    """Whether an extracted answer ``predicted`` matches the ``gold`` answer."""
    predicted, gold = predicted.strip(), gold.strip()
    if BIT_STRING.fullmatch(gold):
        return predicted == gold
    gold_number, predicted_number = _as_float(gold), _as_float(predicted)
    if gold_number is not None and predicted_number is not None:
        return math.isclose(predicted_number, gold_number, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return predicted.lower() == gold.lower()


def score_output(output: str, gold: str) -> bool:
    """Extract the answer from a raw model output and verify it."""
    return verify(extract_answer(output), gold)


def accuracy(predicted: Iterable[str], gold: Iterable[str]) -> float:
    """Fraction of (already extracted) answers that verify; 0.0 for no items."""
    pairs = list(zip(predicted, gold, strict=True))
    if not pairs:
        return 0.0
    return sum(verify(p, g) for p, g in pairs) / len(pairs)


def score_by_domain(
    predictions: Mapping[str, str], gold: Mapping[str, tuple[str, str]]
) -> tuple[float, dict[str, dict[str, float]], dict[str, bool]]:
    """Score predictions {id: model output} against gold {id: (domain, answer)}.

    Every gold item counts; a missing prediction is wrong. Each prediction goes through ``extract_answer`` first,
    as the challenge does: a bare answer without ``\\boxed{}`` is scored by its last number, or not found.
    Returns (overall accuracy, {domain: {"score", "n"}}, {id: correct}).
    """
    correct: dict[str, bool] = {}
    per_domain: dict[str, list[bool]] = {}
    for item_id, (domain, answer) in gold.items():
        ok = item_id in predictions and score_output(predictions[item_id], answer)
        correct[item_id] = ok
        per_domain.setdefault(domain, []).append(ok)
    domains: dict[str, dict[str, float]] = {
        d: {"score": sum(v) / len(v), "n": len(v)} for d, v in sorted(per_domain.items())
    }
    overall = sum(correct.values()) / len(correct) if correct else 0.0
    return overall, domains, correct
