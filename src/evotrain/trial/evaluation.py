"""Evaluation reports (the `evaluate` step's output), their aggregates, and checkpoint selection.

Scores stay in the metric's own units everywhere: `overall` and `objective` are never sign-flipped. A caller
that ranks uses `metric.sign` (larger `sign * value` is better), as `select_checkpoint` does.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from evotrain.errors import ConfigError, EvotrainError
from evotrain.records.evaluation import EvalReport
from evotrain.records.manifest import CheckpointEval, DomainScore, Selection
from evotrain.records.policy import SelectionObjective
from evotrain.substrate.spec import Metric


class BadOutputError(EvotrainError):
    """A step's output file exists but fails validation; the trial fails with class `bad_output`."""


def _bad(path: Path, message: str, fix: str) -> BadOutputError:
    return BadOutputError(f"invalid evaluation report: {message}", path=path, fix=fix)


def load_eval_report(path: Path, metric: Metric) -> EvalReport:
    """Read and validate an evaluation report against `[metric]` of evotrain.toml; BadOutputError names the field."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _bad(path, "file not found", "the evaluate command must write its report to {output}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(path, f"not valid JSON ({exc})", "write a JSON object (docs/substrate-format.md)") from None
    try:
        report = EvalReport.model_validate(raw)
    except ValidationError as err:
        fields = "; ".join(
            f"field `{'.'.join(str(p) for p in e['loc']) or '(top level)'}`: {e['msg']}" for e in err.errors()
        )
        raise _bad(path, fields, "see the evaluation report format in docs/substrate-format.md") from None
    _check_against_metric(path, report, metric)
    return report


def _check_against_metric(path: Path, report: EvalReport, metric: Metric) -> None:
    if report.metric != metric.name:
        raise _bad(
            path,
            f"field `metric` is {report.metric!r} but evotrain.toml declares [metric].name = {metric.name!r}",
            "report the declared metric",
        )
    missing = [d for d in metric.domains if d not in report.domains]
    if missing:
        raise _bad(path, f"field `domains` lacks {missing}", "report every domain of [metric].domains")
    unknown = sorted(set(report.domains) - set(metric.domains))
    if unknown:
        raise _bad(path, f"field `domains` has undeclared {unknown}", "declare them in [metric].domains")
    if report.items is None:
        return
    stray = sorted({item.domain for item in report.items} - set(metric.domains))
    if stray:
        raise _bad(path, f"field `items` has items of undeclared domains {stray}", "use the declared domains")
    duplicated = [item_id for item_id, count in Counter(i.id for i in report.items).items() if count > 1]
    if duplicated:
        raise _bad(path, f"field `items` repeats ids {duplicated[:5]}", "give every dev item one line")
    counts = Counter(item.domain for item in report.items)
    for domain, entry in report.domains.items():
        if counts[domain] != entry.n:
            raise _bad(
                path,
                f"field `domains.{domain}.n` is {entry.n} but `items` holds {counts[domain]} items of it",
                "report n as the number of items scored",
            )


def overall(report: EvalReport, metric: Metric) -> float:
    """The metric's own aggregate: n-weighted mean over items ("items") or mean of domain scores ("domains")."""
    domains = [report.domains[d] for d in metric.domains]
    if metric.aggregate == "items":
        return sum(d.score * d.n for d in domains) / sum(d.n for d in domains)
    return sum(d.score for d in domains) / len(domains)


def domain_shares(metric: Metric, counts: dict[str, int]) -> dict[str, float]:
    """Each domain's share of the metric's own aggregate, as `overall` weighs it: its share of the items
    ("items") or 1/domains ("domains"); domains without a count are left out."""
    domains = [d for d in metric.domains if d in counts]
    if not domains:
        return {}
    if metric.aggregate == "items":
        total = sum(counts[d] for d in domains)
        return {d: counts[d] / total for d in domains} if total else {}
    return {d: 1.0 / len(domains) for d in domains}


def domain_weights(objective: SelectionObjective, metric: Metric) -> dict[str, float]:
    """Each domain's weight in the objective: its `domain_weights` entry (default 1.0).

    An untrusted domain counts with whatever weight the policy gives it: the meta agent lowers that weight (the
    paper's reweighted criterion) rather than the harness silently dropping the domain, so the evidence and the
    harness rank candidates by the same numbers (see `evidence.stats.domain_weights`).
    """
    weights = {}
    for domain in metric.domains:
        weight = objective.domain_weights.get(domain, 1.0)
        if weight < 0 or not math.isfinite(weight):
            raise ConfigError(
                f"objective.domain_weights.{domain} = {weight}: weights must be finite and >= 0",
                path="policy.json",
                fix="set a non-negative weight",
            )
        weights[domain] = weight
    if sum(weights.values()) <= 0:
        raise ConfigError(
            f"objective.domain_weights give every domain weight 0 ({weights})",
            path="policy.json",
            fix="give at least one trusted domain a positive weight",
        )
    return weights


def objective(report: EvalReport, objective: SelectionObjective, metric: Metric) -> float:
    """The policy's selection objective: the weighted mean of domain scores, in the metric's units."""
    weights = domain_weights(objective, metric)
    return sum(weights[d] * report.domains[d].score for d in metric.domains) / sum(weights.values())


def checkpoint_eval(
    checkpoint: str, report: EvalReport, report_path: str, objective_: SelectionObjective, metric: Metric
) -> CheckpointEval:
    return CheckpointEval(
        checkpoint=checkpoint,
        domains={d: DomainScore(score=report.domains[d].score, n=report.domains[d].n) for d in metric.domains},
        overall=overall(report, metric),
        objective=objective(report, objective_, metric),
        report=report_path,
    )


def describe_objective(objective_: SelectionObjective, metric: Metric) -> str:
    weights = domain_weights(objective_, metric)
    parts = [
        f"{d}={weights[d]:g}" + (" untrusted" if d in objective_.untrusted_domains else "") for d in metric.domains
    ]
    return f"weighted mean of dev {metric.name} by domain ({', '.join(parts)})"


def select_checkpoint(evals: list[CheckpointEval], objective_: SelectionObjective, metric: Metric) -> Selection:
    """Pick the checkpoint the policy's criterion names; `evals` are in training order.

    "objective": the best objective (max, or min for a minimized metric), ties going to the later checkpoint;
    "last": the final checkpoint.
    """
    if not evals:
        raise ValueError("select_checkpoint needs at least one evaluated checkpoint")
    what = describe_objective(objective_, metric)
    if objective_.checkpoint_criterion == "last":
        chosen = evals[-1]
        criterion = f"last of {len(evals)} checkpoints (objective: {what})"
    else:
        best = max(range(len(evals)), key=lambda i: (metric.sign * evals[i].objective, i))
        chosen = evals[best]
        best_word = "max" if metric.sign > 0 else "min"
        criterion = f"{best_word} objective over {len(evals)} checkpoints, ties to the later one: {what}"
    return Selection(checkpoint=chosen.checkpoint, criterion=criterion, objective=chosen.objective)
