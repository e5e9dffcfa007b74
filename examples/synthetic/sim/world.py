"""The synthetic substrate's world: the ground truth of every knob, the noise, the proxy trap, and the sampler.

This module is the declared truth the loop-decision benchmark (benchmarks/loop_decisions.py) scores the loop
against; docs/synthetic.md restates it for maintainers. Nothing a worker is given (evotrain.toml, recipe.toml, the
policy) describes it. The substrate's steps (train.py, evaluate.py, predict.py) and the external scorer
(examples/synthetic_score.py) import it; it uses the standard library only, so a step is a ~50 ms process.

A run of a recipe has, per domain, a *dev skill* and an *external skill* (probabilities of answering an item):

    skill[split][domain] = clip(BASE[split][domain] + effect[split][domain](recipe, round) + seed deviation
                                + checkpoint offset)

where `effect` is the sum of the knob effects below (each relative to the base recipe, so the base recipe has
effect 0), the seed deviation is one shared N(0, SEED_SD_SHARED) plus one N(0, SEED_SD_DOMAIN) per domain (the
same draw on dev and external: a lucky seed is lucky on both), and each checkpoint adds its offset plus
N(0, CHECKPOINT_SD). An item of difficulty u is answered when u < skill + N(0, ITEM_JITTER_SD), a fresh draw per
item and run (the item noise). Difficulties are stratified, u = (i + 0.5) / n in a seeded order, so a split's
expected score is its skill (up to the jitter's clipping at 0 and 1): the expected dev score of a recipe is the
mean of its dev skills (equal items per domain), the expected external score the item-weighted mean of its
external skills (the external target over-represents `lexical` and `spatial`: the shift).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
from collections.abc import Mapping

TYPE_CHECKING = False  # the steps start in ~20 ms: no typing, dataclasses, argparse, re or hashlib imports here
if TYPE_CHECKING:
    from typing import Any

DOMAINS = ("arith", "logic", "spatial", "lexical")
TRAP_DOMAIN = "logic"  # the weak dev domain the proxy trap flatters

DEV_ITEMS_PER_DOMAIN = 200
EXTERNAL_ITEMS = {"arith": 100, "logic": 100, "spatial": 150, "lexical": 250}

BASE = {
    "dev": {"arith": 0.55, "logic": 0.35, "spatial": 0.50, "lexical": 0.60},
    "external": {"arith": 0.50, "logic": 0.30, "spatial": 0.45, "lexical": 0.50},
}
SKILL_RANGE = (0.02, 0.98)

SEED_SD_SHARED = 0.012  # seed noise shared by every domain (and by dev and external)
SEED_SD_DOMAIN = 0.010  # seed noise of each domain on its own
CHECKPOINTS = (("ckpt-1", -0.03), ("ckpt-2", -0.01), ("ckpt-3", 0.0))  # name, skill offset
CHECKPOINT_SD = 0.004  # per-checkpoint noise (shared by domains)
ITEM_JITTER_SD = 0.15  # per-item, per-run noise on the answer threshold

# The base recipe (recipe.toml), by dotted key: every effect is measured from it.
BASE_RECIPE: dict[str, Any] = {
    "train.lr": 1e-3,
    "train.clip": 10.0,
    "train.schedule": "constant",
    "train.warmup": 0,
    "train.weight_decay": 1e-5,
    "train.dropout": 0.3,
    "data.mix": {d: 1.0 for d in DOMAINS},
    "augment.ratio": 0.0,
}


class Bump:
    """A concave response with its best value at `center`: g(x) = -curvature · min(z², cap), z = (x − center) /
    scale, with x in log10 for a log knob (center then in log10 too)."""

    def __init__(self, *, center: float, curvature: float, cap: float, scale: float = 1.0, log: bool = False) -> None:
        self.center, self.curvature, self.cap, self.scale, self.log = center, curvature, cap, scale, log

    def __call__(self, x: float) -> float:
        v = math.log10(x) if self.log else x
        z = (v - self.center) / self.scale
        return -self.curvature * min(z * z, self.cap)


class ScalarTruth:
    """A numeric knob whose effect is the same on every domain: `dev` and `external` scale its bump per split."""

    def __init__(self, key: str, curve: Bump, *, dev: float, external: float) -> None:
        self.key, self.curve, self.dev, self.external = key, curve, dev, external

    def effect(self, value: float) -> float:
        return self.curve(float(value)) - self.curve(float(BASE_RECIPE[self.key]))


# ---- the ground-truth table ----------------------------------------------------------------------------------
# Effects are in skill units (probability of an item). From the base recipe:
#   train.lr 1e-3 → 3e-3 (its best): dev +0.040, external +0.032; ÷3 → 3.3e-4: dev −0.048, external −0.038
#   train.clip 10 → 1 (its best): +0.010 on both
#   train.warmup 0 → 40 (its best): +0.008 on both
#   train.weight_decay 1e-5 → 1e-3 (its best): dev +0.024, external +0.036
#   train.dropout 0.3 → 0.1 (its best): dev +0.012, external +0.018; 0.3 → 0.5: dev −0.036, external −0.054
#   train.schedule constant → linear +0.015, → cosine +0.030 on both
#   data.mix: the domain whose weight grows gains, the others lose (shares of a fixed budget); the external
#     target rewards lexical more and logic less than dev does (see MIX_ALPHA)
#   augment.ratio 0 → r: dev 0, external −0.01·r on every domain; with the trap on, from `trap_round` on, dev on
#     TRAP_DOMAIN gains TRAP_DEV_GAIN·r (external unchanged): the proxy trap
SCALARS = (
    ScalarTruth("train.lr", Bump(center=math.log10(3e-3), curvature=0.1755, cap=0.5, log=True), dev=1.0, external=0.8),
    ScalarTruth("train.clip", Bump(center=0.0, curvature=0.01, cap=1.0, log=True), dev=1.0, external=1.0),
    ScalarTruth("train.warmup", Bump(center=40.0, curvature=0.05, cap=1.0, scale=100.0), dev=1.0, external=1.0),
    ScalarTruth("train.weight_decay", Bump(center=-3.0, curvature=0.006, cap=4.0, log=True), dev=1.0, external=1.5),
    ScalarTruth("train.dropout", Bump(center=0.1, curvature=0.3, cap=1.0), dev=1.0, external=1.5),
)
SCHEDULE = {"constant": 0.0, "linear": 0.015, "cosine": 0.030}
MIX_ALPHA = {  # skill change per unit of ln(domain share / base share)
    "dev": {"arith": 0.04, "logic": 0.04, "spatial": 0.04, "lexical": 0.04},
    "external": {"arith": 0.04, "logic": 0.02, "spatial": 0.04, "lexical": 0.06},
}
MIX_SHARE_FLOOR = 0.02  # a domain dropped from the mix counts as this share (ln 0 is not a skill)
AUGMENT_EXTERNAL = -0.01  # per unit of augment.ratio, every domain, external only
TRAP_DEV_GAIN = 1.0  # per unit of augment.ratio, TRAP_DOMAIN's dev skill, when the trap is on


WORLD_KEYS = {"seed": int, "trap": bool, "trap_round": int}


class World:
    """world.json: what the benchmark writes into its copy of the substrate before `evotrain init`."""

    def __init__(self, *, seed: int = 0, trap: bool = False, trap_round: int = 3) -> None:
        self.seed = seed  # draws the item order and the hidden answers
        self.trap = trap  # whether the proxy trap exists at all
        self.trap_round = trap_round  # the first round in which it takes effect

    def trap_active(self, round_no: int) -> bool:
        return self.trap and round_no >= self.trap_round

    def to_json(self) -> str:
        return json.dumps({"seed": self.seed, "trap": self.trap, "trap_round": self.trap_round})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, World) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"World(seed={self.seed}, trap={self.trap}, trap_round={self.trap_round})"


def load_world(path: str | os.PathLike[str]) -> World:
    """Read and check world.json (a file with unknown keys or wrong types is refused, naming the key)."""
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: world.json holds one object")
    unknown = sorted(set(raw) - set(WORLD_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; world.json holds only {sorted(WORLD_KEYS)}")
    for key, kind in WORLD_KEYS.items():
        if key in raw and type(raw[key]) is not kind:
            raise ValueError(f"{path}: `{key}` must be {kind.__name__}, not {type(raw[key]).__name__}")
    world = World(**raw)
    if world.trap_round < 1:
        raise ValueError(f"{path}: `trap_round` must be >= 1")
    return world


def write_world(path: str | os.PathLike[str], world: World) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(world.to_json() + "\n")


# ---- recipes and their true effects --------------------------------------------------------------------------
def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """recipe.toml as dotted keys; `data.mix` stays one table."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and dotted != "data.mix":
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = dict(value) if isinstance(value, Mapping) else value
    return out


