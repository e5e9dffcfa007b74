"""Build the Wonderland puzzles substrate: a complete training stack in the format of docs/substrate-format.md.

Layout written to ``dest``::

    evotrain.toml             the contract (commands, resources, metric, search space)       frozen
    recipe.toml               the post-training recipe                                       editable
    pipeline/build_data.py    data pipeline: sample the pool by the mix, augment, format     editable
    train.py                  SFT (LoRA or full fine-tuning), checkpoints                    editable
    eval/evaluate.py          greedy decoding + scoring of one checkpoint on dev             frozen
    eval/predict.py           predictions on the external inputs (for the external target)   frozen
    data/train_pool.jsonl     training pool (prompt, answer, trace)                          frozen
    data/dev.jsonl            dev split (prompt, answer)                                     frozen
    data/external_inputs.jsonl  external + control prompts, NO answers, opaque ids            frozen
    model/base/               base checkpoint + tokenizer.json                               frozen
    vendor/evotrain/          the evotrain modules the scripts import (evotrain.substrate.seal)  frozen

The answers of the external and control splits are written to ``answers_path`` (outside the substrate), one
JSON object a line: ``{"id", "split", "family", "answer"}``; ``python -m evotrain.puzzles.score`` reads it.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from evotrain.fileio import atomic_write_text, staged_dir
from evotrain.puzzles.base import BaseConfig, base_checkpoint
from evotrain.puzzles.generators import FAMILIES, Puzzle
from evotrain.puzzles.splits import HIDDEN_SPLITS, make_split
from evotrain.substrate.seal import seal_substrate

TEMPLATE = Path(__file__).resolve().parent / "substrate_template"
TEMPLATE_FILES = ("recipe.toml", "train.py", "pipeline/build_data.py", "eval/evaluate.py", "eval/predict.py")


class Profile(BaseModel):
    """How big the model, the base training and the splits are."""

    base: BaseConfig
    sizes: dict[str, int]


PROFILES: dict[str, Profile] = {
    # The CPU default: a 0.7M-parameter Llama; one trial of the default recipe takes about a minute.
    "tiny": Profile(base=BaseConfig(), sizes={"train": 1500, "dev": 50, "external": 50, "control": 50}),
    # For tests of the plumbing only: a model too small to learn much, trained for a few steps.
    "micro": Profile(
        base=BaseConfig(profile="micro", steps=20, batch_size=4),
        sizes={"train": 40, "dev": 4, "external": 4, "control": 4},
    ),
}


class AnswerRecord(BaseModel):
    """One line of the answers file the external target holds."""

    id: str
    split: str
    family: str
    answer: str


def write_answers(path: Path, records: list[AnswerRecord]) -> None:
    """The answers file the external target holds (JSON lines), written atomically."""
    atomic_write_text(path, "".join(r.model_dump_json() + "\n" for r in records))


class SubstrateBuild(BaseModel):
    path: Path
    answers_path: Path
    fingerprint: str  # sha256 over every file of the substrate (paths and contents)
    base_fingerprint: str  # the base checkpoint's cache key
    profile: str
    seed: int
    counts: dict[str, int]  # items per split


TRAIN_COMMAND = (
    "{python} train.py --recipe recipe.toml --data {work}/train.jsonl --checkpoints {checkpoints} "
    "--seed {seed} --summary {output}"
)


def _evotrain_toml() -> str:
    domains = ", ".join(f'"{f}"' for f in FAMILIES)
    return f"""\
name = "puzzles"
description = "Wonderland reasoning puzzles (six families) on a small causal LM, post-trained with SFT on CPU"

editable = ["recipe.toml", "pipeline/**", "train.py"]
frozen = ["eval/**", "data/**", "model/**", "vendor/**", "evotrain.toml"]

[commands]
prepare = "{{python}} pipeline/build_data.py --recipe recipe.toml --out {{work}}/train.jsonl --seed {{seed}}"
train = "{TRAIN_COMMAND}"
evaluate = "{{python}} eval/evaluate.py --checkpoint {{checkpoint}} --split dev --out {{output}}"
evaluate_all = "{{python}} eval/evaluate.py --checkpoints {{checkpoints}} --split dev --out {{output}}"
predict = "{{python}} eval/predict.py --checkpoint {{checkpoint}} --out {{output}}"

[resources.default]
cpus = 1
gpus = 0
memory_gb = 2
timeout_s = 300

[resources.train]
timeout_s = 900

[metric]
name = "accuracy"
direction = "maximize"
domains = [{domains}]
aggregate = "items"

# ---- search space of the offline mutator: one axis = one direction a worker may explore ----

[search.axes.optimizer]
category = "optimization"
description = "learning rate, its schedule and warmup, gradient clipping"

[search.axes.optimizer.knobs.lr]
file = "recipe.toml"
key = "train.lr"
type = "float"
low = 3e-4
high = 1e-2
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
high = 40

[search.axes.optimizer.knobs.grad_clip]
file = "recipe.toml"
key = "train.grad_clip"
type = "float"
low = 0.0
high = 2.0

[search.axes.capacity]
category = "capacity"
description = "LoRA rank and alpha, or full fine-tuning"

[search.axes.capacity.knobs.rank]
file = "recipe.toml"
key = "lora.rank"
type = "int"
low = 2
high = 64
log = true

[search.axes.capacity.knobs.alpha]
file = "recipe.toml"
key = "lora.alpha"
type = "float"
low = 4.0
high = 128.0
log = true

