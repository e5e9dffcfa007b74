"""The hf-lora builder: layout, data, model placement, profiles, clear errors; a whole trial on a tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evotrain.cli import app
from evotrain.errors import ConfigError
from evotrain.hf_lora.build import build_substrate
from evotrain.hf_lora.csvdata import Item, read_items, write_items
from evotrain.puzzles.generators import FAMILIES
from evotrain.puzzles.splits import make_split
from evotrain.substrate.spec import load_spec
from evotrain.trial.evaluation import load_eval_report


def test_puzzles_substrate_layout(tmp_path: Path, tiny_model: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    built = build_substrate(tmp_path / "sub", model=str(tiny_model), answers_path=answers, profile="cpu-smoke", seed=3)
    sub = built.path
    assert built.domains == list(FAMILIES)
    assert built.counts == {"train": 24, "dev": 14, "external": 7, "control": 7}  # equations twice
    spec = load_spec(sub)
    assert spec.metric.domains == list(FAMILIES) and spec.commands.predict is not None
    assert spec.search.axes["schedule"].knobs["steps"].high == 6  # the CPU profile narrows the search space
    assert spec.is_frozen("eval/generation.py") and spec.is_frozen("package.py") and spec.is_editable("train.py")
    recipe = tomllib.loads((sub / "recipe.toml").read_text())
    assert recipe["train"]["steps"] == 4 and set(recipe["data"]["mix"]) == set(FAMILIES)
    assert tomllib.loads((sub / "eval/config.toml").read_text())["model"]["path"] == "model/base"
    # the model is hardlinked, not copied
    assert os.path.samefile(sub / "model/base/model.safetensors", tiny_model / "model.safetensors")
    dev = read_items(sub / "data/dev.csv", answers=True, families=True)
    assert len(dev) == 14 and {it.family for it in dev} == set(FAMILIES)
    external = read_items(sub / "data/external_inputs.csv", answers=False)
    hidden = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [it.id for it in external] == [h["id"] for h in hidden]
    assert {h["split"] for h in hidden} == {"external", "control"}
    assert "answer" not in (sub / "data/external_inputs.csv").read_text().splitlines()[0]
    train_prompts = {it.prompt for it in read_items(sub / "data/train.csv", answers=True)}
    assert not train_prompts & ({it.prompt for it in dev} | {it.prompt for it in external})


def test_cpu_learn_profile_keeps_its_families_and_evaluates_the_base_model(tmp_path: Path, tiny_model: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    built = build_substrate(tmp_path / "sub", model=str(tiny_model), answers_path=answers, profile="cpu-learn")
    families = ["bit_manipulation", "numeral", "equations"]
    assert built.domains == families  # in FAMILIES order
    assert built.counts == {"train": 600, "dev": 40, "external": 20, "control": 20}  # equations twice
    assert load_spec(built.path).metric.domains == families
    dev = read_items(built.path / "data/dev.csv", answers=True, families=True)
    assert sorted(it.family for it in dev) == sorted([*families, "equations"] * 10)
    hidden = [json.loads(line) for line in answers.read_text().splitlines()]
    assert {h["family"] for h in hidden} == set(families)
    # the same items as a build of every family: the filter drops families, it does not redraw
    assert [(it.id, it.prompt, it.answer) for it in dev] == [
        (p.id, p.prompt, p.answer) for p in make_split("dev", 10, 0) if p.family in families
    ]
    recipe = tomllib.loads((built.path / "recipe.toml").read_text())
    assert recipe["train"]["save_initial"] is True and recipe["train"]["steps"] == 30
    assert set(recipe["data"]["mix"]) == set(families)
    train_prompts = {it.prompt for it in read_items(built.path / "data/train.csv", answers=True)}
    assert not train_prompts & {it.prompt for it in dev}


def test_csv_data_model_outside_and_no_external(tmp_path: Path, tiny_model: Path) -> None:
    rows = [Item(id=f"e{i}", prompt=f"an equation with operator #{i}", answer=str(i)) for i in range(5)]
    rows += [Item(id=f"t{i}", prompt=f"task {i}", answer=str(i), family="mytask") for i in range(4)]
    data = tmp_path / "mine.csv"
    write_items(data, rows, ["id", "prompt", "answer", "family"])
    built = build_substrate(
        tmp_path / "sub", model=str(tiny_model), data=str(data), dev_per_family=2, model_outside=True
    )
    assert built.domains == ["equations", "mytask"]  # `equations` from the recipe's rules, `mytask` from the column
    assert built.counts == {"train": 5, "dev": 4, "external": 0}
    spec = load_spec(built.path)
    assert spec.commands.predict is None and spec.metric.domains == ["equations", "mytask"]
    assert not (built.path / "model").exists() and "model/**" not in spec.frozen  # init refuses a glob matching nothing
    config = tomllib.loads((built.path / "eval/config.toml").read_text())
    assert config["model"]["path"] == str(tiny_model)
    assert tomllib.loads((built.path / "recipe.toml").read_text())["data"]["mix"] == {"equations": 1.0, "mytask": 1.0}


def test_builder_errors(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        build_substrate(tmp_path / "full", model=str(tiny_model), answers_path=tmp_path / "a.jsonl")
    with pytest.raises(ConfigError, match="outside the substrate"):
        build_substrate(tmp_path / "s", model=str(tiny_model), answers_path=tmp_path / "s" / "a.jsonl")
    with pytest.raises(ConfigError, match="not a Hugging Face model folder"):
        build_substrate(tmp_path / "s", model=str(tmp_path), answers_path=tmp_path / "a.jsonl")
    few = tmp_path / "few.csv"
    write_items(few, [Item(id="1", prompt="p", answer="1", family="f")], ["id", "prompt", "answer", "family"])
    with pytest.raises(ConfigError, match="family 'f' has 1 rows"):
        build_substrate(tmp_path / "s2", model=str(tiny_model), data=str(few))
    # the build failed after the templates and the model were in place: nothing of it is left
    assert not (tmp_path / "s2").exists() and not list(tmp_path.glob(".s2.partial-*"))


def test_cli_reports_errors_without_traceback(tmp_path: Path) -> None:
    args = ["substrate", "hf-lora", str(tmp_path / "s"), "--model", str(tmp_path), "--answers", str(tmp_path / "a")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "not a Hugging Face model folder" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_trial_commands_on_a_tiny_model(tmp_path: Path, tiny_model: Path) -> None:
    """prepare -> train (TRL, LoRA, gradient checkpointing) -> evaluate every checkpoint -> predict -> package."""
    built = build_substrate(
        tmp_path / "sub", model=str(tiny_model), answers_path=tmp_path / "a.jsonl", profile="cpu-smoke"
    )
    sub, work = built.path, tmp_path / "work"
    spec = load_spec(sub)
    values = {"python": sys.executable, "work": str(work), "checkpoints": str(work / "checkpoints"), "seed": "1"}

    def run(command: str, **extra: str) -> None:
        line = command.format(**(values | extra))
        done = subprocess.run(line, shell=True, cwd=sub, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"

    assert spec.commands.prepare is not None and spec.commands.predict is not None
    run(spec.commands.prepare)
    run(spec.commands.train, output=str(work / "train_summary.json"))
    checkpoints = sorted((work / "checkpoints").iterdir())
    assert [c.name for c in checkpoints] == ["step-00002", "step-00004"]
    summary = json.loads((work / "train_summary.json").read_text())
    assert summary["steps"] == 4 and summary["checkpoints"] == 2 and summary["trainable_params"] > 0
    for checkpoint in checkpoints:
        adapter = json.loads((checkpoint / "adapter_config.json").read_text())
        assert adapter["r"] == 16 and adapter["r"] <= 32
        report_path = work / "eval" / f"{checkpoint.name}.json"
        run(spec.commands.evaluate, checkpoint=str(checkpoint), output=str(report_path))
        report = load_eval_report(report_path, spec.metric)  # the harness's own validation
        assert {d: s.n for d, s in report.domains.items()} == dict.fromkeys(FAMILIES, 2) | {"equations": 4}
        assert all(0.0 <= s.score <= 1.0 for s in report.domains.values())
        assert json.loads(report_path.read_text())["backend"] == "hf"
    # evaluate_all: both checkpoints with one model load, the same outputs and scores as one call per checkpoint
    assert spec.commands.evaluate_all is not None
    run(spec.commands.evaluate_all, output=str(work / "eval-all"))
    assert sorted(p.name for p in (work / "eval-all").iterdir()) == ["step-00002.json", "step-00004.json"]
    for checkpoint in checkpoints:
        one, together = (json.loads((work / d / f"{checkpoint.name}.json").read_text()) for d in ("eval", "eval-all"))
        assert together["outputs"] == one["outputs"] and together["items"] == one["items"]
    run(spec.commands.predict, checkpoint=str(checkpoints[-1]), output=str(work / "pred.json"))
    predictions = json.loads((work / "pred.json").read_text())["predictions"]
    assert set(predictions) == {it.id for it in read_items(sub / "data/external_inputs.csv", answers=False)}
    run("{python} package.py --checkpoint " + str(checkpoints[-1]) + " --out " + str(work / "submission.zip"))
    with zipfile.ZipFile(work / "submission.zip") as zf:
        assert "adapter_config.json" in zf.namelist()
        assert json.loads(zf.read("adapter_config.json"))["r"] <= 32


@pytest.mark.slow
def test_save_initial_writes_the_untrained_adapter_as_step_zero(tmp_path: Path, tiny_model: Path) -> None:
    """`train.save_initial`: step-00000 is the adapter before any update (LoRA B = 0, i.e. the base model)."""
    import tomlkit
    from safetensors.torch import load_file

    built = build_substrate(
        tmp_path / "sub", model=str(tiny_model), answers_path=tmp_path / "a.jsonl", profile="cpu-learn"
    )
    sub, work = built.path, tmp_path / "work"
    doc = tomlkit.parse((sub / "recipe.toml").read_text())
    doc["train"]["steps"], doc["train"]["checkpoint_every"], doc["data"]["n_train"] = 2, 2, 8  # type: ignore[index]
    (sub / "recipe.toml").write_text(tomlkit.dumps(doc))
    spec = load_spec(sub)
    values = {"python": sys.executable, "work": str(work), "checkpoints": str(work / "checkpoints"), "seed": "0"}
    assert spec.commands.prepare is not None
    for command in (spec.commands.prepare, spec.commands.train):
        line = command.format(**values, output=str(work / "train_summary.json"))
        done = subprocess.run(line, shell=True, cwd=sub, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
    assert sorted(c.name for c in (work / "checkpoints").iterdir()) == ["step-00000", "step-00002"]
    assert json.loads((work / "train_summary.json").read_text())["checkpoints"] == 2

    def lora_b(step: str) -> list[float]:
        weights = load_file(work / "checkpoints" / step / "adapter_model.safetensors")
        return [float(t.abs().max()) for name, t in weights.items() if "lora_B" in name]

    assert lora_b("step-00000") and max(lora_b("step-00000")) == 0.0
    assert max(lora_b("step-00002")) > 0.0
