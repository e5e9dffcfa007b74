"""A small throwaway substrate for the snapshot, sandbox and mutator tests (not a test module itself)."""

from __future__ import annotations

import os
from pathlib import Path

from evotrain.substrate.spec import SubstrateSpec, load_spec

EVOTRAIN_TOML = """\
name = "tiny"
editable = ["recipe.toml", "pipeline/**"]
frozen = ["eval/**", "data/**", "evotrain.toml"]

[commands]
train = "{python} train.py --recipe recipe.toml --checkpoints {checkpoints}"
evaluate = "{python} eval/evaluate.py --checkpoint {checkpoint} --out {output}"

[metric]
name = "accuracy"
domains = ["cipher", "numeral"]

[search.axes.optimizer]
category = "optimization"
description = "learning rate and its schedule"

[search.axes.optimizer.knobs.lr]
file = "recipe.toml"
key = "train.lr"
type = "float"
low = 1e-4
high = 3e-2
log = true

[search.axes.optimizer.knobs.schedule]
file = "recipe.toml"
key = "train.schedule"
type = "choice"
choices = ["constant", "linear", "cosine"]

[search.axes.optimizer.knobs.warmup]
file = "recipe.toml"
key = "train.warmup_steps"
type = "int"
low = 0
high = 100

[search.axes.optimizer.knobs.clip]
file = "recipe.toml"
key = "train.clip_grad"
type = "bool"

[search.axes.data_mix]
category = "data"
description = "per-family data-mix weights"

[search.axes.data_mix.knobs.mix]
file = "recipe.toml"
key = "data.mix"
type = "weights"
low = 0.0
high = 4.0
"""

RECIPE_TOML = """\
# the recipe a worker may edit
[train]
lr = 0.003  # learning rate
schedule = "cosine"
warmup_steps = 10
clip_grad = true

[data]
mix = { cipher = 1.0, numeral = 2 }
"""


def make_substrate(root: Path, big_bytes: int = 0) -> Path:
    """Write the tiny substrate under `root/substrate` and return it.

    Layout: evotrain.toml and recipe.toml (editable), pipeline/build.py (editable), train.py (shared),
    eval/evaluate.py and data/dev.jsonl (frozen), model/weights.bin (shared; `big_bytes` long), plus caches and a
    .git folder that a snapshot must skip.
    """
    sub = root / "substrate"
    files = {
        "evotrain.toml": EVOTRAIN_TOML,
        "recipe.toml": RECIPE_TOML,
        "pipeline/build.py": "print('build')\n",
        "train.py": "print('train')\n",
        "eval/evaluate.py": "print('evaluate')\n",
        "data/dev.jsonl": '{"id": "dev-1", "answer": "42"}\n',
        ".git/HEAD": "ref: refs/heads/main\n",
        "pipeline/__pycache__/build.cpython-311.pyc": "cache",
    }
    for relpath, text in files.items():
        path = sub / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (sub / "model").mkdir()
    (sub / "model/weights.bin").write_bytes(os.urandom(big_bytes) if big_bytes else b"\x00\x01weights")
    return sub


def tiny_spec(substrate: Path) -> SubstrateSpec:
    return load_spec(substrate)
