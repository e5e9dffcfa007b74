"""evotrain's loop against what a user would run instead: Optuna TPE and random search, same trials, same board.

    python benchmarks/search_baselines.py [--seeds 5] [--methods evotrain,optuna-tpe,random] [--out DIR]
        [--rounds 4] [--workers 8] [--parallel 2] [--fresh METHOD] [--report-only]

One puzzles substrate (the embedded default, built once with seed 0) and, per campaign seed 1..S, one evotrain
campaign per method at the full demo's budget (rounds × workers trials, anchors counted, `--parallel` at a time):
  evotrain    the offline mutator workers and the rule meta agent (what `evotrain demo` runs);
  evotrain-guided  `--agent guided`: half the worker slots one-axis mutator probes, half Optuna TPE proposals,
              under the rule meta agent;
  optuna-tpe  `--agent optuna-tpe --meta none`: multivariate TPE over the whole declared space, policy frozen;
  random      `--agent random --meta none`: Optuna's RandomSampler over the same space, policy frozen.
Every method gets its own leaderboard server (a real one, on 127.0.0.1) on the same hidden labels, with the same
submission budget, and submits on the same plan (the policy's two best by dev plus the anchor, every round).
The final pick of a method is its submission with the best public score (`campaign.final_pick`, manifests only);
after the campaign the benchmark finalizes that board and reads the private scores, which no method saw.

Resumable: each campaign is an evotrain campaign under DIR/<method>-s<seed>/ (re-running resumes it), and a
finished one has a row in benchmarks/search_baselines_results.jsonl, which is skipped. `--fresh METHOD` discards
a method's campaigns and rows (after a change to the loop). The report (a section of docs/benchmarks.md, written
to DIR/search_baselines.md, and docs/img/search_baselines.svg) is rebuilt from the JSONL on every run.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from evotrain.campaign.final_pick import final_pick
from evotrain.campaign.init import init_campaign
from evotrain.campaign.loop import Campaign
from evotrain.campaign.store import CampaignStore
from evotrain.demo import DEMO_BUDGET, external_target, serve_leaderboard
from evotrain.fileio import append_jsonl, atomic_write_text, read_jsonl
from evotrain.leaderboard.store import LeaderboardStore
from evotrain.records.events import CandidatePlan
from evotrain.records.evidence import Evidence
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import Manifest
from evotrain.records.policy import Policy
from evotrain.substrate.spec import SPEC_FILENAME
from evotrain.workers.select import AgentChoice, build_meta_agent, build_worker

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "search_baselines_results.jsonl"
PLOT = ROOT / "docs" / "img" / "search_baselines.svg"
METHODS: dict[str, AgentChoice] = {
    "evotrain": AgentChoice(agent="mutator", meta="rules"),
    "evotrain-guided": AgentChoice(agent="guided", meta="rules"),
    "optuna-tpe": AgentChoice(agent="optuna-tpe", meta="none"),
    "random": AgentChoice(agent="random", meta="none"),
}
SUBSTRATE_SEED = 0
BOOTSTRAP_RESAMPLES = 10_000
console = Console()


@dataclass(frozen=True)
class Budget:
    rounds: int
    workers: int
    parallel: int


# ---- running one campaign ------------------------------------------------------------------------------------
def ensure_substrate(out: Path) -> tuple[Path, Path]:
    from evotrain.puzzles.build import build_substrate  # torch is imported only when a substrate must be built

    substrate, answers = out / "substrate", out / "hidden" / "external_answers.jsonl"
    if not ((substrate / SPEC_FILENAME).exists() and answers.exists()):
        if substrate.exists():  # a build interrupted part-way
            shutil.rmtree(substrate)
        with console.status("building the puzzles substrate (seed 0)"):
            build_substrate(substrate, seed=SUBSTRATE_SEED, answers_path=answers)
    return substrate, answers


class TrialCounter:
    """A RunObserver that moves one progress bar a trial at a time."""

    def __init__(self, progress: Progress, task: Any) -> None:
        self.progress, self.task = progress, task

    def round_started(self, round_no: int, plans: list[CandidatePlan]) -> None:
        self.progress.update(self.task, description=f"round {round_no}")

    def candidate_stage(self, round_no: int, name: str, stage: str) -> None:
        pass

    def candidate_finished(self, round_no: int, manifest: Manifest) -> None:
        self.progress.advance(self.task)

    def round_closed(self, round_no: int, evidence: Evidence, next_policy: Policy) -> None:
        pass


def run_campaign(
    out: Path, substrate: Path, answers: Path, method: str, seed: int, budget: Budget, progress: Progress
) -> dict[str, Any]:
    folder = out / f"{method}-s{seed}"
    campaign_dir, db = folder / "campaign", folder / "leaderboard.sqlite"
    if not (campaign_dir / "campaign.toml").exists():
        if campaign_dir.exists():
            shutil.rmtree(campaign_dir)
        folder.mkdir(parents=True, exist_ok=True)
        init_campaign(campaign_dir, substrate, external=external_target(), seed=seed)
    task = progress.add_task(f"{method} seed {seed}", total=budget.rounds * budget.workers)
    choice = METHODS[method]
    started = time.monotonic()
    try:
        with serve_leaderboard(answers, db, f"{method}-s{seed}", budget=DEMO_BUDGET):
            campaign = Campaign(
                campaign_dir,
                worker=build_worker(choice),
                meta_agent=build_meta_agent(choice),
                observer=TrialCounter(progress, task),
            )
            campaign.run(rounds=budget.rounds, workers=budget.workers, parallel=budget.parallel)
    finally:  # a campaign resumed after a kill adds up the wall time of each of its runs
        wall_s = _add_wall_s(folder, time.monotonic() - started)
    progress.remove_task(task)
    return summarize(campaign_dir, db, method=method, seed=seed, budget=budget, wall_s=wall_s)


def _add_wall_s(folder: Path, seconds: float) -> float:
    path = folder / "wall_s.json"
    total = (float(json.loads(path.read_text())) if path.exists() else 0.0) + seconds
    atomic_write_text(path, json.dumps(total))
    return total


# ---- reading a finished campaign -----------------------------------------------------------------------------
def private_scores(db: Path, campaign: str) -> dict[str, float]:
    """Finalize the board (no campaign submits after this) and read every submission's private score."""
    store = LeaderboardStore(db)
    try:
        store.finalize()
        return {row.id: row.private_score for row in store.submissions(campaign) if row.private_score is not None}
    finally:
        store.close()


