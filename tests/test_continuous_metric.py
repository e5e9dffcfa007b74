"""A substrate scored by a continuous, minimised metric: the tiny substrate (examples/tiny) re-scored by the mean
absolute error of its predicted probability, and the same error ×10. The noise band and threshold must come from
the per-item scores and scale with the metric, the dead ends and promotions must be the same decisions at either
scale, and no word may call the minimised metric "maximized" or a worsening a gain."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest

from evotrain.campaign.init import init_campaign
from evotrain.campaign.loop import Campaign
from evotrain.campaign.store import CampaignStore
from evotrain.external.config import CommandTargetConfig
from evotrain.records.evidence import Evidence
from evotrain.records.layout import CampaignPaths
from evotrain.records.policy import Policy

from .campaign_helpers import EXAMPLES, manifests

SCALES = (1.0, 10.0)
ROUNDS = 2

EVALUATE = '''"""Score a checkpoint by the mean absolute error of its predicted probability (x{scale:g})."""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.dont_write_bytecode = True
from model import load_rows  # noqa: E402

SCALE = {scale!r}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    rows = load_rows(args.split)
    w = np.load(args.checkpoint / "weights.npy")
    b = np.load(args.checkpoint / "bias.npy")
    domains = json.loads((args.checkpoint / "meta.json").read_text())["domains"]
    x = np.array([row["x"] for row in rows], dtype=np.float64)
    bias = np.array([b[domains.index(row["domain"])] for row in rows])
    prob = 1.0 / (1.0 + np.exp(-(x @ w + bias)))
    items = [
        {{"id": row["id"], "domain": row["domain"], "score": SCALE * abs(float(p) - row["y"])}}
        for row, p in zip(rows, prob, strict=True)
    ]
    report = {{"metric": "mae", "domains": {{}}, "items": items}}
    for domain in ("alpha", "beta", "gamma"):
        scores = [item["score"] for item in items if item["domain"] == domain]
        report["domains"][domain] = {{"score": sum(scores) / len(scores), "n": len(scores)}}
    args.out.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
'''

EXTERNAL = '''"""The external target in the same metric: the error rate of the predicted labels (x{scale:g})."""

import json
import sys
from pathlib import Path

answers = [json.loads(line) for line in Path(sys.argv[1]).read_text().splitlines() if line.strip()]
predictions = json.loads(Path(sys.argv[2]).read_text())["predictions"]
wrong = [float(str(predictions.get(a["id"], "")).strip() != a["answer"]) for a in answers]
print(json.dumps({{"score": {scale!r} * sum(wrong) / len(wrong), "n": len(wrong)}}))
'''


def _mae_substrate(root: Path, scale: float) -> Path:
    substrate = root / "tiny-mae"
    shutil.copytree(EXAMPLES / "tiny", substrate, ignore=shutil.ignore_patterns("__pycache__"))
    (substrate / "eval" / "evaluate.py").write_text(EVALUATE.format(scale=scale))
    toml = (substrate / "evotrain.toml").read_text()
    metric = '[metric]\nname = "accuracy"\ndirection = "maximize"\n'
    assert metric in toml
    (substrate / "evotrain.toml").write_text(toml.replace(metric, '[metric]\nname = "mae"\ndirection = "minimize"\n'))
    return substrate


def _mae_external(root: Path, scale: float) -> CommandTargetConfig:
    script = root / "score_mae.py"
    script.write_text(EXTERNAL.format(scale=scale))
    answers = EXAMPLES / "tiny_external_answers.jsonl"
    return CommandTargetConfig(command=f"{sys.executable} {script} {answers} {{predictions}}", cwd=str(root))


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    """Two rounds of two anchors and three workers, at each scale, from the same campaign seed."""
    out = {}
    for scale in SCALES:
        root = tmp_path_factory.mktemp(f"mae-x{scale:g}")
        run = root / "run"
        init_campaign(run, _mae_substrate(root, scale), external=_mae_external(root, scale), seed=3)
        store = CampaignStore(CampaignPaths(run))
        policy = store.read_policy(1)
        policy.noise.anchors_per_round = 2  # seed noise measured from round 1 on, for dev and external
        store.write_policy(1, policy)
        Campaign(run).run(rounds=ROUNDS, workers=5, parallel=2)
        out[scale] = run
    return out


def _evidence(run: Path, round_no: int) -> Evidence:
    return Evidence.model_validate_json(CampaignPaths(run).round(round_no).evidence_json.read_text())


def _policy(run: Path, round_no: int) -> Policy:
    return Policy.model_validate_json(CampaignPaths(run).round(round_no).policy_json.read_text())


def test_band_and_threshold_come_from_the_per_item_scores_and_scale_with_the_metric(
    campaigns: dict[float, Path],
) -> None:
    for round_no in range(1, ROUNDS + 1):
        one, ten = (_evidence(campaigns[s], round_no).calibration for s in SCALES)
        for cal in (one, ten):
            assert cal.metric_kind == "continuous" and "inferred" in cal.metric_kind_how
            assert "per-item scores" in cal.noise_note and "binomial" not in cal.noise_note
            assert cal.seed_sd is not None and cal.seed_sd > 0  # two anchors a round: seed noise from round 1
            assert cal.item_sd is not None and cal.item_sd > 0
            assert cal.dev_threshold is not None and cal.dev_noise_band is not None
            assert cal.dev_threshold == pytest.approx(cal.k * cal.dev_noise_band)
            assert cal.dev_noise_band == pytest.approx(math.hypot(cal.seed_sd, cal.item_sd))
            assert cal.external_noise_source in ("anchors", "dev band (assumed)")  # never binomial, never 0.01
            assert cal.external_power is not None and cal.external_power.power is not None
        # 0.0000 at ×10 was the bug: every figure is ten times the ×1 figure
        for field in ("item_sd", "seed_sd", "dev_noise_band", "dev_threshold", "external_noise_band"):
            assert getattr(ten, field) == pytest.approx(10 * getattr(one, field), rel=1e-6), field
        for domain, band in one.domain_noise_bands.items():
            assert ten.domain_noise_bands[domain] == pytest.approx(10 * band, rel=1e-6)
        assert ten.external_power is not None and one.external_power is not None
        assert ten.external_power.power == pytest.approx(one.external_power.power, abs=1e-6)


def test_gains_are_signed_so_that_a_lower_error_is_positive(campaigns: dict[float, Path]) -> None:
    for scale, run in campaigns.items():
        found = manifests(run)
        for round_no in range(1, ROUNDS + 1):
            anchor = found[f"r{round_no:04d}/c01-anchor"]
            assert anchor.selected is not None
            evidence = _evidence(run, round_no)
            assert [s.candidate_id for s in evidence.candidates if s.role == "anchor"] == [
                f"r{round_no:04d}/c01-anchor",
                f"r{round_no:04d}/c02-anchor",
            ]
            for s in evidence.candidates:
                if s.role == "anchor" or s.gain is None:
                    continue
                assert s.objective is not None
                assert s.gain == pytest.approx(anchor.selected.objective - s.objective), (scale, s.candidate_id)
                assert s.above_noise == (s.gain > (evidence.calibration.dev_threshold or math.inf))
                # every checkpoint choice is the lowest error of the run
                m = found[s.candidate_id]
                assert m.selected is not None
                assert m.selected.objective == min(c.objective for c in m.checkpoints)


def test_dead_ends_and_promotions_are_the_same_decisions_at_either_scale(campaigns: dict[float, Path]) -> None:
    one, ten = (_policy(campaigns[s], ROUNDS + 1) for s in SCALES)
    assert [(d.round, d.axis, d.knob, d.direction) for d in one.dead_ends] == [
        (d.round, d.axis, d.knob, d.direction) for d in ten.dead_ends
    ]
    assert one.standing_recipe.source == ten.standing_recipe.source
    assert [(a.name, a.status) for a in one.axes] == [(a.name, a.status) for a in ten.axes]
    assert one.replicate == ten.replicate
    assert [p.action for p in one.changelog] == [p.action for p in ten.changelog]
    for scale, run in campaigns.items():
        gains = {}
        for round_no in range(1, ROUNDS + 1):
            evidence = _evidence(run, round_no)
            threshold = evidence.calibration.dev_threshold
            assert threshold is not None and threshold > 0
            for s in evidence.candidates:
                if s.gain is not None:
                    gains[s.candidate_id] = (s.gain, threshold)
        for d in _policy(run, ROUNDS + 1).dead_ends:
            cid = d.evidence.split(":", 1)[0]
            if cid in gains and "objective gain" in d.evidence:
                gain, threshold = gains[cid]
                assert gain < -threshold, (scale, d)  # one run makes a direction dead only beyond the noise


def test_no_word_calls_the_minimised_metric_maximized(campaigns: dict[float, Path]) -> None:
    for run in campaigns.values():
        paths = CampaignPaths(run)
        for round_no in range(1, ROUNDS + 2):
            rp = paths.round(round_no)
            policy = _policy(run, round_no)
            assert policy.objective.mode == "optimize_dev"
            texts = [rp.policy_md.read_text(), rp.policy_json.read_text()]
            if rp.evidence_md.exists():
                texts += [rp.evidence_md.read_text(), rp.evidence_json.read_text()]
            for text in texts:
                assert "maximiz" not in text.lower() and "maximis" not in text.lower()
        for m in manifests(run).values():
            assert m.selected is None or m.selected.criterion.startswith("min objective")
        assert json.loads(paths.round(1).evidence_json.read_text())["calibration"]["metric_kind"] == "continuous"
