"""A synthetic but realistic campaign on disk for the evidence/policy tests: manifests, item-level evaluation
reports, sandboxes with recipe files, external scores — with the scores under the test's control.

Each dev item has a fixed difficulty u in (0, 1); a run with domain skill p gets the item right when u < p (plus
optional per-run flips), so two runs are paired item by item the way real evaluations of one dev set are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from evotrain.evidence.collector import collect_evidence
from evotrain.records.evidence import Evidence
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import (
    CheckpointEval,
    DomainScore,
    ExternalResult,
    Failure,
    KnobChange,
    Manifest,
    Selection,
    Violation,
)
from evotrain.records.policy import Policy
from evotrain.substrate.spec import Axis, Commands, Knob, Metric, SearchSpace, SubstrateSpec

DOMAINS = ["cipher", "equations", "numeral"]
BASE_RECIPE = "lr = 0.001\nwarmup = 10\n\n[mix]\ncipher = 1.0\nequations = 1.0\nnumeral = 1.0\n"

SPEC = SubstrateSpec(
    name="toy",
    editable=["recipe.toml", "pipeline/**"],
    frozen=["eval/**", "data/**"],
    commands=Commands(train="python train.py", evaluate="python eval.py"),
    metric=Metric(name="accuracy", domains=DOMAINS),
    search=SearchSpace(
        axes={
            "optimizer": Axis(
                category="optimization",
                knobs={"lr": Knob(file="recipe.toml", key="lr", type="float", low=1e-4, high=1e-1, log=True)},
            ),
            "schedule": Axis(
                category="optimization",
                knobs={"warmup": Knob(file="recipe.toml", key="warmup", type="int", low=0, high=100)},
            ),
            "data_mix": Axis(
                category="data",
                knobs={"mix": Knob(file="recipe.toml", key="mix", type="weights", low=0.0, high=4.0)},
            ),
        }
    ),
)


def change(axis: str, knob: str, old: Any, new: Any, direction: str = "increase") -> KnobChange:
    return KnobChange(axis=axis, knob=knob, file="recipe.toml", key=knob, old=old, new=new, direction=direction)


def diff_for(recipe: str) -> str:
    """A recipe diff in the harness's format (git-style headers)."""
    import difflib

    if recipe == BASE_RECIPE:
        return ""
    body = "".join(
        difflib.unified_diff(
            BASE_RECIPE.splitlines(keepends=True),
            recipe.splitlines(keepends=True),
            fromfile="a/recipe.toml",
            tofile="b/recipe.toml",
        )
    )
    return "diff --git a/recipe.toml b/recipe.toml\n" + body


class SyntheticCampaign:
    def __init__(self, root: Path, *, n_items: int = 200, seed: int = 0) -> None:
        self.root = root
        self.paths = CampaignPaths(root)
        self.n_items = n_items
        rng = np.random.default_rng(seed)
        self.difficulty = {d: rng.permutation((np.arange(n_items) + 0.5) / n_items) for d in DOMAINS}
        self.manifests: list[Manifest] = []
        self.paths.substrate.mkdir(parents=True, exist_ok=True)
        (self.paths.substrate / "recipe.toml").write_text(BASE_RECIPE)
        (self.paths.substrate / "evotrain.toml").write_text("# frozen\n")

    def run(
        self,
        round_no: int,
        name: str,
        *,
        skill: dict[str, float] | float,
        role: str = "worker",
        axis: str | None = None,
        changes: list[KnobChange] | None = None,
        recipe: str = BASE_RECIPE,
        external: float | None = None,
        external_n: int | None = None,
        failure: str | None = None,
        replicate_of: str | None = None,
        combines: list[str] | None = None,
        knob_values: dict[str, Any] | None = None,
        violations: list[Violation] | None = None,
        weights: dict[str, float] | None = None,
        items: bool = True,
        flip: float = 0.0,
        seed: int = 0,
    ) -> Manifest:
        cp = self.paths.round(round_no).candidate(name)
        skills = skill if isinstance(skill, dict) else dict.fromkeys(DOMAINS, skill)
        rng = np.random.default_rng(seed)
        item_rows, domains = [], {}
        for d in DOMAINS:
            correct = (self.difficulty[d] < skills[d]).astype(float)
            if flip:
                flips = rng.random(self.n_items) < flip
                correct = np.where(flips, 1.0 - correct, correct)
            domains[d] = DomainScore(score=float(correct.mean()), n=self.n_items)
            item_rows += [{"id": f"{d}-{i:04d}", "domain": d, "score": float(c)} for i, c in enumerate(correct)]
        report: dict[str, Any] = {"metric": "accuracy", "domains": {d: s.model_dump() for d, s in domains.items()}}
        if items:
            report["items"] = item_rows
        report_path = cp.eval_dir / "ckpt-final.json"
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report))
        cp.sandbox.mkdir(parents=True, exist_ok=True)
        (cp.sandbox / "recipe.toml").write_text(recipe)
        w = weights or {}
        objective = sum(w.get(d, 1.0) * s.score for d, s in domains.items()) / sum(w.get(d, 1.0) for d in DOMAINS)
        overall = float(np.mean([r["score"] for r in item_rows]))
        ok = failure is None
        manifest = Manifest(
            campaign="synthetic",
            round=round_no,
            candidate_id=cp.candidate_id,
            role=role,
            replicate_of=replicate_of,
            combines=combines or [],
            knob_values=knob_values or {},
            axis=axis,
            axis_category=SPEC.search.axes[axis].category if axis else None,
            seed=seed,
            worker="mutator" if role == "worker" else "none",
            rationale=f"{axis or role} run",
            changes=changes or [],
            recipe_diff=diff_for(recipe),
            edited_files=["recipe.toml"] if recipe != BASE_RECIPE else [],
            recipe_files={"recipe.toml": recipe} if recipe != BASE_RECIPE else {},
            violations=violations or [],
            policy_sha256="0" * 64,
            checkpoints=[
                CheckpointEval(
                    checkpoint="ckpt-final",
                    domains=domains,
                    overall=overall,
                    objective=objective,
                    report=str(report_path.relative_to(self.root)),
                )
            ]
            if ok
            else [],
            selected=Selection(checkpoint="ckpt-final", criterion="max objective", objective=objective) if ok else None,
            external=ExternalResult(
                target="lb", checkpoint="ckpt-final", score=external, n=external_n, submitted_at=0.0
            )
            if external is not None and ok
            else None,
            failure=Failure(failure_class=failure, message="it broke") if failure else None,
            started_at=0.0,
            finished_at=1.0,
        )
        self.manifests.append(manifest)
        return manifest

    def round_manifests(self, round_no: int) -> list[Manifest]:
        return [m for m in self.manifests if m.round == round_no]

    def history(self, up_to: int) -> list[Manifest]:
        return [m for m in self.manifests if m.round <= up_to]

    def evidence(self, round_no: int, policy: Policy) -> Evidence:
        return collect_evidence(
            round_no=round_no,
            policy=policy,
            spec=SPEC,
            round_manifests=self.round_manifests(round_no),
            history=self.history(round_no),
            campaign_root=self.root,
        )
