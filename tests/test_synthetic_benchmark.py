"""benchmarks/loop_decisions.py: its metrics on hand-made campaign records, and one real (small) campaign read
back against the synthetic substrate's truth."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "loop_decisions.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("loop_decisions_under_test", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the records' annotations through the module
    spec.loader.exec_module(module)
    return module


B = _load()


def candidate(cid: str, true_external: float, *, role: str = "worker", **kw: Any) -> Any:
    round_no = int(cid.split("/")[0][1:])
    fields = dict(true_dev=0.0, true_trap_domain=0.0, ok=True) | kw
    return B.CandidateRecord(id=cid, round=round_no, role=role, true_external=true_external, **fields)


def promotion(round_no: int, source: str, true_external: float, true_dev: float = 0.0) -> Any:
    return B.PromotionRecord(
        round=round_no, source=source, changed=["train.lr"], true_dev=true_dev, true_external=true_external
    )


def campaign(seed: int, arm: str, **kw: Any) -> Any:
    fields = dict(
        label="t",
        trap_round=3,
        rounds=4,
        workers=8,
        evotrain_commit="abc1234",
        evotrain_dirty=False,
        evotrain_source="src",
        wall_s=1.0,
    )
    return B.CampaignResult(seed=seed, arm=arm, **(fields | kw))


def records() -> list[Any]:
    a = campaign(
        0,
        "control",
        candidates=[
            candidate("r0001/c01-anchor", 0.0, role="anchor"),
            candidate("r0001/c02-optimizer", 0.03),  # clearly positive, promoted
            candidate("r0001/c03-schedule", 0.01),  # positive, missed
            candidate("r0001/c04-data_mix", -0.02),
            candidate("r0002/c02-replicate-schedule", 0.01, role="replicate", replicate_of="r0001/c03-schedule"),
            candidate("r0002/c03-regularization", 0.004),  # neutral: not counted as positive
        ],
        promotions=[promotion(1, "r0001/c02-optimizer", 0.03), promotion(2, "r0002/c03-regularization", -0.01)],
        decoupled={1: [], 2: [], 3: [], 4: []},
        final_true_external_gain=0.02,
        final_true_dev_gain=0.03,
    )
    b = campaign(
        1,
        "control",
        candidates=[candidate("r0001/c02-optimizer", 0.025)],  # clearly positive, missed
        promotions=[promotion(3, "r0003/c05-schedule", 0.02, true_dev=0.03)],
        decoupled={1: [], 2: [], 3: [], 4: ["arith"]},  # a false flag
        final_true_external_gain=0.0,
        final_true_dev_gain=0.0,
    )
    on_time = campaign(
        0,
        "trap",
        decoupled={1: [], 2: [], 3: [], 4: ["logic"]},
        untrusted={4: [], 5: ["logic"]},
        promotions=[promotion(3, "r0003/c02-augmentation", -0.002, true_dev=0.05)],  # the trap, promoted
        final_true_external_gain=0.01,
    )
    late = campaign(1, "trap", decoupled={5: ["logic"]}, final_true_external_gain=0.0)
    early = campaign(2, "trap", decoupled={2: ["logic"], 3: ["logic"]}, final_true_external_gain=0.0)
    broken = campaign(3, "trap", error="RuntimeError: boom")
    return [a, b, on_time, late, early, broken]


def test_promotion_precision_and_miss_rate() -> None:
    control = B.summarize(records())["control"]
    assert control.campaigns == 2 and control.promotions == 3
    assert (control.promotion_precision.hits, control.promotion_precision.total) == (2, 3)
    assert control.promotion_precision.value == pytest.approx(2 / 3)
    assert (control.promotions_harmful.hits, control.promotions_harmful.total) == (1, 3)
    assert (control.promotions_dev_only.hits, control.promotions_dev_only.total) == (0, 3)
    # truly positive worker changes: c02 (promoted) and c03 (missed; its replicate is not a worker) in a, c02 in b
    assert (control.miss_rate.hits, control.miss_rate.total) == (2, 3)
    assert (control.miss_rate_clear.hits, control.miss_rate_clear.total) == (1, 2)
    low, high = control.promotion_precision.low, control.promotion_precision.high
    assert low is not None and high is not None and 0.0 <= low <= 2 / 3 <= high <= 1.0
    assert control.final_external_gain.mean == pytest.approx(0.01)
    assert control.final_external_gain.positive == 1


def test_trap_flags_and_false_flags() -> None:
    summary = B.summarize(records())
    trap, control = summary["trap"], summary["control"]
    assert trap.campaigns == 3 and trap.failed == 1
    assert trap.flagged_on_time is not None and trap.false_flag_in_trap_arm is not None
    assert (trap.flagged_on_time.hits, trap.flagged_on_time.total) == (2, 3)  # rounds 4 and 3 are within one round
    assert (trap.false_flag_in_trap_arm.hits, trap.false_flag_in_trap_arm.total) == (1, 3)  # flagged before onset
    assert (control.any_flag.hits, control.any_flag.total) == (1, 2)
    assert control.flagged_on_time is None
    assert trap.untrusted_on_time is not None and trap.untrusted_on_time.hits == 1
    assert (trap.promotion_precision.hits, trap.promotion_precision.total) == (0, 1)
    assert (trap.promotions_dev_only.hits, trap.promotions_dev_only.total) == (1, 1)
    assert B.wilson(0, 0).render().startswith("—")


def test_wilson_interval_matches_the_formula() -> None:
    none = B.wilson(0, 10)
    assert none.value == 0 and none.low == 0 and none.high == pytest.approx(0.2775, abs=1e-4)
    half = B.wilson(5, 10)
    assert (half.low, half.high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert B.wilson(0, 0).value is None


def test_pooled_ratio_bootstraps_over_campaigns() -> None:
    same = B.pooled_ratio([(1, 2)] * 20)  # no spread between campaigns: the Wilson interval of 20/40 remains
    wilson = B.wilson(20, 40)
    assert same.value == 0.5 and (same.low, same.high) == (wilson.low, wilson.high)
    every = B.pooled_ratio([(3, 3)] * 10)  # 100 %: the bootstrap collapses, Wilson does not
    assert every.value == every.high == 1.0 and every.low == B.wilson(30, 30).low
    mixed = B.pooled_ratio([(2, 2), (0, 2)] * 10)
    assert mixed.low is not None and mixed.high is not None and mixed.low < 0.5 < mixed.high


def test_finished_campaigns_are_skipped_and_the_table_renders() -> None:
    done = records()
    todo = B.jobs_to_run(done, range(3), ["trap", "control"])
    assert todo == [(2, "control")]
    table = B.markdown(done, B.summarize(done))
    assert "| promotion precision (true external effect > +0.005) | 0.000 [0.000, 0.793] (0/1) | 0.667 [" in table
    assert "abc1234" in table


def test_a_real_campaign_is_read_back_against_the_truth(tmp_path: Path) -> None:
    result = B.run_campaign(label="t", seed=3, arm="trap", trap_round=2, rounds=2, workers=4, work=tmp_path, keep=True)
    assert result.error is None, result.error
    assert [c.id for c in result.candidates if c.role == "anchor"] == ["r0001/c01-anchor", "r0002/c01-anchor"]
    anchors = [c for c in result.candidates if c.role == "anchor"]
    assert all(c.true_external == 0.0 and c.changed == [] for c in anchors)
    workers = [c for c in result.candidates if c.role == "worker"]
    assert workers and all(c.changed for c in workers)  # every worker moved a knob, and the truth saw it
    augmented = [c for c in workers if c.round == 2 and any(k == "augment.ratio" for k in c.changed)]
    assert all(c.true_trap_domain > 0 for c in augmented)  # the trap acts from round 2
    assert set(result.decoupled) == {1, 2} and set(result.untrusted) == {1, 2, 3}
    assert result.final_true_external_gain is not None
    again = B.read_campaign(
        tmp_path / "t-s0003-trap" / "run", w=B.world.World(seed=3, trap=True, trap_round=2), rounds=2
    )
    assert [c.model_dump() for c in again["candidates"]] == [c.model_dump() for c in result.candidates]
