"""evotrain.toml validation: a bad field gets an error naming the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from evotrain.errors import ConfigError
from evotrain.substrate.spec import load_spec, matches_any

GOOD = """
name = "t"
editable = ["recipe.toml"]
frozen = ["eval/**"]
[commands]
train = "{python} train.py --out {checkpoints} --seed {seed}"
evaluate = "{python} eval/evaluate.py --checkpoint {checkpoint} --out {output}"
[resources.default]
cpus = 1
[resources.train]
timeout_s = 30
[metric]
name = "accuracy"
domains = ["a", "b"]
[search.axes.opt]
category = "optimization"
[search.axes.opt.knobs.lr]
file = "recipe.toml"
key = "train.lr"
type = "float"
low = 0.001
high = 0.1
log = true
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "evotrain.toml").write_text(text)
    return tmp_path


def test_good_spec_loads_and_merges_resources(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.name == "t"
    train = spec.resources.for_step("train")
    assert train.timeout_s == 30 and train.cpus == 1
    assert spec.resources.for_step("evaluate").timeout_s == 3600
    assert spec.is_editable("recipe.toml") and not spec.is_editable("eval/evaluate.py")
    assert spec.is_frozen("eval/sub/x.py")
    assert spec.metric.sign == 1.0
    assert spec.metric.kind == "auto"  # a spec that predates `kind` infers it from the item scores


def test_metric_kind_is_declared_or_refused(tmp_path: Path) -> None:
    text = GOOD.replace('domains = ["a", "b"]', 'domains = ["a", "b"]\nkind = "continuous"\ndirection = "minimize"', 1)
    spec = load_spec(write(tmp_path, text))
    assert spec.metric.kind == "continuous" and spec.metric.sign == -1.0 and spec.metric.better == "lower"
    with pytest.raises(ConfigError, match=r"metric\.kind"):
        load_spec(write(tmp_path, GOOD.replace('domains = ["a", "b"]', 'domains = ["a", "b"]\nkind = "mae"', 1)))


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('train = "{python} train.py', 'train = "{pyhton} train.py', "commands.train"),
        ('name = "t"', 'name = "t"\ncolour = "red"', "colour"),
        ("low = 0.001", "low = 0.5", "search.axes.opt.knobs.lr"),
        ('domains = ["a", "b"]', 'domains = ["a", "a"]', "metric.domains"),
        ('file = "recipe.toml"', 'file = "eval/x.toml"', "search.axes.opt.knobs.lr.file"),
        ("[search.axes.opt]", '[search.axes."my opt"]', "search.axes"),
        ("cpus = 1", "cpus = 0", "resources.default.cpus"),
    ],
)
def test_bad_field_is_named(tmp_path: Path, old: str, new: str, field: str) -> None:
    text = GOOD.replace(old, new, 1)
    if "my opt" in new:
        text = text.replace("[search.axes.opt.knobs.lr]", '[search.axes."my opt".knobs.lr]')
    with pytest.raises(ConfigError) as info:
        load_spec(write(tmp_path, text))
    message = info.value.render()
    assert "evotrain.toml" in message
    assert field in message
    assert "fix" in message


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no evotrain\.toml"):
        load_spec(tmp_path)
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_spec(write(tmp_path, "name = [unclosed"))
    with pytest.raises(ConfigError, match="substrate folder not found"):
        load_spec(tmp_path / "nope")


def test_globs() -> None:
    assert matches_any("eval/a/b.py", ["eval/**"])
    assert not matches_any("eval/a/b.py", ["eval/*"])
    assert matches_any("eval/a.py", ["eval"])
    assert matches_any("x/recipe.toml", ["**/recipe.toml"])
    assert matches_any("recipe.toml", ["**/recipe.toml"])
    assert not matches_any("x/recipe.toml", ["recipe.toml"])
