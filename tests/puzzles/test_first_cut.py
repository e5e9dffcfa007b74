"""The default recipe is a first cut with headroom that the offline mutator can reach (docs/puzzles.md).

Each lever measured in docs/puzzles.md, the proxy trap and the rebalancing move is ONE move of the mutator from
the default recipe, inside the declared search space; nothing a worker reads names them.
"""

import random
import tomllib
from pathlib import Path
from typing import Any

import pytest

from evotrain.puzzles.build import TEMPLATE, TEMPLATE_FILES, _evotrain_toml
from evotrain.substrate.spec import SubstrateSpec, load_spec
from evotrain.workers.mutator import candidate_moves

RECIPE = tomllib.loads((TEMPLATE / "recipe.toml").read_text())


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> SubstrateSpec:
    root = tmp_path_factory.mktemp("spec")
    (root / "evotrain.toml").write_text(_evotrain_toml())
    (root / "recipe.toml").write_text((TEMPLATE / "recipe.toml").read_text())
    return load_spec(root)


def _value(key: str) -> Any:
    value: Any = RECIPE
    for part in key.split("."):
        value = value[part]
    return value


def _reachable(spec: SubstrateSpec, axis: str, knob: str) -> list[tuple[str, Any]]:
    """(key, new value) of every one-knob move the mutator can make from the default recipe, over many seeds."""
    k = spec.search.axes[axis].knobs[knob]
    seen = []
    for seed in range(200):
        for move in candidate_moves(knob, k, _value(k.key), random.Random(seed)):
            seen.append((move.key, move.new))
    return seen


def test_the_first_cut() -> None:
    train, lora, mix = RECIPE["train"], RECIPE["lora"], RECIPE["data"]["mix"]
    assert train["schedule"] == "cosine" and train["warmup_steps"] > 0 and train["grad_clip"] == 0.0
    assert lora["rank"] == 8 and mix["equations"] == 2.0
    assert all(w == 1.0 for f, w in mix.items() if f != "equations")
    # The speed budget of a trial (docs/puzzles.md: about 20-30 s two at a time): sequences trained, checkpoints.
    assert train["steps"] * train["batch_size"] <= 1200
    assert train["steps"] // train["checkpoint_every"] == 2


def test_levers_trap_and_rebalancing_are_one_move_each(spec: SubstrateSpec) -> None:
    assert ("train.schedule", "constant") in _reachable(spec, "optimizer", "schedule")
    assert ("train.warmup_steps", 0) in _reachable(spec, "optimizer", "warmup")
    clip = spec.search.axes["optimizer"].knobs["grad_clip"]
    clips = [v for _, v in _reachable(spec, "optimizer", "grad_clip")]
    # Every move stays inside the declared range (draws across it included); the measured lever, clipping near 0.5,
    # is one of them.
    assert clips and all(clip.low <= v <= clip.high for v in clips) and any(0.45 <= v <= 0.55 for v in clips)
    assert ("lora.rank", 16) in _reachable(spec, "capacity", "rank")
    equations = [v for key, v in _reachable(spec, "data_mix", "mix") if key == "data.mix.equations"]
    assert 4.0 in equations  # the proxy trap: the weak dev domain upweighted
    assert any(0.8 <= v <= 1.2 for v in equations)  # the rebalancing move


def test_grad_clip_is_declared_and_zero_turns_it_off() -> None:
    text = _evotrain_toml()
    knob = tomllib.loads(text)["search"]["axes"]["optimizer"]["knobs"]["grad_clip"]
    assert knob == {"file": "recipe.toml", "key": "train.grad_clip", "type": "float", "low": 0.0, "high": 2.0}
    train_py = (TEMPLATE / "train.py").read_text()
    assert 'if cfg["grad_clip"] > 0:' in train_py


def test_nothing_a_worker_reads_describes_the_design() -> None:
    text = _evotrain_toml() + "".join((TEMPLATE / rel).read_text() for rel in TEMPLATE_FILES)
    lowered = text.lower()
    for word in ("first cut", "trap", "proxy", "headroom", "over-represented", "lever", "shift"):
        assert word not in lowered.replace("shift_", ""), word


def test_template_files_exist() -> None:
    assert all((TEMPLATE / rel).is_file() for rel in TEMPLATE_FILES)
    assert Path(TEMPLATE / "recipe.toml").read_text().count("grad_clip") == 1
