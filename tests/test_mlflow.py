"""MLflow tracking: a real MLflow (a SQLite store in the test's folder), the campaign logged from its files and read
back through MLflow's own client; logging again updates, never duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomlkit
from typer.testing import CliRunner

from evotrain.cli import app
from evotrain.records.manifest import Manifest

from .campaign_helpers import make_tiny_campaign, manifests

mlflow = pytest.importorskip("mlflow", reason="MLflow is part of the dev extra (scripts/setup.sh installs it)")
from mlflow.tracking import MlflowClient  # noqa: E402

runner = CliRunner()


def flat(text: str) -> str:
    return " ".join(text.split())


def campaign_runs(client: MlflowClient, name: str) -> list:
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    return client.search_runs([experiment.experiment_id], max_results=1000)


def shown(value: object) -> str:
    """A param's value: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def assert_run_matches(client: MlflowClient, run, m: Manifest, manifest_path: Path, tmp: Path) -> None:
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert tags["evotrain.candidate_id"] == m.candidate_id and tags["round"] == str(m.round)
    assert tags["role"] == m.role and tags["axis"] == (m.axis or "")
    assert tags["failure_class"] == (m.failure.failure_class if m.failure else "")
    assert run.info.status == ("FAILED" if m.failure else "FINISHED")
    assert params["seed"] == str(m.seed) and params["role"] == m.role
    for change in m.changes:
        assert params[f"change.{change.key}"] == f"{shown(change.old)} → {shown(change.new)}"
    for name, value in m.knob_values.items():
        assert params[f"knob.{name}"] == shown(value)
    assert m.selected is not None
    assert metrics["objective"] == pytest.approx(m.selected.objective)
    for domain in m.checkpoints[0].domains:
        history = client.get_metric_history(run.info.run_id, f"dev.{domain}")
        expected = [(int(c.checkpoint.split("-")[1]), c.domains[domain].score) for c in m.checkpoints]
        assert sorted((h.step, h.value) for h in history) == sorted(expected)
    objective_history = client.get_metric_history(run.info.run_id, "dev.objective")
    assert len(objective_history) == len(m.checkpoints)
    if m.external is not None:
        assert metrics["external"] == pytest.approx(m.external.score)
    else:
        assert "external" not in metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"manifest.json", "recipe.diff"}
    where = tmp / m.candidate_id.replace("/", "-")
    where.mkdir(parents=True)
    got = Path(client.download_artifacts(run.info.run_id, "manifest.json", str(where)))
    assert got.read_bytes() == manifest_path.read_bytes()
    diff = Path(client.download_artifacts(run.info.run_id, "recipe.diff", str(where)))
    assert diff.read_text() == m.recipe_diff


@pytest.mark.slow  # a 2 × 4 campaign, then three loggings: about 15 s
def test_a_campaign_in_mlflow_equals_its_manifests_and_relogging_duplicates_nothing(tmp_path: Path) -> None:
    run = make_tiny_campaign(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = runner.invoke(app, ["run", str(run), "--rounds", "2", "--workers", "4", "--mlflow", uri])
    assert result.exit_code == 0, result.output
    assert f"MLflow: logging to {uri}" in flat(result.output)

    client = MlflowClient(tracking_uri=uri)
    runs = campaign_runs(client, "run")
    parents = [r for r in runs if r.data.tags.get("evotrain.kind") == "campaign"]
    assert len(parents) == 1 and len(runs) == 9, [r.info.run_name for r in runs]
    parent = parents[0]
    assert parent.data.params["seed"] == "0" and parent.data.tags["evotrain.rounds_closed"] == "2"
    parent_artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "rounds/r0002")}
    assert parent_artifacts == {"rounds/r0002/evidence.md", "rounds/r0002/policy.md"}
    found = manifests(run)
    children = {r.data.tags["evotrain.candidate_id"]: r for r in runs if r is not parent}
    assert set(children) == set(found)
    downloads = tmp_path / "downloads"
    for candidate_id, child in children.items():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        m = found[candidate_id]
        round_no, name = candidate_id.split("/")
        manifest_path = run / "rounds" / round_no / "candidates" / name / "manifest.json"
        assert_run_matches(client, child, m, manifest_path, downloads)
    assert any(m.external is not None for m in found.values())
    assert any(m.changes for m in found.values())

    # after the fact, again: every run is found by its tag and left as it is
    again = runner.invoke(app, ["mlflow", str(run), "--tracking-uri", uri])
    assert again.exit_code == 0, again.output
    assert "candidate runs: 0 created, 0 updated, 8 unchanged" in flat(again.output)

    # a run whose manifest changed since it was logged is updated in place, its metrics not logged twice
    one = next(iter(children.values()))
    client.delete_tag(one.info.run_id, "evotrain.manifest_sha256")
    config = run / "campaign.toml"  # and the URI now comes from campaign.toml
    config.chmod(0o644)
    doc = tomlkit.parse(config.read_text())
    doc["tracking"] = {"mlflow": uri}
    config.write_text(tomlkit.dumps(doc))
    third = runner.invoke(app, ["mlflow", str(run)])
    assert third.exit_code == 0, third.output
    assert "candidate runs: 0 created, 1 updated, 7 unchanged" in flat(third.output)
    assert len(campaign_runs(client, "run")) == 9
    m = found[one.data.tags["evotrain.candidate_id"]]
    assert len(client.get_metric_history(one.info.run_id, "dev.objective")) == len(m.checkpoints)
    assert len(client.get_metric_history(one.info.run_id, "objective")) == 1


def test_a_wrong_tracking_uri_stops_before_a_round(tmp_path: Path) -> None:
    run = make_tiny_campaign(tmp_path)
    result = runner.invoke(app, ["run", str(run), "--rounds", "1", "--workers", "2", "--mlflow", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "is not a database or server" in flat(result.output) and "sqlite:///" in result.output
    assert not (run / "rounds" / "r0001" / "candidates").exists()