[search.axes.capacity.knobs.method]
file = "recipe.toml"
key = "train.method"
type = "choice"
choices = ["lora", "full"]

[search.axes.data_mix]
category = "data"
description = "per-family data-mix weights"

[search.axes.data_mix.knobs.mix]
file = "recipe.toml"
key = "data.mix"
type = "weights"
low = 0.0
high = 4.0

[search.axes.augmentation]
category = "data"
description = "prompt augmentations: shuffled or dropped solved examples"

[search.axes.augmentation.knobs.shuffle]
file = "recipe.toml"
key = "data.shuffle_examples"
type = "bool"

[search.axes.augmentation.knobs.drop]
file = "recipe.toml"
key = "data.drop_example_prob"
type = "float"
low = 0.0
high = 0.6

[search.axes.answer_format]
category = "format"
description = "bare boxed answer or a short worked trace before it; loss on the prompt or not"

[search.axes.answer_format.knobs.format]
file = "recipe.toml"
key = "data.format"
type = "choice"
choices = ["bare", "trace"]

[search.axes.answer_format.knobs.loss_on_prompt]
file = "recipe.toml"
key = "train.loss_on_prompt"
type = "bool"

[search.axes.schedule]
category = "schedule"
description = "how long to train: steps, batch size, checkpoint interval"

[search.axes.schedule.knobs.steps]
file = "recipe.toml"
key = "train.steps"
type = "int"
low = 50
high = 250

[search.axes.schedule.knobs.batch_size]
file = "recipe.toml"
key = "train.batch_size"
type = "choice"
choices = [4, 8, 16]

[search.axes.schedule.knobs.checkpoint_every]
file = "recipe.toml"
key = "train.checkpoint_every"
type = "choice"
choices = [25, 50, 75]
"""


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def _hidden_items(seed: int, sizes: dict[str, int]) -> list[tuple[str, Puzzle]]:
    """External and control items, shuffled together under opaque ids (x-00000, ...)."""
    items = [(split, p) for split in HIDDEN_SPLITS for p in make_split(split, sizes[split], seed)]
    random.Random(f"{seed}/hidden-order").shuffle(items)
    return [(split, p.model_copy(update={"id": f"x-{i:05d}"})) for i, (split, p) in enumerate(items)]


def tree_fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _write_substrate(
    dest: Path, spec: Profile, seed: int, answers_path: Path, base: Path, say: Callable[[str], None]
) -> dict[str, int]:
    shutil.copytree(base, dest / "model" / "base", ignore=shutil.ignore_patterns("step-*"))
    for rel in TEMPLATE_FILES:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(TEMPLATE / rel, dest / rel)
    (dest / "evotrain.toml").write_text(_evotrain_toml())
    seal_substrate(dest)

    say("generating the splits")
    dev = make_split("dev", spec.sizes["dev"], seed)
    hidden = _hidden_items(seed, spec.sizes)
    held_out = frozenset(p.prompt for p in dev) | frozenset(p.prompt for _, p in hidden)
    train = make_split("train", spec.sizes["train"], seed, exclude=held_out)
    _write_jsonl(
        dest / "data" / "train_pool.jsonl",
        [{"id": p.id, "family": p.family, "prompt": p.prompt, "answer": p.answer, "trace": p.trace} for p in train],
    )
    _write_jsonl(
        dest / "data" / "dev.jsonl",
        [{"id": p.id, "family": p.family, "prompt": p.prompt, "answer": p.answer} for p in dev],
    )
    _write_jsonl(
        dest / "data" / "external_inputs.jsonl",
        [{"id": p.id, "family": p.family, "prompt": p.prompt} for _, p in hidden],
    )
    write_answers(
        answers_path, [AnswerRecord(id=p.id, split=split, family=p.family, answer=p.answer) for split, p in hidden]
    )
    return {"train": len(train), "dev": len(dev)} | {
        s: sum(1 for split, _ in hidden if split == s) for s in HIDDEN_SPLITS
    }


def build_substrate(
    dest: Path,
    *,
    seed: int = 0,
    answers_path: Path,
    profile: str = "tiny",
    progress: Callable[[str], None] | None = None,
) -> SubstrateBuild:
    """Write a complete puzzles substrate to ``dest`` (which must not exist or be empty).

    ``seed`` draws the splits; the base checkpoint does not depend on it (it is cached once per profile).
    The external and control answers go to ``answers_path``, which must lie outside ``dest``.
    """
    say = progress or (lambda _msg: None)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {sorted(PROFILES)}")
    dest, answers_path = dest.resolve(), answers_path.resolve()
    if answers_path.is_relative_to(dest):
        raise ValueError(f"the answers file {answers_path} must lie outside the substrate {dest}")
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} exists and is not empty")
    spec = PROFILES[profile]

    say("building the base checkpoint (cached after the first build)")
    base = base_checkpoint(spec.base, say)
    with staged_dir(dest) as stage:  # a killed build leaves no half substrate at dest
        counts = _write_substrate(stage, spec, seed, answers_path, base, say)
        fingerprint = tree_fingerprint(stage)
    result = SubstrateBuild(
        path=dest,
        answers_path=answers_path,
        fingerprint=fingerprint,
        base_fingerprint=spec.base.fingerprint(),
        profile=profile,
        seed=seed,
        counts=counts,
    )
    say(f"substrate ready at {dest} ({result.fingerprint[:12]})")
    return result
