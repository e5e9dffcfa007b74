"""Answer extraction and verification for Wonderland puzzles: the ONE shared implementation.

The substrate's frozen evaluation harness, the external-target scorer (`evotrain.puzzles.score`) and any later
leaderboard server import this module, so a model is scored the same way everywhere.

The rules follow the public scoring of the NVIDIA Nemotron reasoning challenge:

* extraction: the content of the last ``\\boxed{...}`` in the output (braces may nest); failing that, the text
  after the last "Final answer:"; failing that, the last number; failing that, the last non-empty line;
* verification: a gold answer made only of 0/1 characters (a bit string) must match exactly; a numeric gold
  answer matches a numeric prediction with relative tolerance 1e-2 (absolute 1e-5); anything else is compared
  case-insensitively after stripping whitespace;
* accuracy is the fraction of items verified correct.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

BOXED = "\\boxed{"
_FINAL_ANSWER = re.compile(r"final\s+answer\s*(?:is)?\s*[:：]\s*(.*)", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_BINARY = re.compile(r"[01]+")
REL_TOL = 1e-2
ABS_TOL = 1e-5


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` with balanced braces, or None when there is none."""
    start = text.rfind(BOXED)
    while start != -1:
        depth, i = 1, start + len(BOXED)
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start + len(BOXED) : i]
            i += 1
        # Unclosed box (a generation cut short): look for an earlier, complete one.
        start = text.rfind(BOXED, 0, start)
    return None


def extract_answer(text: str) -> str:
    """The answer a model gave in ``text`` (see the module docstring for the fallback order)."""
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    finals = list(_FINAL_ANSWER.finditer(text))
    if finals:
        answer = finals[-1].group(1).strip()
        if answer:
            return answer
    numbers = _NUMBER.findall(text)
    if numbers:
        return numbers[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _as_number(text: str) -> float | None:
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def verify(predicted: str, gold: str) -> bool:
    """Whether an extracted answer ``predicted`` matches the ``gold`` answer."""
    predicted, gold = predicted.strip(), gold.strip()
    if _BINARY.fullmatch(gold):
        return predicted == gold
    gold_number = _as_number(gold)
    if gold_number is not None:
        predicted_number = _as_number(predicted)
        if predicted_number is not None:
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
    """Score predictions {id: answer text} against gold {id: (domain, answer)}.

    Every gold item counts; a missing prediction is wrong. Predictions are passed through
    ``extract_answer`` first, so raw model outputs and bare answers both work.
    Returns (overall accuracy, {domain: {"score", "n"}}, {id: correct}).
    """
    correct: dict[str, bool] = {}
    per_domain: dict[str, list[bool]] = {}
    for item_id, (domain, answer) in gold.items():
        ok = item_id in predictions and verify(extract_answer(predictions[item_id]), answer)
        correct[item_id] = ok
        per_domain.setdefault(domain, []).append(ok)
    domains: dict[str, dict[str, float]] = {
        d: {"score": sum(v) / len(v), "n": len(v)} for d, v in sorted(per_domain.items())
    }
    overall = sum(correct.values()) / len(correct) if correct else 0.0
    return overall, domains, correct
