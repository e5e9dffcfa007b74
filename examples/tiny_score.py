"""The tiny substrate's external target: score predictions against the hidden external answers.

    python examples/tiny_score.py --answers examples/tiny_external_answers.jsonl --predictions PRED.json

prints one JSON line: {"score": accuracy, "n": items, "domains": {domain: accuracy}}. A missing prediction
counts as wrong; a predictions file that is not {"predictions": {id: answer}} exits 2 with a message.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", required=True, type=Path)
    parser.add_argument("--predictions", required=True, type=Path)
    args = parser.parse_args()
    answers = [json.loads(line) for line in args.answers.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        predictions = json.loads(args.predictions.read_text(encoding="utf-8"))["predictions"]
        if not isinstance(predictions, dict):
            raise TypeError("`predictions` is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(
            f'{args.predictions}: not a predictions file ({exc!r}); expected {{"predictions": {{id: answer}}}}',
            file=sys.stderr,
        )
        return 2
    hits: dict[str, list[float]] = {}
    for row in answers:
        hit = str(predictions.get(row["id"], "")).strip() == row["answer"]
        hits.setdefault(row["domain"], []).append(float(hit))
    every = [h for domain in hits.values() for h in domain]
    result = {
        "score": sum(every) / len(every),
        "n": len(every),
        "domains": {domain: sum(h) / len(h) for domain, h in sorted(hits.items())},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
