"""Data pipeline: read data/train.csv (id,prompt,answer[,family]), filter and mix by family, format the answers.

Writes one JSON object a line: {"id", "family", "prompt", "completion"}. train.py wraps the prompt in the model's
chat template with the challenge's suffix (eval/generation.py), so training and evaluation see the same text.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "vendor"))  # evotrain as sealed in the substrate

from evotrain.errors import EvotrainError
from evotrain.fileio import atomic_write_text
from evotrain.hf_lora.csvdata import Item, read_items

ROOT = Path(__file__).resolve().parent.parent
TRAIN_CSV = ROOT / "data" / "train.csv"
OTHER = "other"


class DataRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_train: int = Field(ge=1)
    families: list[str] = []
    max_prompt_chars: int = Field(default=0, ge=0)
    format: Literal["boxed", "sentence"] = "boxed"
    mix: dict[str, float] = {}
    family_rules: dict[str, str] = {}


class PipelineError(EvotrainError):
    pass


def load_recipe(path: Path) -> DataRecipe:
    try:
        return DataRecipe.model_validate(tomllib.loads(path.read_text()).get("data", {}))
    except tomllib.TOMLDecodeError as exc:
        raise PipelineError(f"not valid TOML: {exc}", path=path) from None
    except ValidationError as exc:
        problems = "; ".join(f"data.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise PipelineError(problems, path=path) from None


def classify(prompt: str, rules: dict[str, str]) -> str:
    """The first family whose rule matches the prompt; ``other`` when none does."""
    for family, pattern in rules.items():
        if re.search(pattern, prompt, re.IGNORECASE):
            return family
    return OTHER


def with_families(items: list[Item], rules: dict[str, str]) -> list[Item]:
    return [it if it.family else it.model_copy(update={"family": classify(it.prompt, rules)}) for it in items]


def completion(answer: str, fmt: str) -> str:
    boxed = "\\boxed{" + answer + "}"
    return boxed if fmt == "boxed" else f"The answer is {boxed}."


def build(items: list[Item], recipe: DataRecipe, seed: int) -> list[dict[str, str]]:
    """Filter by family and prompt length, then draw ``n_train`` rows: a family by its mix weight, a row in it."""
    items = with_families(items, recipe.family_rules)
    present = Counter(str(it.family) for it in items)
    unknown = [f for f in recipe.families if f not in present]
    if unknown:
        raise PipelineError(
            f"data.families names {unknown}, which have no rows in {TRAIN_CSV.name} (families: {sorted(present)})",
            fix="list families that occur in the data, or leave data.families empty",
        )
    keep = set(recipe.families) if recipe.families else set(present)
    pool: dict[str, list[Item]] = {}
    for it in items:
        assert it.family is not None
        if it.family in keep and (recipe.max_prompt_chars == 0 or len(it.prompt) <= recipe.max_prompt_chars):
            pool.setdefault(it.family, []).append(it)
    families = sorted(f for f in pool if recipe.mix.get(f, 0.0) > 0)
    if not families:
        raise PipelineError(
            f"no family is left to train on: rows by family after filtering "
            f"{ {f: len(v) for f, v in pool.items()} }, weights {recipe.mix}",
            fix="give at least one family with rows a weight > 0 in [data.mix], or relax the filters",
        )
    unweighted = sorted(f for f in pool if f not in recipe.mix)
    if unweighted:
        print(f"note: families without a [data.mix] weight are left out: {unweighted}", file=sys.stderr)
    weights = [recipe.mix[f] for f in families]
    rng = random.Random(seed)
    rows = []
    for _ in range(recipe.n_train):
        family = rng.choices(families, weights=weights)[0]
        it = rng.choice(pool[family])
        assert it.answer is not None
        rows.append(
            {"id": it.id, "family": family, "prompt": it.prompt, "completion": completion(it.answer, recipe.format)}
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=TRAIN_CSV)
    args = parser.parse_args()
    try:
        rows = build(read_items(args.data, answers=True), load_recipe(args.recipe), args.seed)
    except EvotrainError as exc:
        sys.exit(f"build_data: {exc}")
    atomic_write_text(args.out, "".join(json.dumps(r) + "\n" for r in rows))
    counts = Counter(r["family"] for r in rows)
    print(f"wrote {len(rows)} training examples to {args.out}: {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
