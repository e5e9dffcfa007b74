"""The synthetic substrate (examples/synthetic, docs/synthetic.md): its declared truth is what its runs do.

The ground truth (sim/world.py) is checked three ways: the table itself (a knob's true effect has the sign and size
the docs state), the sampler (many simulated runs of two recipes differ by the true effect), and the real steps (the
substrate's commands and the external scorer, run as evotrain runs them, agree with the sampler).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from evotrain.substrate.spec import load_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SUBSTRATE = EXAMPLES / "synthetic"


def _load_world() -> ModuleType:
    spec = importlib.util.spec_from_file_location("synthetic_world_under_test", SUBSTRATE / "sim" / "world.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


W = _load_world()
TRAP = W.World(seed=7, trap=True, trap_round=3)
NO_TRAP = W.World(seed=7, trap=False, trap_round=3)


def true_effect(recipe: dict[str, Any], *, world: Any = NO_TRAP, round_no: int = 1) -> dict[str, float]:
    a = W.expected_scores(recipe, round_no=round_no, world=world)
    b = W.expected_scores({}, round_no=round_no, world=world)
    return {k: a[k] - b[k] for k in a}


def sampled(recipe: dict[str, Any], *, world: Any, round_no: int, seeds: range) -> dict[str, float]:
    """Mean final-checkpoint scores over seeds, drawn by the substrate's own sampler (items and all)."""
    dev_items, ext_items = W.items("dev", world), W.items("external", world)
    dev, ext, logic = [], [], []
    for seed in seeds:
        name, skills = W.run_skills(recipe, round_no=round_no, world=world, seed=seed)[-1]
        d = W.answered(skills["dev"], dev_items, W.item_rng(world, seed, name, "dev"))
        e = W.answered(skills["external"], ext_items, W.item_rng(world, seed, name, "external"))
        dev.append(sum(d) / len(d))
        ext.append(sum(e) / len(e))
        hits = [h for h, item in zip(d, dev_items, strict=True) if item.domain == W.TRAP_DOMAIN]
        logic.append(sum(hits) / len(hits))
    return {"dev": statistics.mean(dev), "external": statistics.mean(ext), "logic": statistics.mean(logic)}


# ---- the table -----------------------------------------------------------------------------------------------
def test_the_base_recipe_has_no_effect_and_matches_recipe_toml() -> None:
    assert W.read_recipe(SUBSTRATE / "recipe.toml") == W.BASE_RECIPE
    assert all(v == pytest.approx(0.0) for v in true_effect({}).values())


@pytest.mark.parametrize(
    ("recipe", "dev", "external"),
    [
        ({"train.lr": 3e-3}, 0.040, 0.032),  # the learning rate's best value
        ({"train.lr": 3.3e-4}, -0.048, -0.038),  # too low
        ({"train.schedule": "cosine"}, 0.030, 0.030),
        ({"train.weight_decay": 1e-3}, 0.024, 0.036),  # transfers more than dev shows
        ({"train.dropout": 0.5}, -0.036, -0.054),
        ({"augment.ratio": 0.5}, 0.0, -0.005),  # no trap: augmentation is mildly harmful
    ],
)
def test_declared_effects(recipe: dict[str, Any], dev: float, external: float) -> None:
    effect = true_effect(recipe)
    assert effect["dev"] == pytest.approx(dev, abs=1e-3)
    assert effect["external"] == pytest.approx(external, abs=1e-3)


def test_the_mix_trades_domains_and_the_external_target_rewards_lexical() -> None:
    more_lexical = true_effect({"data.mix": {**W.BASE_RECIPE["data.mix"], "lexical": 2.0}})
    more_logic = true_effect({"data.mix": {**W.BASE_RECIPE["data.mix"], "logic": 2.0}})
    assert more_lexical["dev.lexical"] > 0 > more_lexical["dev.arith"]
    assert more_lexical["external"] > 0.005 > abs(more_lexical["dev"])  # invisible on dev, real on external
    assert more_logic["dev.logic"] > 0 > more_logic["external"]


