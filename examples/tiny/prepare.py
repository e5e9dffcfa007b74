"""Draw the training mix: `examples` rows of data/train.jsonl, each domain sampled in proportion to its weight."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()
    with open(args.recipe, "rb") as fh:
        recipe = tomllib.load(fh)
    mix: dict[str, float] = recipe["data"]["mix"]
    rows = [json.loads(line) for line in open(args.data, encoding="utf-8")]
    domains = sorted({row["domain"] for row in rows})
    weights = np.array([float(mix.get(row["domain"], 0.0)) for row in rows])
    if weights.sum() <= 0:
        sys.exit(f"{args.recipe}: [data.mix] gives every domain weight 0")
    # A domain's weight is shared among its rows, so the mix sets domain proportions whatever each domain's size.
    per_domain = {d: sum(1 for row in rows if row["domain"] == d) for d in domains}
    probs = weights / np.array([per_domain[row["domain"]] for row in rows])
    probs /= probs.sum()
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(rows), size=int(recipe["data"]["examples"]), p=probs)
    x = np.array([rows[i]["x"] for i in pick], dtype=np.float64)
    y = np.array([rows[i]["y"] for i in pick], dtype=np.float64)
    domain = np.array([domains.index(rows[i]["domain"]) for i in pick], dtype=np.int64)
    with open(args.out, "wb") as fh:
        np.savez(fh, x=x, y=y, domain=domain, domains=np.array(domains))


if __name__ == "__main__":
    main()
