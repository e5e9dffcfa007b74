"""The synthetic substrate's external target: score predictions against the world's hidden external answers.

    python examples/synthetic_score.py --world RUN/substrate/world.json --predictions PRED.json

prints one JSON line: {"score": accuracy, "n": items, "domains": {domain: accuracy}}. A missing prediction counts
as wrong; a predictions file that is not {"predictions": {id: answer}} exits 2 with a message.
"""

from __future__ import annotations

import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "synthetic", "sim"))
from world import flags, hidden_answer, items, load_world  # noqa: E402


def main() -> int:
    args = flags(sys.argv[1:], {"world", "predictions"})
    if set(args) != {"world", "predictions"}:
        raise SystemExit("usage: synthetic_score.py --world WORLD.json --predictions PRED.json")
    world = load_world(args["world"])
    path = args["predictions"]
    try:
        with open(path, encoding="utf-8") as fh:
            predictions = json.load(fh)["predictions"]
        if not isinstance(predictions, dict):
            raise TypeError("`predictions` is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(
            f'{args["predictions"]}: not a predictions file ({exc!r}); expected {{"predictions": {{id: answer}}}}',
            file=sys.stderr,
        )
        return 2
    hits: dict[str, list[float]] = {}
    for item in items("external", world):
        hits.setdefault(item.domain, []).append(float(predictions.get(item.id) == hidden_answer(world, item.id)))
    every = [h for domain in hits.values() for h in domain]
    print(
        json.dumps(
            {
                "score": sum(every) / len(every),
                "n": len(every),
                "domains": {domain: sum(h) / len(h) for domain, h in sorted(hits.items())},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