def test_the_trap_raises_dev_on_its_domain_from_its_round_and_never_external() -> None:
    recipe = {"augment.ratio": 0.2}
    before = true_effect(recipe, world=TRAP, round_no=2)
    at_onset = true_effect(recipe, world=TRAP, round_no=3)
    later = true_effect(recipe, world=TRAP, round_no=4)
    assert before[f"dev.{W.TRAP_DOMAIN}"] == pytest.approx(0.0)
    assert at_onset[f"dev.{W.TRAP_DOMAIN}"] == pytest.approx(0.2) == later[f"dev.{W.TRAP_DOMAIN}"]
    assert at_onset["dev"] == pytest.approx(0.05)
    others = [d for d in W.DOMAINS if d != W.TRAP_DOMAIN]
    assert all(at_onset[f"dev.{d}"] == pytest.approx(0.0) for d in others)
    assert at_onset["external"] == before["external"] < 0  # external: the same small loss with or without it


def test_with_the_trap_off_there_is_no_trap_in_any_round() -> None:
    for round_no in range(1, 8):
        assert true_effect({"augment.ratio": 1.0}, world=NO_TRAP, round_no=round_no)["dev"] == pytest.approx(0.0)


# ---- the sampler ---------------------------------------------------------------------------------------------
def test_a_truly_positive_knob_raises_the_expected_external_score() -> None:
    seeds = range(40)
    base = sampled({}, world=NO_TRAP, round_no=1, seeds=seeds)
    better = sampled({"train.lr": 3e-3, "train.schedule": "cosine"}, world=NO_TRAP, round_no=1, seeds=seeds)
    truth = true_effect({"train.lr": 3e-3, "train.schedule": "cosine"})
    assert better["external"] - base["external"] == pytest.approx(truth["external"], abs=0.012)
    assert better["dev"] - base["dev"] == pytest.approx(truth["dev"], abs=0.012)


def test_the_sampled_trap_gains_dev_on_its_domain_but_not_external() -> None:
    seeds = range(30)
    recipe = {"augment.ratio": 0.2}
    base = sampled({}, world=TRAP, round_no=3, seeds=seeds)
    trap = sampled(recipe, world=TRAP, round_no=3, seeds=seeds)
    assert trap["logic"] - base["logic"] == pytest.approx(0.2, abs=0.03)
    assert abs(trap["external"] - base["external"]) < 0.01
    early = sampled(recipe, world=TRAP, round_no=2, seeds=seeds)
    assert abs(early["logic"] - sampled({}, world=TRAP, round_no=2, seeds=seeds)["logic"]) < 0.02


def test_seed_noise_is_what_the_module_declares() -> None:
    world = NO_TRAP
    finals = [W.run_skills({}, round_no=1, world=world, seed=s)[-1][1]["dev"]["arith"] for s in range(400)]
    declared = (W.SEED_SD_SHARED**2 + W.SEED_SD_DOMAIN**2 + W.CHECKPOINT_SD**2) ** 0.5
    assert statistics.stdev(finals) == pytest.approx(declared, rel=0.15)
    assert statistics.mean(finals) == pytest.approx(W.BASE["dev"]["arith"], abs=0.004)


def test_world_json_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        W.load_world(_write(json.dumps({"seed": 1, "trapp": True})))
    with pytest.raises(ValueError, match="`trap` must be bool"):
        W.load_world(_write(json.dumps({"trap": 1})))
    assert W.load_world(_write(TRAP.to_json())) == TRAP


def _write(text: str) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "world.json"
    path.write_text(text)
    return path


# ---- the real steps ------------------------------------------------------------------------------------------
def _step(cwd: Path, script: str, *args: str) -> None:
    subprocess.run([sys.executable, "-S", script, *args], cwd=cwd, check=True, capture_output=True, text=True)


