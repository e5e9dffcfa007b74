"""The loop's decisions measured against known truth on the synthetic substrate (examples/synthetic).

See docs/synthetic.md for the substrate and docs/benchmarks.md for results.

    nice -n 10 .venv/bin/python benchmarks/loop_decisions.py [--seeds 100] [--jobs 2] [--label NAME]
        [--rounds 4] [--workers 8] [--trap-round 3] [--arms trap,control] [--keep DIR] [--summary-only]
        [--method evotrain|optuna-tpe|random|tpe-rules|guided]
    .venv/bin/python benchmarks/loop_decisions.py --compare RESULTS.jsonl OTHER.jsonl ...

For each campaign seed s (0 … seeds−1) and each arm (`trap`: the proxy trap on from round --trap-round;
`control`: no trap; both arms of one seed share the world, the seeds and the mutator's draws, so they are paired),
it copies the substrate, writes world.json, runs `evotrain init` and the round loop (mutator workers, rule meta
agent, the command external target examples/synthetic_score.py) through evotrain's Python API, one candidate at a
time, then reads the campaign back (manifests, evidence, policies) and scores its decisions with the substrate's
ground truth (examples/synthetic/sim/world.py). One JSON line a campaign goes to the results file
(benchmarks/loop_decisions_<label>.jsonl, committed); a rerun skips the (seed, arm) pairs already there, and
`--summary-only` recomputes the table from it. Whatever `evotrain` Python imports is measured: to measure another
commit, `git worktree add /tmp/before <commit>` and run with PYTHONPATH=/tmp/before/src (the commit and whether
its tree was dirty are recorded in every line).

What is measured (EPS = 0.005, half a point of accuracy; "true" = the world's noise-free expected score):
- promotion precision: of the promotions (a change of the standing recipe between consecutive policies), the
  fraction whose true external effect (new standing recipe minus old) is > +EPS;
- miss rate: of the worker candidates whose change is truly positive on external (> +EPS against their round's
  anchor, i.e. the standing recipe), the fraction never promoted; also for clearly positive ones (≥ +0.02);
- trap flagged within one round of onset (trap arm): the trap domain is in the evidence's
  calibration.decoupled_domains of round R or R+1 (so the policy of round R+1 or R+2 marks it untrusted);
- false flag (control arm): any dev domain flagged decoupled in any round;
- the true external gain of the final standing recipe over the substrate's recipe;
- the true external gain of the final pick (the submitted trial with the best external score returned, what a
  user hands in), the measure `--compare` pairs by seed across methods: evotrain (mutator workers, rule meta agent),
  the search baselines (the Optuna worker over the whole declared space, meta agent `none`) and `tpe-rules` (Optuna
  TPE workers under the rule meta agent).
Campaign-level rates get Wilson 95 % intervals; pooled ratios (precision, miss rate) the wider of Wilson on the
pooled counts and a bootstrap over campaigns; means a bootstrap over campaigns.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import importlib.util
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

ROOT = Path(__file__).resolve().parents[1]
SUBSTRATE = ROOT / "examples" / "synthetic"
SCORER = ROOT / "examples" / "synthetic_score.py"
RESULTS = ROOT / "benchmarks"

EPS = 0.005  # a true effect above +EPS is "positive", below −EPS "negative", else neutral
CLEAR = 0.02  # a "clearly positive" true external effect (about one external sd of the target)
SCHEMA = 1

Arm = Literal["trap", "control"]
Method = Literal["evotrain", "optuna-tpe", "random", "tpe-rules", "guided"]


def load_world() -> ModuleType:
    """The substrate's ground truth (examples/synthetic/sim/world.py), imported by path."""
    spec = importlib.util.spec_from_file_location("synthetic_world", SUBSTRATE / "sim" / "world.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("synthetic_world", module)
    spec.loader.exec_module(module)
    return module


world = load_world()


# ---- the raw record of one campaign --------------------------------------------------------------------------
class CandidateRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    round: int
    role: str
    axis: str | None = None
    replicate_of: str | None = None
    ok: bool
    changed: list[str] = []  # recipe keys that differ from the round's anchor
    gain: float | None = None  # the objective gain over the anchor the loop measured
    external: float | None = None  # its external score, if submitted
    true_dev: float  # true effect on dev against the round's anchor (standing recipe), at this round
    true_trap_domain: float  # … on the trap domain's dev score
    true_external: float  # true effect on the external score against the round's anchor


class PromotionRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    round: int  # the evidence round whose meta agent changed the standing recipe (it governs round + 1)
    source: str | None
    changed: list[str]
    true_dev: float  # new standing recipe minus old, true dev at `round`
    true_external: float


class CampaignResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA
    label: str
    seed: int
    arm: Arm
    trap_round: int
    rounds: int
    workers: int
    evotrain_commit: str
    evotrain_dirty: bool
    evotrain_source: str
    wall_s: float
    error: str | None = None
    candidates: list[CandidateRecord] = []
    promotions: list[PromotionRecord] = []
    decoupled: dict[int, list[str]] = {}  # evidence round -> calibration.decoupled_domains
    untrusted: dict[int, list[str]] = {}  # policy round -> objective.untrusted_domains
    actions: dict[int, dict[str, int]] = {}  # policy round -> changelog action counts
    final_true_external_gain: float | None = None  # final standing recipe minus the substrate's, true external
    final_true_dev_gain: float | None = None
    method: Method = "evotrain"  # evotrain (mutator + rules), or a search baseline (its worker + meta none)
    final_pick: str | None = None  # the best external score returned during the campaign (`final_pick`)
    final_pick_true_external_gain: float | None = None  # its recipe minus the substrate's, true external


# ---- reading a campaign against the truth ---------------------------------------------------------------------
def recipe_values(text: str | None) -> dict[str, Any]:
    """A recipe.toml's knob values (the substrate's where `text` is None)."""
    if text is None:
        return dict(world.BASE_RECIPE)
    return {**world.BASE_RECIPE, **world.flatten(tomllib.loads(text))}


def changed_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out += [f"{key}.{d}" for d in sorted(set(a[key]) | set(b[key])) if a[key].get(d) != b[key].get(d)]
        elif a.get(key) != b.get(key):
            out.append(key)
    return out


def true_delta(new: dict[str, Any], old: dict[str, Any], *, round_no: int, w: Any) -> dict[str, float]:
    a = world.expected_scores(new, round_no=round_no, world=w)
    b = world.expected_scores(old, round_no=round_no, world=w)
    return {k: a[k] - b[k] for k in a}


def read_campaign(run: Path, *, w: Any, rounds: int) -> dict[str, Any]:
    """The fields of a CampaignResult that come from the campaign folder."""
    from evotrain.campaign.store import CampaignStore
    from evotrain.records.layout import CampaignPaths

    paths = CampaignPaths(run)
    store = CampaignStore(paths)
    base_text = (paths.substrate / "recipe.toml").read_text()

    def sandbox_recipe(candidate_id: str) -> dict[str, Any]:
        round_name, name = candidate_id.split("/", 1)
        cp = paths.round(int(round_name[1:])).candidate(name)
        return recipe_values((cp.sandbox / "recipe.toml").read_text())

    manifests = store.manifests(up_to_round=rounds)
    anchors = {m.round: m for m in manifests if m.role == "anchor"}
    candidates = []
    for m in manifests:
        recipe = sandbox_recipe(m.candidate_id)
        anchor = anchors.get(m.round)
        reference = sandbox_recipe(anchor.candidate_id) if anchor is not None else recipe_values(base_text)
        delta = true_delta(recipe, reference, round_no=m.round, w=w)
        gain = None
        if m.role != "anchor" and m.ok and anchor is not None and anchor.ok:
            assert m.selected is not None and anchor.selected is not None
            gain = m.selected.objective - anchor.selected.objective
        candidates.append(
            CandidateRecord(
                id=m.candidate_id,
                round=m.round,
                role=m.role,
                axis=m.axis,
                replicate_of=m.replicate_of,
                ok=m.ok,
                changed=changed_keys(recipe, reference),
                gain=gain,
                external=m.external.score if m.external is not None else None,
                true_dev=delta["dev"],
                true_trap_domain=delta[f"dev.{world.TRAP_DOMAIN}"],
                true_external=delta["external"],
            )
        )
    promotions = []
    decoupled: dict[int, list[str]] = {}
    untrusted: dict[int, list[str]] = {}
    actions: dict[int, dict[str, int]] = {}
    policies = {r: store.read_policy(r) for r in range(1, rounds + 2) if paths.round(r).policy_json.exists()}
    for r, policy in policies.items():
        untrusted[r] = list(policy.objective.untrusted_domains)
        actions[r] = dict(Counter(entry.action for entry in policy.changelog))
    for r in range(1, rounds + 1):
        if paths.round(r).evidence_json.exists():
            decoupled[r] = list(store.read_evidence(r).calibration.decoupled_domains)
        old, new = policies.get(r), policies.get(r + 1)
        if old is None or new is None:
            continue
        old_text = old.standing_recipe.files.get("recipe.toml")
        new_text = new.standing_recipe.files.get("recipe.toml")
        if old.standing_recipe.files == new.standing_recipe.files:
            continue
        a, b = recipe_values(new_text), recipe_values(old_text)
        delta = true_delta(a, b, round_no=r, w=w)
        promotions.append(
            PromotionRecord(
                round=r,
                source=new.standing_recipe.source,
                changed=changed_keys(a, b),
                true_dev=delta["dev"],
                true_external=delta["external"],
            )
        )
    final = policies.get(rounds + 1)
    out: dict[str, Any] = dict(candidates=candidates, promotions=promotions)
    from evotrain.campaign.final_pick import final_pick

    pick = final_pick(manifests)
    if pick is not None:
        picked = true_delta(sandbox_recipe(pick.candidate_id), recipe_values(base_text), round_no=rounds, w=w)
        out.update(final_pick=pick.candidate_id, final_pick_true_external_gain=picked["external"])
    out.update(decoupled=decoupled, untrusted=untrusted, actions=actions)
    if final is not None:
        delta = true_delta(
            recipe_values(final.standing_recipe.files.get("recipe.toml")),
            recipe_values(base_text),
            round_no=rounds,
            w=w,
        )
        out.update(final_true_external_gain=delta["external"], final_true_dev_gain=delta["dev"])
    return out


# ---- running one campaign ------------------------------------------------------------------------------------
def evotrain_version() -> tuple[str, bool, str]:
    """(commit, dirty, source folder) of the evotrain package this process imports."""
    import evotrain

    src = Path(evotrain.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--", "."], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True, str(src)
    return commit, bool(status.strip()), str(src)


def run_campaign(
    *,
    label: str,
    seed: int,
    arm: Arm,
    trap_round: int,
    rounds: int,
    workers: int,
    work: Path,
    keep: bool,
    method: Method = "evotrain",
) -> CampaignResult:
    """Init (or resume) and run one campaign under `work`, read it back against the truth."""
    from evotrain.campaign.init import init_campaign
    from evotrain.campaign.loop import Campaign
    from evotrain.external.config import CommandTargetConfig

    commit, dirty, source = evotrain_version()
    folder = work / f"{label}-s{seed:04d}-{arm}"
    run = folder / "run"
    w = world.World(seed=seed, trap=arm == "trap", trap_round=trap_round)
    started = time.monotonic()
    base = dict(
        label=label,
        seed=seed,
        arm=arm,
        trap_round=trap_round,
        rounds=rounds,
        workers=workers,
        evotrain_commit=commit,
        evotrain_dirty=dirty,
        evotrain_source=source,
        method=method,
    )
    try:
        if not run.exists():
            substrate = folder / "substrate"
            if substrate.exists():
                shutil.rmtree(substrate)
            shutil.copytree(SUBSTRATE, substrate, ignore=shutil.ignore_patterns("__pycache__"))
            world.write_world(substrate / "world.json", w)
            world_file = run.resolve() / "substrate" / "world.json"
            command = f"{sys.executable} -S {SCORER} --world {world_file} --predictions {{predictions}}"
            init_campaign(run, substrate, external=CommandTargetConfig(command=command), seed=seed)
        if method == "evotrain":
            Campaign(run).run(rounds=rounds, workers=workers, parallel=1)
        elif method == "tpe-rules":  # Optuna TPE proposing, evotrain's rule meta agent deciding
            from evotrain.workers.optuna_worker import OptunaWorker

            Campaign(run, worker=OptunaWorker("tpe")).run(rounds=rounds, workers=workers, parallel=1)
        elif method == "guided":  # one-axis mutator probes and Optuna TPE proposals, rule meta agent
            from evotrain.workers.guided import GuidedWorker

            Campaign(run, worker=GuidedWorker()).run(rounds=rounds, workers=workers, parallel=1)
        else:
            from evotrain.policy.meta_none import KeepPolicyMetaAgent
            from evotrain.workers.optuna_worker import OptunaWorker

            sampler: Literal["tpe", "random"] = "tpe" if method == "optuna-tpe" else "random"
            Campaign(run, worker=OptunaWorker(sampler), meta_agent=KeepPolicyMetaAgent()).run(
                rounds=rounds, workers=workers, parallel=1
            )
        fields = read_campaign(run, w=w, rounds=rounds)
        result = CampaignResult(**base, wall_s=time.monotonic() - started, **fields)
    except Exception as exc:  # a campaign that fails is a result too (recorded, not retried)
        result = CampaignResult(**base, wall_s=time.monotonic() - started, error=f"{type(exc).__name__}: {exc}")
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _run_job(job: dict[str, Any]) -> str:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return run_campaign(**job).model_dump_json()


# ---- the metrics ---------------------------------------------------------------------------------------------
class Rate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hits: int
    total: int
    value: float | None
    low: float | None
    high: float | None
    method: str

    def render(self) -> str:
        if self.value is None or self.low is None or self.high is None:
            return f"— (0 of {self.total})"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] ({self.hits}/{self.total})"


def wilson(hits: int, total: int, z: float = 1.959964) -> Rate:
    """The Wilson score interval (95 %) of a proportion."""
    if total == 0:
        return Rate(hits=0, total=0, value=None, low=None, high=None, method="Wilson")
    p = hits / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return Rate(
        hits=hits, total=total, value=p, low=max(0.0, centre - half), high=min(1.0, centre + half), method="Wilson"
    )


def pooled_ratio(per_campaign: Sequence[tuple[int, int]], *, n_boot: int = 2000, seed: int = 0) -> Rate:
    """Σ hits / Σ total over campaigns. Its interval (95 %) is the wider of the Wilson interval of the pooled counts
    and a percentile bootstrap that resamples campaigns: the bootstrap carries the clustering of decisions within a
    campaign, Wilson the binomial uncertainty the bootstrap cannot see at 0 % or 100 %."""
    hits = sum(h for h, _ in per_campaign)
    total = sum(t for _, t in per_campaign)
    method = "Wilson ∪ bootstrap over campaigns"
    if total == 0:
        return Rate(hits=0, total=0, value=None, low=None, high=None, method=method)
    rng = random.Random(seed)
    ratios = []
    for _ in range(n_boot):
        sample = [per_campaign[rng.randrange(len(per_campaign))] for _ in per_campaign]
        t = sum(s for _, s in sample)
        if t:
            ratios.append(sum(h for h, _ in sample) / t)
    ratios.sort()
    w = wilson(hits, total)
    assert w.low is not None and w.high is not None
    low = min(w.low, ratios[int(0.025 * (len(ratios) - 1))])
    high = max(w.high, ratios[math.ceil(0.975 * (len(ratios) - 1))])
    return Rate(hits=hits, total=total, value=hits / total, low=low, high=high, method=method)


class MeanInterval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mean: float | None
    low: float | None
    high: float | None
    n: int
    positive: int  # campaigns with a value > +EPS

    def render(self) -> str:
        if self.mean is None or self.low is None or self.high is None:
            return "—"
        return f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}] (> +{EPS:g} in {self.positive}/{self.n})"


