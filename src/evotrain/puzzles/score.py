"""The external-target command of the puzzles substrate: score predictions against the hidden answers.

    python -m evotrain.puzzles.score --answers ANSWERS.jsonl --predictions PRED.json [--split external|control|all]

prints one JSON line ``{"score": accuracy, "n": items, "domains": {family: accuracy}}``. Every item of the split
counts; an item without a prediction is wrong. Predictions may be raw model outputs or bare answers: they are
extracted and verified by evotrain.puzzles.answers, exactly as the dev evaluation does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evotrain.puzzles.answers import score_by_domain
from evotrain.puzzles.build import AnswerRecord


def load_answers(path: Path, split: str = "external") -> dict[str, AnswerRecord]:
    records = [AnswerRecord.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]
    return {r.id: r for r in records if split == "all" or r.split == split}


def score(answers: dict[str, AnswerRecord], predictions: dict[str, str]) -> dict[str, object]:
    gold = {i: (r.family, r.answer) for i, r in answers.items()}
    overall, domains, _ = score_by_domain(predictions, gold)
    return {"score": overall, "n": len(gold), "domains": {d: v["score"] for d, v in domains.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--answers", type=Path, required=True)
    parser.add_argument("--predictions", type=Path, required=True)
    parser.add_argument("--split", choices=["external", "control", "all"], default="external")
    args = parser.parse_args(argv)
    answers = load_answers(args.answers, args.split)
    if not answers:
        parser.error(f"no {args.split} items in {args.answers}")
    predictions = json.loads(args.predictions.read_text())["predictions"]
    print(json.dumps(score(answers, predictions)))


if __name__ == "__main__":
    main()