def read_recipe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A recipe file's knob values by dotted key, the base recipe filling what it lacks."""
    import tomllib  # only the train step reads a recipe

    with open(path, "rb") as fh:
        return {**BASE_RECIPE, **flatten(tomllib.load(fh))}


def _mix_shares(mix: Mapping[str, float]) -> dict[str, float]:
    weights = {d: max(float(mix.get(d, 1.0)), 0.0) for d in DOMAINS}
    total = sum(weights.values())
    if total <= 0:
        return {d: MIX_SHARE_FLOOR for d in DOMAINS}
    return {d: max(w / total, MIX_SHARE_FLOOR) for d, w in weights.items()}


def effects(recipe: Mapping[str, Any], *, round_no: int, world: World) -> dict[str, dict[str, float]]:
    """The true effect of `recipe` against the base recipe, per split and domain, in skill units."""
    r = {**BASE_RECIPE, **recipe}
    out = {split: {d: 0.0 for d in DOMAINS} for split in ("dev", "external")}
    for scalar in SCALARS:
        e = scalar.effect(r[scalar.key])
        for d in DOMAINS:
            out["dev"][d] += scalar.dev * e
            out["external"][d] += scalar.external * e
    schedule = SCHEDULE.get(str(r["train.schedule"]), 0.0)
    base_shares = _mix_shares(BASE_RECIPE["data.mix"])
    shares = _mix_shares(r["data.mix"])
    ratio = float(r["augment.ratio"])
    for d in DOMAINS:
        mix = math.log(shares[d] / base_shares[d])
        for split in ("dev", "external"):
            out[split][d] += schedule + MIX_ALPHA[split][d] * mix
        out["external"][d] += AUGMENT_EXTERNAL * ratio
    if world.trap_active(round_no):
        out["dev"][TRAP_DOMAIN] += TRAP_DEV_GAIN * ratio
    return out


