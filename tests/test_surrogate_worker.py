"""The response-surface proposer (`workers/surrogate.py`): the fit finds a known optimum of an additive quadratic,
and in a campaign on examples/tiny its proposals stay inside the declared space, never repeat a configuration and
are the same for the same campaign seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evotrain.campaign.loop import Campaign
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import Manifest
from evotrain.substrate.spec import Knob, SubstrateSpec, load_spec
from evotrain.workers.guided import GuidedWorker
from evotrain.workers.search_space import build_search_space
from evotrain.workers.surrogate import Encoder, SurrogateWorker, fit

from .campaign_helpers import make_tiny_campaign, manifests
from .test_search_baselines import config, in_space


def toy_space() -> Encoder:
    knobs = {
        "lr": Knob(file="r.toml", key="lr", type="float", low=1e-4, high=1e-1, log=True),
        "drop": Knob(file="r.toml", key="drop", type="float", low=0.0, high=0.5),
        "sched": Knob(file="r.toml", key="sched", type="choice", choices=["const", "cos"]),
    }
    spec = SubstrateSpec.model_validate(
        {
            "name": "toy",
            "editable": ["r.toml"],
            "commands": {"train": "true", "evaluate": "true"},
            "metric": {"name": "accuracy", "domains": ["a"]},
            "search": {"axes": {"a": {"category": "c", "knobs": {k: v.model_dump() for k, v in knobs.items()}}}},
        }
    )
    return Encoder(build_search_space(spec, {}).params)


def test_the_fitted_surface_puts_its_best_where_the_truth_does() -> None:
    encoder = toy_space()
    rng = np.random.default_rng(0)
    names = [p.name for p in encoder.params]

    def truth(unit: list[object]) -> float:  # best at lr 1e-2 (u = 2/3), dropout 0.1 (u = 0.2), cosine
        u = dict(zip(names, unit, strict=True))
        shape = -((float(u["a.lr"]) - 2 / 3) ** 2) - 0.5 * (float(u["a.drop"]) - 0.2) ** 2  # type: ignore[arg-type]
        return shape + (0.05 if u["a.sched"] == "cos" else 0.0)

    units = [encoder.uniform(rng) for _ in range(30)]
    y = np.asarray([truth(u) + rng.normal(0, 0.005) for u in units])
    posterior = fit(np.stack([encoder.features(u) for u in units]), y)
    pool = [encoder.uniform(rng) for _ in range(4000)]
    scores = posterior.predict(np.stack([encoder.features(u) for u in pool]), posterior.mean)
    proposal = encoder.from_unit(pool[int(np.argmax(scores))])
    assert 3e-3 < proposal["a.lr"] < 3e-2
    assert proposal["a.drop"] < 0.25
    assert proposal["a.sched"] == "cos"


def run_surrogate(tmp_path: Path, name: str) -> dict[str, Manifest]:
    campaign = make_tiny_campaign(tmp_path, seed=4, name=name)
    Campaign(campaign, worker=GuidedWorker(0.0, SurrogateWorker())).run(rounds=3, workers=5, parallel=2)
    return manifests(campaign)


def test_campaign_proposals_stay_in_the_space_never_repeat_and_replay(tmp_path: Path) -> None:
    first = run_surrogate(tmp_path, "first")
    spec = load_spec(CampaignPaths(tmp_path / "first").substrate)
    proposals = [m for m in first.values() if m.role == "worker" and m.rationale.startswith("Response surface")]
    assert any("posterior draw" in m.rationale for m in proposals), "the surface was never fitted"
    for m in proposals:
        assert in_space(spec, m.knob_values), m.candidate_id
        assert config(m) not in {config(o) for o in first.values() if o.round < m.round}, m.candidate_id
    again = run_surrogate(tmp_path, "again")
    assert {cid: m.knob_values for cid, m in again.items()} == {cid: m.knob_values for cid, m in first.items()}
