"""The builder writes a valid substrate whose hidden answers live outside it; the score command reads them."""

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from evotrain.puzzles.build import AnswerRecord, SubstrateBuild, build_substrate
from evotrain.puzzles.generators import FAMILIES
from evotrain.puzzles.score import load_answers, main, score
from evotrain.substrate.spec import load_spec

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SubstrateBuild]:
    root = tmp_path_factory.mktemp("build")
    old = os.environ.get("EVOTRAIN_CACHE")
    os.environ["EVOTRAIN_CACHE"] = str(root / "cache")
    try:
        yield build_substrate(root / "sub", answers_path=root / "answers.jsonl", profile="micro", seed=3)
    finally:
        if old is None:
            del os.environ["EVOTRAIN_CACHE"]
        else:
            os.environ["EVOTRAIN_CACHE"] = old


def test_layout_and_spec(built: SubstrateBuild) -> None:
    sub = built.path
    for rel in (
        "evotrain.toml",
        "recipe.toml",
        "train.py",
        "pipeline/build_data.py",
        "eval/evaluate.py",
        "eval/predict.py",
        "data/train_pool.jsonl",
        "data/dev.jsonl",
        "data/external_inputs.jsonl",
        "model/base/config.json",
        "model/base/model.safetensors",
        "model/base/tokenizer.json",
    ):
        assert (sub / rel).is_file(), rel
    spec = load_spec(sub)
    assert spec.metric.domains == list(FAMILIES)
    assert {"optimization", "capacity", "data", "format", "schedule"} <= set(spec.search.categories())
    recipe = tomllib.loads((sub / "recipe.toml").read_text())
    for axis in spec.search.axes.values():  # every knob points at an existing key of the recipe
        for knob in axis.knobs.values():
            value = recipe
            for part in knob.key.split("."):
                value = value[part]
    assert all(spec.is_editable(p) for p in ("recipe.toml", "train.py", "pipeline/build_data.py"))
    assert all(spec.is_frozen(p) for p in ("eval/evaluate.py", "data/dev.jsonl", "model/base/config.json"))


def test_hidden_answers_stay_outside(built: SubstrateBuild) -> None:
    assert not built.answers_path.is_relative_to(built.path)
    inputs = [json.loads(line) for line in (built.path / "data/external_inputs.jsonl").read_text().splitlines()]
    assert all(set(row) == {"id", "family", "prompt"} for row in inputs)
    answers = load_answers(built.answers_path, "all")
    assert set(answers) == {row["id"] for row in inputs}
    assert {r.split for r in answers.values()} == {"external", "control"}
    assert built.counts["external"] == built.counts["control"] == 4 * (len(FAMILIES) + 1)  # equations twice
    text = "\n".join(p.read_text(errors="ignore") for p in built.path.rglob("*") if p.suffix in (".py", ".toml"))
    assert "control" not in text and "shift" not in text.lower().replace("shift_", "")


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import evotrain.puzzles.build as build

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(build, "_write_jsonl", broken)  # fails after the model and the templates are written
    with pytest.raises(RuntimeError, match="disk full"):
        build_substrate(tmp_path / "sub", answers_path=tmp_path / "a.jsonl", profile="micro")
    assert not (tmp_path / "sub").exists() and not list(tmp_path.glob(".sub.partial-*"))
    monkeypatch.undo()
    built = build_substrate(tmp_path / "sub", answers_path=tmp_path / "a.jsonl", profile="micro")  # a retry works
    assert (built.path / "evotrain.toml").is_file()


def test_refuses_bad_destinations(built: SubstrateBuild, tmp_path: Path) -> None:
    with pytest.raises(FileExistsError):
        build_substrate(built.path, answers_path=tmp_path / "a.jsonl", profile="micro")
    with pytest.raises(ValueError):
        build_substrate(tmp_path / "s", answers_path=tmp_path / "s" / "a.jsonl", profile="micro")
    with pytest.raises(ValueError):
        build_substrate(tmp_path / "t", answers_path=tmp_path / "a.jsonl", profile="huge")


def test_rebuild_is_cached_and_identical(built: SubstrateBuild, tmp_path: Path) -> None:
    os.environ["EVOTRAIN_CACHE"] = str(built.path.parent / "cache")
    again = build_substrate(tmp_path / "sub", answers_path=tmp_path / "answers.jsonl", profile="micro", seed=3)
    assert again.fingerprint == built.fingerprint
    assert again.answers_path.read_text() == built.answers_path.read_text()


def test_score_command(built: SubstrateBuild, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answers = load_answers(built.answers_path, "external")
    gold = {i: f"so \\boxed{{{r.answer}}}" for i, r in answers.items()}
    half = dict(list(gold.items())[: len(gold) // 2])
    assert score(answers, gold)["score"] == 1.0
    assert score(answers, half)["score"] == pytest.approx(0.5)
    assert score(answers, {})["domains"] == dict.fromkeys(FAMILIES, 0.0)
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"predictions": gold}))
    main(["--answers", str(built.answers_path), "--predictions", str(pred), "--split", "control"])
    line = json.loads(capsys.readouterr().out.strip())
    assert line["n"] == 4 * (len(FAMILIES) + 1) and line["score"] == 0.0  # control ids had no predictions
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "evotrain.puzzles.score",
            "--answers",
            str(built.answers_path),
            "--predictions",
            str(pred),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {**score(answers, gold), "n": len(answers)}


def test_answer_record_round_trip() -> None:
    r = AnswerRecord(id="x-1", split="external", family="cipher", answer="TEA")
    assert AnswerRecord.model_validate_json(r.model_dump_json()) == r
