"""Simulated training: write one checkpoint folder per CHECKPOINTS entry holding the run's skills (skill.json).

    python sim/train.py --recipe recipe.toml --world world.json --checkpoints DIR --seed N [--summary OUT] [--round R]

The round (for the proxy trap's onset) is --round, else read from the sandbox's path inside a campaign
(…/rounds/r0003/…), else 1.
"""

from __future__ import annotations

import json
import os
import sys

sys.dont_write_bytecode = True  # keep the frozen sim/ folder free of __pycache__ in sandboxes
from world import flags, load_world, read_recipe, round_of, run_skills  # noqa: E402


def main() -> None:
    args = flags(sys.argv[1:], {"recipe", "world", "checkpoints", "seed", "summary", "round"})
    world = load_world(args["world"])
    seed = int(args["seed"])
    round_no = int(args["round"]) if "round" in args else round_of(os.environ.get("EVOTRAIN_SANDBOX", os.getcwd()))
    recipe = read_recipe(args["recipe"])
    runs = run_skills(recipe, round_no=round_no, world=world, seed=seed)
    for name, skills in runs:
        folder = os.path.join(args["checkpoints"], name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "skill.json"), "w") as fh:
            json.dump({"seed": seed, "round": round_no, **skills}, fh)
    if "summary" in args:
        with open(args["summary"], "w") as fh:
            json.dump({"checkpoints": len(runs), "round": round_no}, fh)


if __name__ == "__main__":
    main()
