"""Score checkpoints on the dev split; write evaluation reports with item-level 0/1 scores.

python sim/evaluate.py --world world.json --checkpoint CKPT --out REPORT.json
python sim/evaluate.py --world world.json --checkpoints DIR --out FOLDER      (one <name>.json per checkpoint)
"""

from __future__ import annotations

import json
import os
import sys

sys.dont_write_bytecode = True  # keep the frozen sim/ folder free of __pycache__ in sandboxes
from world import DOMAINS, World, answered, flags, item_rng, items, load_world  # noqa: E402


def report(checkpoint: str, world: World) -> dict[str, object]:
    with open(os.path.join(checkpoint, "skill.json")) as fh:
        run = json.load(fh)
    dev = items("dev", world)
    hits = answered(run["dev"], dev, item_rng(world, run["seed"], os.path.basename(checkpoint), "dev"))
    rows = [{"id": i.id, "domain": i.domain, "score": float(h)} for i, h in zip(dev, hits, strict=True)]
    domains = {}
    for d in DOMAINS:
        scores = [float(h) for i, h in zip(dev, hits, strict=True) if i.domain == d]
        domains[d] = {"score": sum(scores) / len(scores), "n": len(scores)}
    return {"metric": "accuracy", "domains": domains, "items": rows}


def write(path: str, report_: dict[str, object]) -> None:
    with open(path, "w") as fh:
        json.dump(report_, fh)


def main() -> None:
    args = flags(sys.argv[1:], {"world", "checkpoint", "checkpoints", "out"})
    if ("checkpoint" in args) == ("checkpoints" in args) or "out" not in args or "world" not in args:
        raise SystemExit("usage: evaluate.py --world W (--checkpoint CKPT | --checkpoints DIR) --out PATH")
    world = load_world(args["world"])
    if "checkpoint" in args:
        write(args["out"], report(args["checkpoint"], world))
        return
    os.makedirs(args["out"], exist_ok=True)
    for name in sorted(os.listdir(args["checkpoints"])):
        checkpoint = os.path.join(args["checkpoints"], name)
        if os.path.isdir(checkpoint) and not name.startswith("."):
            write(os.path.join(args["out"], f"{name}.json"), report(checkpoint, world))


if __name__ == "__main__":
    main()