def summarize(campaign_dir: Path, db: Path, *, method: str, seed: int, budget: Budget, wall_s: float) -> dict[str, Any]:
    paths = CampaignPaths(campaign_dir)
    manifests = CampaignStore(paths).manifests(up_to_round=budget.rounds)
    pick = final_pick(manifests)  # public scores only: the board is finalized below, after the pick
    private = private_scores(db, f"{method}-s{seed}")
    anchors = [m for m in manifests if m.role == "anchor"]
    first_anchor = anchors[0]
    assert first_anchor.external is not None and first_anchor.external.submission_id is not None
    trials = []
    for m in manifests:
        sid = m.external.submission_id if m.external else None
        trials.append(
            {
                "candidate": m.candidate_id,
                "role": m.role,
                "dev": m.selected.objective if m.selected else None,
                "public": m.external.score if m.external else None,
                "private": private.get(sid) if sid else None,
            }
        )
    assert pick is not None and pick.submission_id is not None
    return {
        "method": method,
        "seed": seed,
        "rounds": budget.rounds,
        "workers": budget.workers,
        "parallel": budget.parallel,
        "commit": _commit(),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(wall_s, 1),
        "substrate_private": private[first_anchor.external.submission_id],
        "substrate_public": first_anchor.external.score,
        "substrate_dev": first_anchor.selected.objective if first_anchor.selected else None,
        "pick": pick.candidate_id,
        "pick_public": pick.external,
        "pick_private": private[pick.submission_id],
        "pick_dev": pick.dev_objective,
        "best_dev": max((t["dev"] for t in trials if t["dev"] is not None), default=None),
        "anchor_dev": [m.selected.objective for m in anchors if m.selected],
        "anchor_private": [
            private[m.external.submission_id] for m in anchors if m.external and m.external.submission_id
        ],
        "submissions": sum(1 for t in trials if t["public"] is not None),
        "trials": trials,
    }