def mean_interval(values: Sequence[float], *, n_boot: int = 2000, seed: int = 0) -> MeanInterval:
    if not values:
        return MeanInterval(mean=None, low=None, high=None, n=0, positive=0)
    rng = random.Random(seed)
    means = sorted(sum(rng.choice(values) for _ in values) / len(values) for _ in range(n_boot))
    return MeanInterval(
        mean=sum(values) / len(values),
        low=means[int(0.025 * (n_boot - 1))],
        high=means[math.ceil(0.975 * (n_boot - 1))],
        n=len(values),
        positive=sum(v > EPS for v in values),
    )


def promoted_sources(result: CampaignResult) -> set[str]:
    return {p.source for p in result.promotions if p.source is not None}


def flagged_on_time(result: CampaignResult) -> bool:
    """Trap arm: the trap domain flagged decoupled in the evidence of the onset round or the next."""
    window = (result.trap_round, result.trap_round + 1)
    return any(world.TRAP_DOMAIN in result.decoupled.get(r, []) for r in window)


def untrusted_on_time(result: CampaignResult) -> bool:
    """Trap arm: the policy that follows the onset round's evidence, or the next one, marks the trap domain untrusted
    (the objective change that should follow the flag)."""
    window = (result.trap_round + 1, result.trap_round + 2)
    return any(world.TRAP_DOMAIN in result.untrusted.get(r, []) for r in window)


