"""Evaluation reports: validation that names the field, aggregates, the selection objective, checkpoint choice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evotrain.errors import ConfigError
from evotrain.records.evaluation import EvalReport
from evotrain.records.manifest import CheckpointEval, DomainScore
from evotrain.records.policy import SelectionObjective
from evotrain.substrate.spec import Metric
from evotrain.trial.evaluation import BadOutputError, load_eval_report, objective, overall, select_checkpoint

METRIC = Metric(name="accuracy", domains=["a", "b"], aggregate="items")


def write(tmp_path: Path, report: Any) -> Path:
    path = tmp_path / "step-000010.json"
    path.write_text(json.dumps(report))
    return path


def report(a: float = 0.5, b: float = 1.0, na: int = 2, nb: int = 1) -> dict[str, Any]:
    return {"metric": "accuracy", "domains": {"a": {"score": a, "n": na}, "b": {"score": b, "n": nb}}}


def test_valid_report_with_items(tmp_path: Path) -> None:
    items = [{"id": "1", "domain": "a", "score": 1.0}, {"id": "2", "domain": "a", "score": 0.0}]
    items.append({"id": "3", "domain": "b", "score": 1.0})
    loaded = load_eval_report(write(tmp_path, {**report(), "items": items}), METRIC)
    assert loaded.items is not None and len(loaded.items) == 3


@pytest.mark.parametrize(
    ("broken", "names"),
    [
        (
            {"metric": "accuracy", "domains": {"a": {"score": "high", "n": 2}, "b": {"score": 1, "n": 1}}},
            "domains.a.score",
        ),
        ({"metric": "accuracy", "domains": {"a": {"score": 0.5}, "b": {"score": 1, "n": 1}}}, "domains.a.n"),
        ({"metric": "accuracy", "domains": {"a": {"score": 0.5, "n": 2}}}, "lacks ['b']"),
        ({**report(), "metric": "loss"}, "field `metric`"),
        ({**report(), "items": [{"id": "1", "domain": "a", "score": 1.0}]}, "domains.a.n"),
        ({**report(), "items": [{"id": "1", "domain": "a"}]}, "items.0.score"),
        ({"domains": {}}, "field `metric`"),
    ],
)
def test_invalid_report_names_file_and_field(tmp_path: Path, broken: dict[str, Any], names: str) -> None:
    path = write(tmp_path, broken)
    with pytest.raises(BadOutputError) as err:
        load_eval_report(path, METRIC)
    assert names in str(err.value) and str(path) in str(err.value)


def test_not_json_and_nan(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("{not json")
    with pytest.raises(BadOutputError, match="not valid JSON"):
        load_eval_report(path, METRIC)
    path.write_text('{"metric": "accuracy", "domains": {"a": {"score": NaN, "n": 1}, "b": {"score": 1, "n": 1}}}')
    with pytest.raises(BadOutputError, match=r"domains\.a\.score"):
        load_eval_report(path, METRIC)


def test_overall_by_items_and_by_domains() -> None:
    parsed = EvalReport.model_validate(report(a=0.5, b=1.0, na=3, nb=1))
    assert overall(parsed, METRIC) == pytest.approx((0.5 * 3 + 1.0) / 4)
    assert overall(parsed, METRIC.model_copy(update={"aggregate": "domains"})) == pytest.approx(0.75)


def test_objective_weights_and_untrusted_domains() -> None:
    parsed = EvalReport.model_validate(report(a=0.2, b=0.8))
    assert objective(parsed, SelectionObjective(), METRIC) == pytest.approx(0.5)
    assert objective(parsed, SelectionObjective(domain_weights={"a": 3.0}), METRIC) == pytest.approx((0.6 + 0.8) / 4)
    # an untrusted domain counts with the (lowered) weight the policy gives it
    untrusted = SelectionObjective(domain_weights={"b": 0.25}, untrusted_domains=["b"])
    assert objective(parsed, untrusted, METRIC) == pytest.approx((0.2 + 0.25 * 0.8) / 1.25)
    with pytest.raises(ConfigError, match="weight 0"):
        objective(parsed, SelectionObjective(domain_weights={"a": 0.0, "b": 0.0}), METRIC)


def evals(*objectives: float) -> list[CheckpointEval]:
    return [
        CheckpointEval(
            checkpoint=f"step-{i:06d}", domains={"a": DomainScore(score=o, n=1)}, overall=o, objective=o, report="r"
        )
        for i, o in enumerate(objectives)
    ]


def test_select_checkpoint_best_with_ties_to_the_later() -> None:
    chosen = select_checkpoint(evals(0.3, 0.7, 0.7, 0.5), SelectionObjective(), METRIC)
    assert chosen.checkpoint == "step-000002" and chosen.objective == 0.7
    assert "max objective" in chosen.criterion and "a=1" in chosen.criterion


def test_select_checkpoint_minimize_and_last() -> None:
    loss = METRIC.model_copy(update={"direction": "minimize"})
    assert select_checkpoint(evals(0.3, 0.1, 0.5), SelectionObjective(), loss).checkpoint == "step-000001"
    last = select_checkpoint(evals(0.9, 0.1), SelectionObjective(checkpoint_criterion="last"), METRIC)
    assert last.checkpoint == "step-000001" and last.criterion.startswith("last of 2")
    with pytest.raises(ValueError):
        select_checkpoint([], SelectionObjective(), METRIC)
