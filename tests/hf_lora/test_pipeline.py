"""The substrate's data pipeline: filtering and mixing by family, the classifier, clear recipe errors."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from evotrain.hf_lora.build import TEMPLATE
from evotrain.hf_lora.csvdata import Item, write_items


def _items() -> list[Item]:
    rows = []
    for family, n in (("cipher", 5), ("numeral", 5), ("gravity", 5)):
        rows += [
            Item(id=f"{family}-{i}", prompt=f"{family} prompt {'x' * i}", answer=str(i), family=family)
            for i in range(n)
        ]
    return rows


def _recipe(pipeline: ModuleType, **data: object) -> object:
    values: dict[str, object] = {"n_train": 3000, "mix": {"cipher": 1.0, "numeral": 1.0, "gravity": 1.0}} | data
    return pipeline.DataRecipe.model_validate(values)


def test_mix_weights_set_the_family_shares(pipeline: ModuleType) -> None:
    recipe = _recipe(pipeline, mix={"cipher": 3.0, "numeral": 1.0, "gravity": 0.0})
    rows = pipeline.build(_items(), recipe, seed=0)
    counts = Counter(r["family"] for r in rows)
    assert len(rows) == 3000 and "gravity" not in counts
    assert 0.70 < counts["cipher"] / 3000 < 0.80  # 3:1
    assert all(r["completion"] == "\\boxed{" + r["id"].split("-")[1] + "}" for r in rows)


def test_family_and_length_filters(pipeline: ModuleType) -> None:
    rows = pipeline.build(_items(), _recipe(pipeline, families=["numeral"], max_prompt_chars=16), seed=1)
    assert {r["family"] for r in rows} == {"numeral"}
    assert all(len(r["prompt"]) <= 16 for r in rows)
    assert {r["id"] for r in rows} <= {"numeral-0", "numeral-1", "numeral-2"}


def test_same_seed_same_data_and_sentence_format(pipeline: ModuleType) -> None:
    recipe = _recipe(pipeline, format="sentence", n_train=50)
    assert pipeline.build(_items(), recipe, seed=3) == pipeline.build(_items(), recipe, seed=3)
    assert pipeline.build(_items(), recipe, seed=3)[0]["completion"].startswith("The answer is \\boxed{")


def test_unlabelled_rows_are_classified_by_the_rules(pipeline: ModuleType) -> None:
    rules = {"cipher": "encrypt", "numeral": "numeral"}
    items = [Item(id="1", prompt="secret ENCRYPTION rules", answer="A"), Item(id="2", prompt="plain", answer="B")]
    labelled = pipeline.with_families(items, rules)
    assert [it.family for it in labelled] == ["cipher", "other"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"families": ["equations"]}, "data.families names ['equations'], which have no rows"),
        ({"mix": {"cipher": 0.0}}, "no family is left to train on"),
        ({"max_prompt_chars": 3}, "no family is left to train on"),
    ],
)
def test_recipe_mistakes_are_named(pipeline: ModuleType, data: dict[str, object], message: str) -> None:
    with pytest.raises(pipeline.PipelineError, match=message.replace("[", r"\[").replace("]", r"\]")):
        pipeline.build(_items(), _recipe(pipeline, **data), seed=0)


def test_cli_reports_bad_csv_and_bad_recipe_without_traceback(tmp_path: Path) -> None:
    script = TEMPLATE / "pipeline" / "build_data.py"
    bad_csv = tmp_path / "train.csv"
    bad_csv.write_text("id,question,answer\n1,p,3\n")
    run = subprocess.run(
        [
            sys.executable,
            script,
            "--recipe",
            TEMPLATE / "recipe.toml",
            "--out",
            tmp_path / "o.jsonl",
            "--data",
            bad_csv,
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert f"{bad_csv}: missing column(s) prompt" in run.stderr
    recipe = tmp_path / "recipe.toml"
    recipe.write_text((TEMPLATE / "recipe.toml").read_text().replace('format = "boxed"', 'format = "json"'))
    write_items(bad_csv, _items(), ["id", "prompt", "answer", "family"])
    run = subprocess.run(
        [sys.executable, script, "--recipe", recipe, "--out", tmp_path / "o.jsonl", "--data", bad_csv],
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "data.format" in run.stderr and str(recipe) in run.stderr