def any_flag(result: CampaignResult) -> bool:
    return any(result.decoupled.get(r) for r in result.decoupled)


def false_flag_in_trap_arm(result: CampaignResult) -> bool:
    """Trap arm: a domain flagged before the onset, or a domain other than the trap's flagged at any time."""
    return any(
        (r < result.trap_round and domains) or any(d != world.TRAP_DOMAIN for d in domains)
        for r, domains in result.decoupled.items()
    )


def trap_tested(result: CampaignResult) -> tuple[int, int]:
    """(trap candidates from the onset on, those submitted): workers whose change raises the trap domain's true dev
    score by more than 0.05 while external does not gain."""
    trap = [
        c
        for c in result.candidates
        if c.role != "anchor" and c.round >= result.trap_round and c.true_trap_domain > 0.05 and c.true_external <= EPS
    ]
    return len(trap), sum(c.external is not None for c in trap)


class ArmSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arm: Arm
    campaigns: int
    failed: int
    promotions: int
    promotion_precision: Rate  # true external effect > +EPS
    promotion_precision_strict: Rate  # true external effect > 0
    promotions_harmful: Rate  # true external effect < −EPS
    promotions_dev_only: Rate  # true dev effect > +EPS while the true external effect is not (the proxy's pull)
    miss_rate: Rate  # truly positive (> +EPS) worker changes never promoted
    miss_rate_clear: Rate  # clearly positive (≥ CLEAR)
    final_external_gain: MeanInterval
    final_dev_gain: MeanInterval
    final_pick_external_gain: MeanInterval | None = None
    any_flag: Rate  # campaigns with any domain flagged decoupled, any round
    flagged_on_time: Rate | None = None  # trap arm only
    untrusted_on_time: Rate | None = None  # trap arm only
    false_flag_in_trap_arm: Rate | None = None  # trap arm only
    trap_candidates_per_campaign: float | None = None
    trap_candidates_submitted: float | None = None
    wall_s_median: float | None = None


