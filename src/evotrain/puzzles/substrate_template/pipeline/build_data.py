"""Data pipeline: draw the training set from the pool, augment it and format the answers.

Writes one JSON object per line: {"id", "family", "prompt", "completion"}. train.py trains the model to
continue ``prompt + "\\n"`` with ``completion``.
"""

from __future__ import annotations

import argparse
import json
import random
import tomllib
from pathlib import Path
from typing import Any

POOL = Path(__file__).resolve().parent.parent / "data" / "train_pool.jsonl"


def completion(item: dict[str, Any], fmt: str) -> str:
    boxed = "\\boxed{" + item["answer"] + "}"
    if fmt == "bare":
        return boxed
    if fmt == "trace":
        return item["trace"] + "\n" + boxed
    raise ValueError(f"unknown answer format {fmt!r}")


def augment(prompt: str, rng: random.Random, shuffle: bool, drop_prob: float) -> str:
    """The first line is the header, the last the question; the lines between are solved examples."""
    lines = prompt.split("\n")
    header, examples, question = lines[0], lines[1:-1], lines[-1]
    if shuffle:
        rng.shuffle(examples)
    if len(examples) > 2 and rng.random() < drop_prob:
        examples.pop(rng.randrange(len(examples)))
    return "\n".join([header, *examples, question])


def build(recipe: dict[str, Any], seed: int) -> list[dict[str, str]]:
    data = recipe["data"]
    pool: dict[str, list[dict[str, Any]]] = {}
    for line in POOL.read_text().splitlines():
        item = json.loads(line)
        pool.setdefault(item["family"], []).append(item)
    families = sorted(f for f, w in data["mix"].items() if w > 0 and f in pool)
    weights = [data["mix"][f] for f in families]
    rng = random.Random(seed)
    rows = []
    for _ in range(data["n_train"]):
        family = rng.choices(families, weights=weights)[0]
        item = rng.choice(pool[family])
        prompt = augment(item["prompt"], rng, data["shuffle_examples"], data["drop_example_prob"])
        rows.append(
            {
                "id": item["id"],
                "family": family,
                "prompt": prompt,
                "completion": completion(item, data["format"]),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    recipe = tomllib.loads(args.recipe.read_text())
    rows = build(recipe, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} training examples to {args.out}")


if __name__ == "__main__":
    main()
