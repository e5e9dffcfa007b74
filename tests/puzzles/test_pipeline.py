"""The substrate's data pipeline and training script, run for real on the micro profile."""

import importlib.util
import json
import os
import random
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from evotrain.puzzles.build import TEMPLATE, build_substrate
from evotrain.puzzles.generators import FAMILIES
from evotrain.puzzles.score import load_answers, score

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PIPE = _load(TEMPLATE / "pipeline" / "build_data.py")
RECIPE = tomllib.loads((TEMPLATE / "recipe.toml").read_text())


def _pool(tmp_path: Path) -> Path:
    from evotrain.puzzles.splits import make_split

    pool = tmp_path / "train_pool.jsonl"
    pool.write_text(
        "".join(
            json.dumps({"id": p.id, "family": p.family, "prompt": p.prompt, "answer": p.answer, "trace": p.trace})
            + "\n"
            for p in make_split("train", 20)
        )
    )
    return pool


def test_mix_weights_select_families(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PIPE, "POOL", _pool(tmp_path))
    recipe = json.loads(json.dumps(RECIPE))
    recipe["data"]["mix"] = dict.fromkeys(FAMILIES, 0.0) | {"equations": 3.0, "cipher": 1.0}
    rows = PIPE.build(recipe, seed=0)
    counts = {f: sum(r["family"] == f for r in rows) for f in FAMILIES}
    assert set(f for f, c in counts.items() if c) == {"equations", "cipher"}
    assert 2.4 < counts["equations"] / counts["cipher"] < 3.7
    assert PIPE.build(recipe, seed=0) == rows and PIPE.build(recipe, seed=1) != rows


def test_answer_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PIPE, "POOL", _pool(tmp_path))
    for fmt in ("bare", "trace"):
        recipe = json.loads(json.dumps(RECIPE))
        recipe["data"]["format"] = fmt
        for row in PIPE.build(recipe, seed=0)[:30]:
            assert row["completion"].endswith("}") and "\\boxed{" in row["completion"]
            assert ("\n" in row["completion"]) == (fmt == "trace")
    with pytest.raises(ValueError):
        PIPE.completion({"answer": "1", "trace": ""}, "essay")


def test_augmentations_keep_header_and_question() -> None:
    prompt = "header\nA -> 1\nB -> 2\nC -> 3\nD -> 4\nquestion"
    rng = random.Random(0)
    shuffled = {PIPE.augment(prompt, rng, True, 0.0) for _ in range(30)}
    assert len(shuffled) > 5
    for text in shuffled:
        lines = text.split("\n")
        assert lines[0] == "header" and lines[-1] == "question"
        assert sorted(lines[1:-1]) == ["A -> 1", "B -> 2", "C -> 3", "D -> 4"]
    dropped = PIPE.augment(prompt, rng, False, 1.0).split("\n")
    assert len(dropped) == 5 and dropped[0] == "header" and dropped[-1] == "question"
    assert PIPE.augment("h\nA -> 1\nB -> 2\nq", rng, False, 1.0).count("\n") == 3  # keeps at least 2 examples


@pytest.mark.slow
def test_a_trial_runs_end_to_end(tmp_path: Path) -> None:
    """prepare -> train (LoRA and full) -> evaluate every checkpoint -> predict -> score, on the micro profile."""
    env = {**os.environ, "EVOTRAIN_CACHE": str(tmp_path / "cache"), "PYTHONPATH": SRC}
    os.environ["EVOTRAIN_CACHE"] = env["EVOTRAIN_CACHE"]
    built = build_substrate(tmp_path / "sub", answers_path=tmp_path / "answers.jsonl", profile="micro")
    sub, work = built.path, tmp_path / "work"
    recipe = (sub / "recipe.toml").read_text().replace("steps = 150", "steps = 6")
    (sub / "recipe.toml").write_text(recipe.replace("checkpoint_every = 75", "checkpoint_every = 3"))

    def run(*args: str) -> None:
        subprocess.run([sys.executable, *args], cwd=sub, env=env, check=True, capture_output=True)

    run("pipeline/build_data.py", "--recipe", "recipe.toml", "--out", str(work / "train.jsonl"), "--seed", "1")
    for method in ("lora", "full"):
        (sub / "recipe.toml").write_text(
            recipe.replace('method = "lora"', f'method = "{method}"').replace(
                "checkpoint_every = 75", "checkpoint_every = 3"
            )
        )
        ckpts = work / method
        run(
            "train.py",
            "--recipe",
            "recipe.toml",
            "--data",
            str(work / "train.jsonl"),
            "--checkpoints",
            str(ckpts),
            "--seed",
            "1",
            "--summary",
            str(work / f"{method}.json"),
        )
        assert [c.name for c in sorted(ckpts.iterdir())] == ["step-00003", "step-00006"]
        assert json.loads((work / f"{method}.json").read_text())["steps"] == 6
        run(
            "eval/evaluate.py",
            "--checkpoint",
            str(ckpts / "step-00006"),
            "--split",
            "dev",
            "--out",
            str(work / f"{method}-eval.json"),
        )
        report = json.loads((work / f"{method}-eval.json").read_text())
        assert report["metric"] == "accuracy" and set(report["domains"]) == set(FAMILIES)
        assert len(report["items"]) == built.counts["dev"]
        # evaluate_all: every checkpoint in one process, the same report as one evaluate call per checkpoint
        run("eval/evaluate.py", "--checkpoints", str(ckpts), "--split", "dev", "--out", str(work / f"{method}-all"))
        assert sorted(p.name for p in (work / f"{method}-all").iterdir()) == ["step-00003.json", "step-00006.json"]
        assert json.loads((work / f"{method}-all" / "step-00006.json").read_text()) == report
        run("eval/predict.py", "--checkpoint", str(ckpts / "step-00006"), "--out", str(work / f"{method}-pred.json"))
        predictions = json.loads((work / f"{method}-pred.json").read_text())["predictions"]
        answers = load_answers(built.answers_path, "all")
        assert set(predictions) == set(answers)
        assert 0.0 <= float(score(answers, predictions)["score"]) <= 1.0  # type: ignore[arg-type]