@functools.cache
def _commit() -> str:
    """The commit whose code this process runs: read once, before the first campaign (the process keeps the modules
    it imported at start, whatever the tree holds later), with `+dirty` when `src` had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


# ---- the report ----------------------------------------------------------------------------------------------
def gain(row: dict[str, Any]) -> float:
    return float(row["pick_private"] - row["substrate_private"])


def bootstrap_ci(values: list[float], seed: int = 0) -> tuple[float, float]:
    if len(values) < 2 or len(set(values)) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    result = scipy.stats.bootstrap(
        (np.asarray(values),), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile", random_state=seed
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def decoupled(row: dict[str, Any], dev_sd: float, private_sd: float) -> bool:
    """The pick gained on dev beyond 2 anchor sd's while its private external gain stayed within 2 sd's."""
    dev_gain = (row["pick_dev"] or 0.0) - statistics.mean(row["anchor_dev"])
    return dev_gain > 2 * dev_sd and gain(row) <= 2 * private_sd


def pooled_sd(groups: list[list[float]]) -> float:
    """The within-campaign sd of the anchors, pooled over campaigns (each campaign's anchors share a recipe)."""
    num = sum((len(g) - 1) * statistics.variance(g) for g in groups if len(g) > 1)
    den = sum(len(g) - 1 for g in groups if len(g) > 1)
    return (num / den) ** 0.5 if den else 0.0


def report(rows: list[dict[str, Any]], methods: list[str]) -> str:
    by = {(r["method"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    # Seed noise from anchors that share a recipe: a search baseline's standing recipe never changes, while an
    # evotrain campaign's anchors follow its promotions (pooled with them, the sd would hold the promotions' gains).
    fixed = [r for r in rows if not r["method"].startswith("evotrain")]
    noise_from = "the search baselines' anchors, which all run the substrate's recipe"
    if not fixed:
        fixed, noise_from = rows, "evotrain's anchors, which follow its promotions: an upper bound"
    dev_sd = pooled_sd([r["anchor_dev"] for r in fixed])
    private_sd = pooled_sd([r["anchor_private"] for r in fixed])
    budget = rows[0]
    lines = [
        f"## Search baselines: evotrain vs Optuna TPE vs random search ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        "`python benchmarks/search_baselines.py --seeds 5` (raw rows: benchmarks/search_baselines_results.jsonl). "
        f"Embedded puzzles substrate (seed {SUBSTRATE_SEED}), {budget['rounds']} rounds × {budget['workers']} "
        f"trials (anchors counted), {budget['parallel']} at a time, campaign seeds {', '.join(map(str, seeds))}; "
        "the same leaderboard labels, submission budget and plan for every method. The final pick is each "
        "method's best *public* submission; the figure is its *private* score, read after the board is "
        "finalized. Gain = pick private − the first anchor's private (the substrate's recipe, same campaign).",
        "",
        "| method | seeds | private gain, mean ± sd | gain > 0 | paired diff vs evotrain, mean [95 % bootstrap] "
        "| best dev, mean | decoupled picks | wall, min/campaign |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method in methods:
        mine = [by[(method, s)] for s in seeds if (method, s) in by]
        if not mine:
            continue
        gains = [gain(r) for r in mine]
        sd = statistics.stdev(gains) if len(gains) > 1 else 0.0
        paired = [
            gain(by[(method, s)]) - gain(by[("evotrain", s)])
            for s in seeds
            if {(method, s), ("evotrain", s)} <= by.keys()
        ]
        if method == "evotrain" or not paired:
            diff = "—"
        else:
            low, high = bootstrap_ci(paired)
            diff = f"{statistics.mean(paired):+.3f} [{low:+.3f}, {high:+.3f}] (n={len(paired)})"
        best_dev = statistics.mean(r["best_dev"] for r in mine)
        n_dec = sum(decoupled(r, dev_sd, private_sd) for r in mine)
        wall = statistics.mean(r["wall_s"] for r in mine) / 60
        positive = sum(g > 0 for g in gains)
        lines.append(
            f"| {method} | {len(mine)} | {statistics.mean(gains):+.3f} ± {sd:.3f} | {positive}/{len(mine)} "
            f"| {diff} | {best_dev:.3f} | {n_dec}/{len(mine)} | {wall:.1f} |"
        )
    lines += _against_baselines(by, seeds, methods)
    lines += [
        "",
        "Per seed (private gain of the pick): "
        + "; ".join(
            f"seed {s}: " + ", ".join(f"{m} {gain(by[(m, s)]):+.3f}" for m in methods if (m, s) in by) for s in seeds
        )
        + ".",
        f"Decoupled pick: dev objective above the campaign's mean anchor by more than 2 × {dev_sd:.3f} (the pooled "
        f"within-campaign dev sd of {noise_from}) while the private gain stays within 2 × {private_sd:.3f} (their "
        "private sd).",
        "",
        f"![best private external so far vs trials](img/{PLOT.name})",
    ]
    return "\n".join(lines) + "\n"


def _against_baselines(by: dict[tuple[str, int], dict[str, Any]], seeds: list[int], methods: list[str]) -> list[str]:
    """Each evotrain method against each search baseline on the seeds both ran: the ratio of mean gains and the
    paired per-seed difference with its bootstrap interval."""
    ours = [m for m in methods if m.startswith("evotrain")]
    baselines = [m for m in methods if not m.startswith("evotrain")]
    out = [
        "",
        "| evotrain method | against | seeds | mean gain, this / baseline (ratio) "
        "| paired diff, mean [95 % bootstrap] |",
        "|---|---|---|---|---|",
    ]
    for method in ours:
        for baseline in baselines:
            shared = [s for s in seeds if {(method, s), (baseline, s)} <= by.keys()]
            if not shared:
                continue
            gains = [(gain(by[(method, s)]), gain(by[(baseline, s)])) for s in shared]
            mine, theirs = statistics.mean(a for a, _ in gains), statistics.mean(b for _, b in gains)
            diffs = [a - b for a, b in gains]
            low, high = bootstrap_ci(diffs)
            ratio = mine / theirs if theirs > 0 else float("nan")
            out.append(
                f"| {method} | {baseline} | {len(shared)} | {mine:+.3f} / {theirs:+.3f} ({ratio:.2f}×) "
                f"| {statistics.mean(diffs):+.3f} [{low:+.3f}, {high:+.3f}] |"
            )
    return out if len(out) > 3 else []


def plot(rows: list[dict[str, Any]], methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    colors = {"evotrain": "tab:blue", "evotrain-guided": "tab:green", "optuna-tpe": "tab:orange", "random": "tab:gray"}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        oracle = np.array([_curve(r, oracle=True) for r in mine])
        held = np.array([_curve(r, oracle=False) for r in mine])
        x = np.arange(1, oracle.shape[1] + 1)
        for ax, curves in ((axes[0], oracle), (axes[1], held)):
            mean = np.nanmean(curves, axis=0)
            ax.plot(x, mean, color=colors.get(method), label=f"{method} (n={len(mine)})")
            ax.fill_between(
                x, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0), color=colors.get(method), alpha=0.15
            )
    axes[0].set_title("best private gain among submissions so far")
    axes[1].set_title("private gain of the pick so far (best public)")
    for ax in axes:
        ax.set_xlabel("trials (anchors counted)")
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("private external − substrate")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _curve(row: dict[str, Any], *, oracle: bool) -> list[float]:
    base = row["substrate_private"]
    best_private, best_public, held = float("nan"), float("-inf"), float("nan")
    out = []
    for t in row["trials"]:
        if t["private"] is not None:
            if np.isnan(best_private) or t["private"] > best_private:
                best_private = t["private"]
            if t["public"] > best_public:
                best_public, held = t["public"], t["private"]
        out.append((best_private if oracle else held) - base)
    return out


def write_report(rows: list[dict[str, Any]], methods: list[str], out: Path, *, docs: bool) -> None:
    if not rows:
        return
    text = report(rows, methods)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search_baselines.md").write_text(text)
    plot(rows, methods, PLOT if docs else out / PLOT.name)
    console.print(text)
    if not docs:
        return
    benchmarks_md = ROOT / "docs" / "benchmarks.md"
    current = benchmarks_md.read_text()
    marker = "## Search baselines:"
    if marker in current:  # replace the section (up to the next section) with the new one
        head, rest = current.split(marker, 1)
        tail = rest.split("\n## ", 1)
        current = head + text + ("\n## " + tail[1] if len(tail) > 1 else "")
    else:
        current = current.rstrip() + "\n\n" + text
    benchmarks_md.write_text(current)


# ---- main ----------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="campaign seeds 1..S")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, from " + ", ".join(METHODS))
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "search_baselines")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--fresh", action="append", default=[], help="discard this method's campaigns and rows")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from the JSONL")
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="raw rows (JSONL); docs/ are written only for the default"
    )
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods + args.fresh) - METHODS.keys())
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    budget = Budget(args.rounds, args.workers, args.parallel)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results: Path = args.results
    rows = [r for r in read_jsonl(results) if r["method"] not in args.fresh]
    if args.fresh:
        for method in args.fresh:
            for folder in args.out.glob(f"{method}-s*"):
                shutil.rmtree(folder)
        atomic_write_text(results, "".join(json.dumps(r) + "\n" for r in rows))
    done = {
        (r["method"], r["seed"])
        for r in rows
        if (r["rounds"], r["workers"], r["parallel"]) == (budget.rounds, budget.workers, budget.parallel)
    }
    todo = [(m, s) for s in range(1, args.seeds + 1) for m in methods if (m, s) not in done]
    if todo and not args.report_only:
        console.print(f"evotrain at {_commit()} (each row records it)")
        substrate, answers = ensure_substrate(args.out)
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=console) as progress:
            overall = progress.add_task("campaigns", total=len(todo))
            for method, seed in todo:
                row = run_campaign(args.out, substrate, answers, method, seed, budget, progress)
                append_jsonl(results, row)
                rows.append(row)
                progress.advance(overall)
                console.print(f"{method} seed {seed}: pick {row['pick']} private gain {gain(row):+.3f}")
    write_report([r for r in rows if r["method"] in methods], methods, args.out, docs=results == RESULTS)


if __name__ == "__main__":
    sys.exit(main())