def test_the_steps_and_the_scorer_run_the_declared_world(tmp_path: Path) -> None:
    sandbox = tmp_path / "rounds" / "r0003" / "candidates" / "c02-augmentation" / "sandbox"
    shutil.copytree(SUBSTRATE, sandbox, ignore=shutil.ignore_patterns("__pycache__"))
    W.write_world(sandbox / "world.json", TRAP)
    spec = load_spec(sandbox)
    assert spec.metric.domains == list(W.DOMAINS)
    assert sorted(k.key for a in spec.search.axes.values() for k in a.knobs.values()) == sorted(W.BASE_RECIPE)
    text = (sandbox / "recipe.toml").read_text().replace("ratio = 0.0", "ratio = 0.2")
    (sandbox / "recipe.toml").write_text(text)
    ckpts, evals = tmp_path / "ckpts", tmp_path / "eval"
    args = ["--recipe", "recipe.toml", "--world", "world.json", "--checkpoints", str(ckpts), "--seed", "5"]
    _step(sandbox, "sim/train.py", *args)  # the round (3, the trap's onset) comes from the sandbox's path
    _step(sandbox, "sim/evaluate.py", "--world", "world.json", "--checkpoints", str(ckpts), "--out", str(evals))
    assert sorted(p.name for p in evals.iterdir()) == [f"{name}.json" for name, _ in W.CHECKPOINTS]
    last = W.CHECKPOINTS[-1][0]
    report = json.loads((evals / f"{last}.json").read_text())
    assert {d: r["n"] for d, r in report["domains"].items()} == {d: W.DEV_ITEMS_PER_DOMAIN for d in W.DOMAINS}
    assert {i["score"] for i in report["items"]} <= {0.0, 1.0}
    recipe = W.read_recipe(sandbox / "recipe.toml")
    skills = dict(W.run_skills(recipe, round_no=3, world=TRAP, seed=5))[last]
    assert json.loads((ckpts / last / "skill.json").read_text())["dev"] == skills["dev"]
    assert report["domains"][W.TRAP_DOMAIN]["score"] == pytest.approx(skills["dev"][W.TRAP_DOMAIN], abs=0.08)

    predictions = tmp_path / "predictions.json"
    _step(
        sandbox, "sim/predict.py", "--world", "world.json", "--checkpoint", str(ckpts / last), "--out", str(predictions)
    )
    scorer = [sys.executable, "-S", str(EXAMPLES / "synthetic_score.py"), "--world", str(sandbox / "world.json")]
    out = subprocess.run([*scorer, "--predictions", str(predictions)], capture_output=True, text=True, check=True)
    score = json.loads(out.stdout)
    assert score["n"] == sum(W.EXTERNAL_ITEMS.values())
    expected = sum(skills["external"][d] * n for d, n in W.EXTERNAL_ITEMS.items()) / score["n"]
    assert score["score"] == pytest.approx(expected, abs=0.05)
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    failed = subprocess.run([*scorer, "--predictions", str(bad)], capture_output=True, text=True)
    assert failed.returncode == 2 and "not a predictions file" in failed.stderr


def test_a_step_is_deterministic_given_its_seed(tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    shutil.copytree(SUBSTRATE, sandbox, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("a", "b"):
        args = ["--recipe", "recipe.toml", "--world", "world.json", "--checkpoints", str(tmp_path / name)]
        _step(sandbox, "sim/train.py", *args, "--seed", "11", "--round", "2")
        _step(
            sandbox,
            "sim/evaluate.py",
            "--world",
            "world.json",
            "--checkpoints",
            str(tmp_path / name),
            "--out",
            str(tmp_path / f"{name}-eval"),
        )
    for report in (tmp_path / "a-eval").iterdir():
        assert report.read_text() == (tmp_path / "b-eval" / report.name).read_text()
