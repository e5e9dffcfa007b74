"""Answer the external split with a checkpoint: {"predictions": {id: answer}} (a wrong answer is "?").

python sim/predict.py --world world.json --checkpoint CKPT --out PREDICTIONS.json
"""

from __future__ import annotations

import json
import os
import sys

sys.dont_write_bytecode = True  # keep the frozen sim/ folder free of __pycache__ in sandboxes
from world import answered, flags, hidden_answer, item_rng, items, load_world  # noqa: E402


def main() -> None:
    args = flags(sys.argv[1:], {"world", "checkpoint", "out"})
    world = load_world(args["world"])
    with open(os.path.join(args["checkpoint"], "skill.json")) as fh:
        run = json.load(fh)
    external = items("external", world)
    rng = item_rng(world, run["seed"], os.path.basename(args["checkpoint"]), "external")
    hits = answered(run["external"], external, rng)
    predictions = {i.id: hidden_answer(world, i.id) if h else "?" for i, h in zip(external, hits, strict=True)}
    with open(args["out"], "w") as fh:
        json.dump({"predictions": predictions}, fh)


if __name__ == "__main__":
    main()
