"""The `command` external target: a user command scores a predictions file outside every sandbox."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from evotrain.errors import ConfigError
from evotrain.external.command import CommandTarget, ExternalTargetError
from evotrain.external.config import CommandTargetConfig, parse_external_spec

SCORER = """
import json, sys
preds = json.load(open(sys.argv[1]))["predictions"]
gold = {"a": "1", "b": "2", "c": "3"}
right = sum(preds.get(k) == v for k, v in gold.items())
print("scoring...")
print(json.dumps({"score": right / len(gold), "n": len(gold)}))
"""


@pytest.fixture
def scorer(tmp_path: Path) -> Path:
    path = tmp_path / "score.py"
    path.write_text(SCORER)
    return path


def predictions(tmp_path: Path, preds: dict[str, str]) -> Path:
    path = tmp_path / "pred.json"
    path.write_text(json.dumps({"predictions": preds}))
    return path


def test_scores_json_line(tmp_path: Path, scorer: Path) -> None:
    target = CommandTarget(CommandTargetConfig(command=f"{sys.executable} {scorer} {{predictions}}"))
    score = target.submit("r0001/c02-x", predictions(tmp_path, {"a": "1", "b": "2", "c": "0"}))
    assert score.score == pytest.approx(2 / 3)
    assert score.n == 3


def test_plain_number_and_failures(tmp_path: Path) -> None:
    pred = predictions(tmp_path, {})
    assert CommandTarget(CommandTargetConfig(command="echo 0.25")).submit("c", pred).score == 0.25
    with pytest.raises(ExternalTargetError, match="exited 3"):
        CommandTarget(CommandTargetConfig(command="echo boom >&2; exit 3")).submit("c", pred)
    with pytest.raises(ExternalTargetError, match="could not read a score"):
        CommandTarget(CommandTargetConfig(command="echo hello")).submit("c", pred)
    with pytest.raises(ExternalTargetError, match="timed out"):
        CommandTarget(CommandTargetConfig(command="sleep 5", timeout_s=0.3)).submit("c", pred)


def test_spec_file_and_inline(tmp_path: Path) -> None:
    spec = tmp_path / "external.toml"
    spec.write_text('kind = "command"\ncommand = "python score.py {predictions}"\nbudget = 3\n')
    config = parse_external_spec(str(spec))
    assert config.budget == 3 and config.cwd == str(tmp_path)
    assert parse_external_spec("command:echo 1").command == "echo 1"
    spec.write_text('kind = "ftp"\n')  # leaderboard and kaggle are kinds now (tests/leaderboard)
    with pytest.raises(ConfigError, match="kind"):
        parse_external_spec(str(spec))
    spec.write_text('command = "x"\nbudgett = 3\n')
    with pytest.raises(ConfigError, match="budgett"):
        parse_external_spec(str(spec))
    with pytest.raises(ConfigError, match="not found"):
        parse_external_spec(str(tmp_path / "missing.toml"))