def summarize_arm(results: Sequence[CampaignResult], arm: Arm) -> ArmSummary:
    runs = [r for r in results if r.arm == arm and r.error is None]
    failed = sum(1 for r in results if r.arm == arm and r.error is not None)
    precision, strict, harmful, dev_only, miss, miss_clear = [], [], [], [], [], []
    for r in runs:
        n = len(r.promotions)
        precision.append((sum(p.true_external > EPS for p in r.promotions), n))
        strict.append((sum(p.true_external > 0 for p in r.promotions), n))
        harmful.append((sum(p.true_external < -EPS for p in r.promotions), n))
        dev_only.append((sum(p.true_dev > EPS >= p.true_external for p in r.promotions), n))
        promoted = promoted_sources(r)
        positive = [c for c in r.candidates if c.role == "worker" and c.ok and c.true_external > EPS]
        clear = [c for c in positive if c.true_external >= CLEAR]
        miss.append((sum(c.id not in promoted for c in positive), len(positive)))
        miss_clear.append((sum(c.id not in promoted for c in clear), len(clear)))
    walls = sorted(r.wall_s for r in runs)
    summary = ArmSummary(
        arm=arm,
        campaigns=len(runs),
        failed=failed,
        promotions=sum(len(r.promotions) for r in runs),
        promotion_precision=pooled_ratio(precision),
        promotion_precision_strict=pooled_ratio(strict),
        promotions_harmful=pooled_ratio(harmful),
        promotions_dev_only=pooled_ratio(dev_only),
        miss_rate=pooled_ratio(miss),
        miss_rate_clear=pooled_ratio(miss_clear),
        final_external_gain=mean_interval(
            [r.final_true_external_gain for r in runs if r.final_true_external_gain is not None]
        ),
        final_dev_gain=mean_interval([r.final_true_dev_gain for r in runs if r.final_true_dev_gain is not None]),
        final_pick_external_gain=mean_interval([g for r in runs if (g := pick_gain(r)) is not None]),
        any_flag=wilson(sum(any_flag(r) for r in runs), len(runs)),
        wall_s_median=walls[len(walls) // 2] if walls else None,
    )
    if arm == "trap":
        tested = [trap_tested(r) for r in runs]
        summary.flagged_on_time = wilson(sum(flagged_on_time(r) for r in runs), len(runs))
        summary.untrusted_on_time = wilson(sum(untrusted_on_time(r) for r in runs), len(runs))
        summary.false_flag_in_trap_arm = wilson(sum(false_flag_in_trap_arm(r) for r in runs), len(runs))
        if runs:
            summary.trap_candidates_per_campaign = sum(t for t, _ in tested) / len(runs)
            summary.trap_candidates_submitted = sum(s for _, s in tested) / len(runs)
    return summary


def summarize(results: Sequence[CampaignResult]) -> dict[Arm, ArmSummary]:
    arms: tuple[Arm, ...] = ("trap", "control")
    return {arm: summarize_arm(results, arm) for arm in arms if any(r.arm == arm for r in results)}


def markdown(results: Sequence[CampaignResult], summaries: dict[Arm, ArmSummary]) -> str:
    commits = sorted({(r.evotrain_commit[:7], r.evotrain_dirty) for r in results})
    rounds = sorted({(r.rounds, r.workers, r.trap_round) for r in results})
    trap, control = summaries.get("trap"), summaries.get("control")

    def cell(s: ArmSummary | None, name: str) -> str:
        if s is None:
            return "—"
        value = getattr(s, name)
        return value.render() if value is not None else "—"

    rows = [
        ("campaigns (failed)", *(f"{s.campaigns} ({s.failed})" if s else "—" for s in (trap, control))),
        ("promotions", *(str(s.promotions) if s else "—" for s in (trap, control))),
        (
            f"promotion precision (true external effect > +{EPS:g})",
            cell(trap, "promotion_precision"),
            cell(control, "promotion_precision"),
        ),
        (
            "promotion precision (true external effect > 0)",
            cell(trap, "promotion_precision_strict"),
            cell(control, "promotion_precision_strict"),
        ),
        (
            f"harmful promotions (true external effect < −{EPS:g})",
            cell(trap, "promotions_harmful"),
            cell(control, "promotions_harmful"),
        ),
        (
            f"dev-only promotions (true dev > +{EPS:g}, true external ≤ +{EPS:g})",
            cell(trap, "promotions_dev_only"),
            cell(control, "promotions_dev_only"),
        ),
        (
            f"miss rate (truly positive worker changes, > +{EPS:g}, never promoted)",
            cell(trap, "miss_rate"),
            cell(control, "miss_rate"),
        ),
        (
            f"miss rate, clearly positive (≥ +{CLEAR:g})",
            cell(trap, "miss_rate_clear"),
            cell(control, "miss_rate_clear"),
        ),
        (
            "true external gain of the final standing recipe",
            cell(trap, "final_external_gain"),
            cell(control, "final_external_gain"),
        ),
        ("true dev gain of the final standing recipe", cell(trap, "final_dev_gain"), cell(control, "final_dev_gain")),
        (
            "true external gain of the final pick (best external score returned)",
            cell(trap, "final_pick_external_gain"),
            cell(control, "final_pick_external_gain"),
        ),
        ("trap flagged within one round of onset", cell(trap, "flagged_on_time"), "—"),
        ("… and its domain untrusted by the next policy", cell(trap, "untrusted_on_time"), "—"),
        ("any domain flagged decoupled (control: false flag)", cell(trap, "any_flag"), cell(control, "any_flag")),
        ("trap arm: flag before onset or on another domain", cell(trap, "false_flag_in_trap_arm"), "—"),
    ]
    if trap is not None and trap.trap_candidates_per_campaign is not None:
        rows.append(
            (
                "trap candidates from onset on, per campaign (submitted)",
                f"{trap.trap_candidates_per_campaign:.2f} ({trap.trap_candidates_submitted:.2f})",
                "—",
            )
        )
    rows.append(
        (
            "median wall time of a campaign",
            *(f"{s.wall_s_median:.1f} s" if s and s.wall_s_median else "—" for s in (trap, control)),
        )
    )
    lines = ["| measure | trap arm | control arm (no trap) |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines.append("")
    lines.append(
        "evotrain commit(s): "
        + ", ".join(f"{c}{' (dirty tree)' if d else ''}" for c, d in commits)
        + "; rounds × candidates, trap onset: "
        + ", ".join(f"{r} × {w}, round {t}" for r, w, t in rounds)
        + "; intervals 95 %: Wilson for campaign rates, the wider of Wilson and a bootstrap over campaigns for pooled "
        "ratios, a bootstrap over campaigns for means."
    )
    return "\n".join(lines)


# ---- the command line ----------------------------------------------------------------------------------------
def load_results(path: Path) -> list[CampaignResult]:
    if not path.exists():
        return []
    return [CampaignResult.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def jobs_to_run(done: Iterable[CampaignResult], seeds: Iterable[int], arms: Sequence[Arm]) -> list[tuple[int, Arm]]:
    finished = {(r.seed, r.arm) for r in done}
    return [(s, a) for s in seeds for a in arms if (s, a) not in finished]


def pick_gain(r: CampaignResult) -> float | None:
    """The final pick's true external gain over the substrate's recipe. Results written before the field existed
    derive it from their records: the submitted candidate with the best external score (the earliest on a tie,
    in candidate order), its true effect over its round's anchor plus the anchor's own, which is the sum of the
    promotions made before that round."""
    if r.final_pick_true_external_gain is not None:
        return r.final_pick_true_external_gain
    submitted = [c for c in r.candidates if c.external is not None]
    if not submitted:
        return None
    best = max(c.external for c in submitted if c.external is not None)
    pick = next(c for c in submitted if c.external == best)
    return pick.true_external + sum(p.true_external for p in r.promotions if p.round < pick.round)


def compare(files: Sequence[Path]) -> str:
    """Methods against the first file's, per arm, paired by campaign seed: the mean true external gain of the final
    pick, the mean paired difference with a bootstrap 95 % interval over seeds, and the ratio of the means."""
    runs = {f: {(r.seed, r.arm): r for r in load_results(f) if r.error is None} for f in files}
    first = files[0]
    rows = [
        "| method (results file) | arm | seeds | mean | paired diff vs first, mean [95 % bootstrap] | ratio of means |",
        "|---|---|---|---|---|---|",
    ]
    for f in files:
        for arm in ("trap", "control"):
            keys = sorted(k for k in runs[f] if k[1] == arm and k in runs[first])
            if not keys:
                continue
            ours = [pick_gain(runs[f][k]) for k in keys]
            base = [pick_gain(runs[first][k]) for k in keys]
            pairs = [(a, b) for a, b in zip(ours, base, strict=True) if a is not None and b is not None]
            if not pairs:
                continue
            mean = sum(a for a, _ in pairs) / len(pairs)
            base_mean = sum(b for _, b in pairs) / len(pairs)
            diff = mean_interval([a - b for a, b in pairs])
            ratio = f"{base_mean / mean:.2f}× (first / this)" if mean > 0 and f != first else "—"
            label = runs[f][keys[0]].method + f" (`{f.name}`)"
            diff_text = "—" if f == first else f"{diff.mean:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}]"
            rows.append(f"| {label} | {arm} | {len(pairs)} | {mean:+.4f} | {diff_text} | {ratio} |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="campaign seeds first-seed … first-seed+seeds−1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--arms", default="trap,control", help="comma-separated: trap, control")
    parser.add_argument("--jobs", type=int, default=1, choices=(1, 2), help="campaigns at once (at most 2)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=8, help="candidates per round, the anchor included")
    parser.add_argument("--trap-round", type=int, default=3)
    parser.add_argument("--label", default="current", help="names the results file and the campaign folders")
    parser.add_argument(
        "--method",
        default="evotrain",
        choices=("evotrain", "optuna-tpe", "random", "tpe-rules", "guided"),
        help="evotrain (mutator workers, rule meta agent), a search baseline (its worker, meta agent `none`), "
        "tpe-rules (Optuna TPE workers under the rule meta agent) or guided (`--agent guided`: one-axis mutator "
        "probes and Optuna TPE proposals under the rule meta agent)",
    )
    parser.add_argument("--results", type=Path, help="default: benchmarks/loop_decisions_<label>.jsonl")
    parser.add_argument("--work", type=Path, help="where campaigns run (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep each campaign folder after reading it")
    parser.add_argument("--summary-only", action="store_true", help="only recompute the table from the results")
    parser.add_argument("--markdown", type=Path, help="also write the table (Markdown) here")
    parser.add_argument(
        "--compare",
        type=Path,
        nargs="+",
        help="results files: compare their final picks' true external gain with the first's, paired by seed",
    )
    args = parser.parse_args(argv)
    if args.compare:
        missing = [str(f) for f in args.compare if not f.is_file()]
        if missing:
            parser.error(
                f"--compare: no results file {', '.join(missing)} (results are benchmarks/loop_decisions_<label>.jsonl)"
            )
        print(compare(args.compare))
        return 0
    arms: list[Arm] = []
    for a in args.arms.split(","):
        if a not in ("trap", "control"):
            parser.error(f"--arms: unknown arm {a!r}")
        arms.append("trap" if a == "trap" else "control")
    results_path = args.results or RESULTS / f"loop_decisions_{args.label}.jsonl"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    done = load_results(results_path)
    todo = [] if args.summary_only else jobs_to_run(done, range(args.first_seed, args.first_seed + args.seeds), arms)
    commit, dirty, source = evotrain_version()
    console.print(
        f"evotrain from {source} at {commit[:10]}{' (dirty)' if dirty else ''}; {len(done)} campaigns on file, "
        f"{len(todo)} to run → {results_path}"
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="loop-decisions-"))
    work.mkdir(parents=True, exist_ok=True)
    if todo:
        common = dict(
            label=args.label,
            trap_round=args.trap_round,
            rounds=args.rounds,
            workers=args.workers,
            work=work,
            keep=args.keep,
            method=args.method,
        )
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with (
            Progress(*columns, console=console) as progress,
            concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs) as pool,
        ):
            task = progress.add_task("campaigns", total=len(todo))
            futures = {pool.submit(_run_job, {**common, "seed": s, "arm": a}): (s, a) for s, a in todo}
            for future in concurrent.futures.as_completed(futures):
                result = CampaignResult.model_validate_json(future.result())
                with results_path.open("a") as fh:
                    fh.write(result.model_dump_json() + "\n")
                done.append(result)
                trap_note = ""
                if result.arm == "trap" and result.error is None:
                    trap_note = " flagged on time" if flagged_on_time(result) else " not flagged on time"
                elif result.error is None and any_flag(result):
                    trap_note = " FALSE FLAG"
                progress.console.print(
                    f"seed {result.seed:4d} {result.arm:7s} {result.wall_s:5.1f}s  "
                    + (
                        f"[red]{result.error}[/red]"
                        if result.error
                        else f"promotions {len(result.promotions)} "
                        f"(true ext {', '.join(f'{p.true_external:+.3f}' for p in result.promotions) or '—'})"
                        f"{trap_note}"
                    )
                )
                progress.advance(task)
    if args.work is None and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    summaries = summarize(done)
    table = markdown(done, summaries)
    print(table)
    if args.markdown is not None:
        args.markdown.write_text(
            f"Command: `{' '.join(['benchmarks/loop_decisions.py', *(argv or sys.argv[1:])])}`; "
            f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}\n\n{table}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
