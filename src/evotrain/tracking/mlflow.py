"""Log a campaign to MLflow from its files: a parent run per campaign, a child run per finished candidate.

Everything comes from the campaign folder (campaign.toml, manifests, evidence), never from the running loop, so
`evotrain mlflow RUN` logs a campaign after the fact exactly as `run --mlflow URI` does while it runs. Logging is
idempotent: each run carries an `evotrain.key` tag (the campaign's name and creation time, plus the candidate id),
re-logging finds it and adds only what is new (a candidate scored by the external target after it was first
logged); a run whose manifest is unchanged (tag `evotrain.manifest_sha256`) is skipped.

Child runs hold: params (every knob's value, each recipe change as `change.<key>` = `old → new`, seed, role,
worker), metrics (per-checkpoint per-domain dev at the checkpoint's training step, the selected objective, the
external score when submitted, cost), tags (round, axis, role, failure class) and the manifest and the recipe diff
as artifacts.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evotrain.campaign.init import open_campaign
from evotrain.campaign.store import CampaignStore
from evotrain.errors import ConfigError
from evotrain.fileio import hash_file
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import Manifest

KEY_TAG = "evotrain.key"
CAMPAIGN_TAG = "evotrain.campaign_key"
MANIFEST_TAG = "evotrain.manifest_sha256"
PARENT_TAG = "mlflow.parentRunId"
MAX_PARAM = 6000  # MLflow's limit on a param value
_UNSAFE = re.compile(r"[^\w\-. /]")


@dataclass
class Logged:
    uri: str
    experiment: str
    parent_run_id: str
    created: int = 0  # candidate runs created now
    updated: int = 0  # existing runs that got what was new
    unchanged: int = 0  # existing runs skipped: their manifest had not changed


def default_uri(run_dir: Path) -> str:
    """A SQLite store inside the campaign folder: `sqlite:///RUN/mlflow.db`."""
    return f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"


def log_campaign(run_dir: Path, uri: str | None = None) -> Logged:
    """Log (or bring up to date) the campaign in `run_dir` at the MLflow tracking `uri`."""
    paths, config = open_campaign(run_dir)
    uri = uri or (config.tracking.mlflow if config.tracking else None) or default_uri(paths.root)
    client = _client(uri, paths.root)
    campaign_key = f"{config.name}@{config.created_at}"
    experiment_id = _experiment(client, config.name, uri)
    existing = {
        run.data.tags[KEY_TAG]: run
        for run in client.search_runs(
            [experiment_id], filter_string=f"tags.`{CAMPAIGN_TAG}` = '{campaign_key}'", max_results=50_000
        )
        if KEY_TAG in run.data.tags
    }
    parent = existing.get(campaign_key) or client.create_run(
        experiment_id,
        run_name=config.name,
        tags={KEY_TAG: campaign_key, CAMPAIGN_TAG: campaign_key, "evotrain.kind": "campaign"},
    )
    parent_id = parent.info.run_id
    logged = Logged(uri=uri, experiment=config.name, parent_run_id=parent_id)
    _log_parent(client, parent, paths, config.model_dump(mode="json"))
    for manifest, path in _manifests(paths):
        key = f"{campaign_key}/{manifest.candidate_id}"
        run = existing.get(key)
        sha = hash_file(path)
        if run is not None and run.data.tags.get(MANIFEST_TAG) == sha:
            logged.unchanged += 1
            continue
        if run is None:
            run = client.create_run(
                experiment_id,
                start_time=int(manifest.started_at * 1000),
                run_name=manifest.candidate_id,
                tags={KEY_TAG: key, CAMPAIGN_TAG: campaign_key, PARENT_TAG: parent_id},
            )
            logged.created += 1
        else:
            logged.updated += 1
        _log_candidate(client, run, manifest, path, sha)
    return logged


def _client(uri: str, root: Path) -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # nothing leaves the machine
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("MLflow is not installed", fix="pip install 'evotrain[mlflow]' (or mlflow-skinny)") from None
    if not re.match(r"^(sqlite|postgresql|mysql|mssql|https?|databricks)[:+]", uri):
        raise ConfigError(
            f"MLflow tracking URI {uri!r} is not a database or server",
            path=root / "campaign.toml",
            fix=f"use e.g. {default_uri(root)!r} or http://host:5000 (MLflow's file store is in maintenance mode)",
        )
    return MlflowClient(tracking_uri=uri)


def _experiment(client: Any, name: str, uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    artifacts = None
    if uri.startswith("sqlite:///"):  # beside the database, not in the current directory
        artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=artifacts))


def _manifests(paths: CampaignPaths) -> list[tuple[Manifest, Path]]:
    found = []
    for round_paths in paths.rounds():
        for cp in round_paths.candidates():
            if cp.manifest.exists():
                found.append((Manifest.model_validate_json(cp.manifest.read_text()), cp.manifest))
    return found


def _log_parent(client: Any, parent: Any, paths: CampaignPaths, config: dict[str, Any]) -> None:
    from mlflow.entities import Param

    have = parent.data.params
    params = {
        "seed": config["seed"],
        "substrate_source": config["substrate_source"],
        "substrate_sha256": config["substrate_sha256"],
        "constitution_sha256": config["constitution_sha256"],
        "evotrain_version": config["evotrain_version"],
        "external": (config.get("external") or {}).get("name", "none"),
    }
    new = [Param(k, _value(v)) for k, v in params.items() if k not in have]
    closed = [r.number for r in paths.rounds() if CampaignStore(paths).closed(r.number) is not None]
    tags = {"evotrain.rounds_closed": str(len(closed)), "evotrain.campaign_root": str(paths.root)}
    client.log_batch(parent.info.run_id, params=new, tags=_tags(tags))
    client.log_artifact(parent.info.run_id, str(paths.root / "campaign.toml"))
    for number in closed:
        round_paths = paths.round(number)
        for path in (round_paths.policy_md, round_paths.evidence_md):
            if path.exists():
                client.log_artifact(parent.info.run_id, str(path), artifact_path=f"rounds/r{number:04d}")
    client.set_terminated(parent.info.run_id, status="FINISHED")


def candidate_params(m: Manifest) -> dict[str, str]:
    params = {"seed": str(m.seed), "role": m.role, "worker": m.worker}
    params.update({f"knob.{name}": _value(value) for name, value in m.knob_values.items()})
    params.update({f"change.{c.key}": f"{_value(c.old)} → {_value(c.new)}" for c in m.changes})
    return {_safe(k): v[:MAX_PARAM] for k, v in params.items()}


def candidate_metrics(m: Manifest) -> list[tuple[str, float, int]]:
    """(key, value, step): dev per checkpoint at its training step; one-off values at step 0."""
    metrics: list[tuple[str, float, int]] = []
    for index, ev in enumerate(m.checkpoints):
        step = checkpoint_step(ev.checkpoint, index)
        metrics += [(f"dev.{d}", s.score, step) for d, s in ev.domains.items()]
        metrics += [("dev.overall", ev.overall, step), ("dev.objective", ev.objective, step)]
    if m.selected is not None:
        metrics.append(("objective", m.selected.objective, 0))
    if m.external is not None:
        metrics.append(("external", m.external.score, 0))
        metrics += [(f"external.{d}", v, 0) for d, v in (m.external.domains or {}).items()]
    metrics += [(f"training.{k}", v, 0) for k, v in m.training.items()]
    cost = m.cost
    metrics += [("cost.wall_s", cost.wall_s, 0), ("cost.cpu_s", cost.cpu_s, 0), ("cost.gpu_s", cost.gpu_s, 0)]
    return [(_safe(k), float(v), s) for k, v, s in metrics]


def candidate_tags(m: Manifest) -> dict[str, str]:
    return {
        "evotrain.candidate_id": m.candidate_id,
        "round": str(m.round),
        "axis": m.axis or "",
        "axis_category": m.axis_category or "",
        "role": m.role,
        "failure_class": m.failure.failure_class if m.failure else "",
        "failure": m.failure.one_line()[:MAX_PARAM] if m.failure else "",
        "mlflow.note.content": m.rationale[:MAX_PARAM],
    }


def checkpoint_step(name: str, index: int) -> int:
    """`step-000150` → 150; a name without a trailing number → its index in training order."""
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) if match else index


def _log_candidate(client: Any, run: Any, m: Manifest, path: Path, sha: str) -> None:
    from mlflow.entities import Metric, Param

    run_id = run.info.run_id
    have_params, have_metrics = run.data.params, run.data.metrics
    params = [Param(k, v) for k, v in candidate_params(m).items() if k not in have_params]
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, s) for k, v, s in candidate_metrics(m) if k not in have_metrics]
    for start in range(0, max(len(metrics), 1), 1000):  # MLflow takes at most 1000 metrics a batch
        client.log_batch(run_id, metrics=metrics[start : start + 1000], params=params if start == 0 else [])
    client.log_artifact(run_id, str(path))
    with tempfile.TemporaryDirectory() as tmp:
        diff = Path(tmp) / "recipe.diff"
        diff.write_text(m.recipe_diff)
        client.log_artifact(run_id, str(diff))
    client.log_batch(run_id, tags=_tags({**candidate_tags(m), MANIFEST_TAG: sha}))
    end = int((m.finished_at or time.time()) * 1000)
    client.set_terminated(run_id, status="FAILED" if m.failure else "FINISHED", end_time=end)


def _tags(tags: dict[str, str]) -> list[Any]:
    from mlflow.entities import RunTag

    return [RunTag(k, v) for k, v in tags.items()]


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _safe(key: str) -> str:
    return _UNSAFE.sub("_", key)