def clip_skill(x: float) -> float:
    return min(max(x, SKILL_RANGE[0]), SKILL_RANGE[1])


def expected_skills(recipe: Mapping[str, Any], *, round_no: int, world: World) -> dict[str, dict[str, float]]:
    """Noise-free skills of a recipe's final checkpoint, per split and domain."""
    eff = effects(recipe, round_no=round_no, world=world)
    return {split: {d: clip_skill(BASE[split][d] + eff[split][d]) for d in DOMAINS} for split in eff}


def expected_scores(recipe: Mapping[str, Any], *, round_no: int, world: World) -> dict[str, float]:
    """The true expected dev score, dev score per domain (`dev.<domain>`) and external score of a recipe's final
    checkpoint: what the benchmark calls a change's true effect (candidate minus its standing recipe)."""
    skills = expected_skills(recipe, round_no=round_no, world=world)
    total = sum(EXTERNAL_ITEMS.values())
    out = {
        "dev": sum(skills["dev"].values()) / len(DOMAINS),
        "external": sum(skills["external"][d] * n for d, n in EXTERNAL_ITEMS.items()) / total,
    }
    out.update({f"dev.{d}": s for d, s in skills["dev"].items()})
    out.update({f"external.{d}": s for d, s in skills["external"].items()})
    return out


# ---- sampling a run ------------------------------------------------------------------------------------------
def run_skills(
    recipe: Mapping[str, Any], *, round_no: int, world: World, seed: int
) -> list[tuple[str, dict[str, dict[str, float]]]]:
    """One training run: per checkpoint (in training order), its dev and external skills under seed noise."""
    rng = random.Random(f"synthetic/run/{world.seed}/{seed}")
    shared = rng.gauss(0.0, SEED_SD_SHARED)
    deviation = {d: shared + rng.gauss(0.0, SEED_SD_DOMAIN) for d in DOMAINS}
    eff = effects(recipe, round_no=round_no, world=world)
    out = []
    for name, offset in CHECKPOINTS:
        jitter = rng.gauss(0.0, CHECKPOINT_SD)
        out.append(
            (
                name,
                {
                    split: {
                        d: clip_skill(BASE[split][d] + eff[split][d] + deviation[d] + offset + jitter) for d in DOMAINS
                    }
                    for split in ("dev", "external")
                },
            )
        )
    return out


class Item:
    __slots__ = ("difficulty", "domain", "id")

    def __init__(self, id: str, domain: str, difficulty: float) -> None:
        self.id, self.domain, self.difficulty = id, domain, difficulty


def items(split: str, world: World) -> list[Item]:
    """The split's items: stratified difficulties in a seeded order (dev: DEV_ITEMS_PER_DOMAIN per domain)."""
    counts = {d: DEV_ITEMS_PER_DOMAIN for d in DOMAINS} if split == "dev" else EXTERNAL_ITEMS
    out = []
    for d in DOMAINS:
        n = counts[d]
        order = list(range(n))
        random.Random(f"synthetic/items/{world.seed}/{split}/{d}").shuffle(order)
        out += [Item(f"{split}-{d}-{i:04d}", d, (order[i] + 0.5) / n) for i in range(n)]
    return out


def answered(skills: Mapping[str, float], split_items: list[Item], rng: random.Random) -> list[bool]:
    """Which items a checkpoint of these skills answers: u < skill + N(0, ITEM_JITTER_SD), a fresh draw each."""
    return [item.difficulty < skills[item.domain] + rng.gauss(0.0, ITEM_JITTER_SD) for item in split_items]


def item_rng(world: World, seed: int, checkpoint: str, split: str) -> random.Random:
    return random.Random(f"synthetic/answer/{world.seed}/{seed}/{checkpoint}/{split}")


def hidden_answer(world: World, item_id: str) -> str:
    """The external item's answer, known to the simulated model when it answers and to the external scorer."""
    return f"{random.Random(f'synthetic/hidden/{world.seed}/{item_id}').getrandbits(32):08x}"


def round_of(path: str) -> int:
    """The campaign round a sandbox or work folder belongs to (…/rounds/r0003/candidates/…), else 1."""
    parts = os.path.abspath(path).split(os.sep)
    for parent, name in itertools.pairwise(parts):
        if parent == "rounds" and len(name) == 5 and name[0] == "r" and name[1:].isdigit():
            return int(name[1:])
    return 1


def flags(argv: list[str], names: set[str]) -> dict[str, str]:
    """`--name value` pairs (argparse costs a step more than its work); an unknown or valueless flag exits 2."""
    out: dict[str, str] = {}
    it = iter(argv)
    for arg in it:
        name = arg.removeprefix("--")
        value = next(it, None)
        if not arg.startswith("--") or name not in names or value is None:
            raise SystemExit(f"usage: --{' --'.join(sorted(names))} (bad argument {arg!r})")
        out[name] = value
    return out
