"""Measurements of the puzzles substrate for docs/puzzles.md: base recipe, knob effects, the proxy trap.

    python benchmarks/puzzles_baseline.py [--seeds 5] [--knob-seeds 2] [--trap-seeds 5] [--parallel 2] [--out DIR]

Builds the tiny-profile substrate (seed 0), then runs trials exactly as evotrain does (benchmarks/puzzles_trial.py),
`--parallel` at a time with one thread each (as `evotrain demo` runs candidates), and writes
DIR/puzzles_baseline.json and the Markdown tables that docs/puzzles.md quotes (DIR/puzzles_baseline.md).
Every figure is the final checkpoint's (no selection on dev). The noise band of a knob's effect is
2 * sd(base) * sqrt(1/n_knob + 1/n_base), with sd over the base recipe's seeds; the trap and the probes also get a
Welch t interval and p-value (scipy) per split, for equations and overall.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scipy.stats
from puzzles_trial import trial

from evotrain.puzzles.build import build_substrate
from evotrain.puzzles.generators import FAMILIES

# Every lever is ONE move the offline mutator can make from the default recipe (the substrate's "first cut"; see
# docs/puzzles.md for what it gets wrong): a choice set to another value, a float moved by a fraction of its declared
# range, an int knob doubled, a data-mix weight multiplied or divided by 1.5-2.5.
LEVERS = [
    "train.schedule=constant",
    "train.warmup_steps=0",
    "train.grad_clip=0.5",
    "lora.rank=16",
]
# The proxy trap: the weak dev domain (equations) upweighted, one data-mix move (x2, inside the declared 0-4).
TRAPS: dict[str, list[str]] = {
    "proxy trap: equations 2 -> 4 (data mix)": ["data.mix.equations=4.0"],
}
KNOBS: dict[str, list[str]] = {
    "schedule constant (optimization)": ["train.schedule=constant"],
    "warmup 0 (optimization)": ["train.warmup_steps=0"],
    "grad_clip 0.5 (optimization)": ["train.grad_clip=0.5"],
    "LoRA rank 16 (capacity)": ["lora.rank=16"],
    # The move that transfers once dev is distrusted: the over-represented equations brought back to the others.
    "equations 2 -> 1 (data mix)": ["data.mix.equations=1.0"],
    "the four levers together": LEVERS,
    "the four levers + equations 2 -> 1": [*LEVERS, "data.mix.equations=1.0"],
    "the four levers + equations 2 -> 4": [*LEVERS, "data.mix.equations=4.0"],
}
PROBES = ("equations 2 -> 1 (data mix)", "the four levers + equations 2 -> 4")  # also shown per domain


def _scores(r: dict[str, Any], split: str) -> dict[str, float]:
    if split == "dev":
        return {"all": r["dev"]["overall"], **r["dev"]["domains"]}
    return {"all": r[split]["score"], **r[split]["domains"]}


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def run_all(
    substrate: Path,
    answers: Path,
    jobs: list[tuple[str, int, list[str]]],
    parallel: int,
    tmp: Path,
    log: Path,
) -> list[tuple[str, dict[str, Any]]]:
    """Run the jobs; finished ones are appended to ``log`` (JSONL) and not run again on a rerun."""
    done = {}
    if log.exists():
        for line in log.read_text().splitlines():
            row = json.loads(line)
            done[(row["name"], row["seed"])] = row["result"]
    lock = threading.Lock()

    def one(job: tuple[str, int, list[str]]) -> tuple[str, dict[str, Any]]:
        name, seed, overrides = job
        if (name, seed) in done:
            return name, done[(name, seed)]
        work = tmp / f"{jobs.index(job):03d}-{seed}"
        start = time.time()
        r = trial(substrate, work, seed, overrides, answers)
        with lock, log.open("a") as fh:
            fh.write(json.dumps({"name": name, "seed": seed, "result": r}) + "\n")
        print(
            f"[{time.strftime('%H:%M:%S')}] {name} seed {seed}: dev {r['dev']['overall']:.3f} "
            f"ext {r['external']['score']:.3f} ctl {r['control']['score']:.3f} ({time.time() - start:.0f}s)",
            flush=True,
        )
        return name, r

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(one, jobs))


def table_base(results: list[dict[str, Any]]) -> str:
    rows = ["| family | dev | external (shifted) | control (unshifted) |", "|---|---|---|---|"]
    for fam in ["all", *FAMILIES]:
        cells = []
        for split in ("dev", "external", "control"):
            m, sd = _mean_sd([_scores(r, split)[fam] for r in results])
            cells.append(f"{m:.3f} ± {sd:.3f}")
        rows.append(f"| {fam} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def table_knobs(base: list[dict[str, Any]], knobs: dict[str, list[dict[str, Any]]]) -> str:
    rows = [
        "| knob (category) | Δ dev | Δ external | Δ control | noise band (±) dev / ext / ctl | n |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in knobs.items():
        deltas, bands = [], []
        for split in ("dev", "external", "control"):
            b = [_scores(r, split)["all"] for r in base]
            k = [_scores(r, split)["all"] for r in runs]
            deltas.append(statistics.mean(k) - statistics.mean(b))
            bands.append(2 * _mean_sd(b)[1] * (1 / len(k) + 1 / len(b)) ** 0.5)
        flag = ["**" if abs(d) > bd else "" for d, bd in zip(deltas, bands, strict=True)]
        rows.append(
            f"| {name} | "
            + " | ".join(f"{f}{d:+.3f}{f}" for d, f in zip(deltas, flag, strict=True))
            + f" | {bands[0]:.3f} / {bands[1]:.3f} / {bands[2]:.3f} | {len(runs)} |"
        )
    return "\n".join(rows)


def table_trap(base: list[dict[str, Any]], trap: list[dict[str, Any]]) -> str:
    rows = [
        "| accuracy | base recipe | intervention | Δ | noise band (±) | 95 % CI of Δ (Welch) | p |",
        "|---|---|---|---|---|---|---|",
    ]
    splits = (("dev", "dev"), ("external", "external (shifted)"), ("control", "control (unshifted)"))
    for (split, label), family in itertools.product(splits, ("equations", "all")):
        b = [_scores(r, split)[family] for r in base]
        t = [_scores(r, split)[family] for r in trap]
        label = f"{family}, {label}"
        band = 2 * _mean_sd(b)[1] * (1 / len(t) + 1 / len(b)) ** 0.5
        test = scipy.stats.ttest_ind(t, b, equal_var=False)
        ci = test.confidence_interval(0.95)
        interval = f"[{ci.low:+.3f}, {ci.high:+.3f}] | {test.pvalue:.3f}"
        if not math.isfinite(test.pvalue):
            interval = "— | — (no variance in either arm)"
        rows.append(
            f"| {label} | {statistics.mean(b):.3f} | {statistics.mean(t):.3f} | "
            f"{statistics.mean(t) - statistics.mean(b):+.3f} | {band:.3f} | {interval} |"
        )
    return "\n".join(rows)


def plot_trap(base: list[dict[str, Any]], trap: list[dict[str, Any]], name: str, out: Path) -> None:
    """Equations accuracy per seed, base recipe against the trap, on dev, control and external (an SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = (("dev", "dev"), ("control", "control (unshifted)"), ("external", "external (shifted)"))
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2), sharey=True)
    for ax, (split, label) in zip(axes, splits, strict=True):
        for x, (runs, colour) in enumerate(((base, "#777777"), (trap, "#d62728"))):
            ys = [_scores(r, split)["equations"] for r in runs]
            ax.scatter([x + 0.06 * (i - len(ys) / 2) for i in range(len(ys))], ys, color=colour, s=18, zorder=3)
            ax.hlines(statistics.mean(ys), x - 0.25, x + 0.25, color=colour, linewidth=2)
        ax.set_xticks([0, 1], ["base recipe", "intervention"])
        ax.set_xlim(-0.6, 1.6)
        ax.set_title(label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("equations accuracy (final checkpoint)")
    fig.suptitle(f"{name}: {len(base)} vs {len(trap)} seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(out)  # the format follows the suffix
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--knob-seeds", type=int, default=2)
    parser.add_argument("--trap-seeds", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--knobs", default=",".join(KNOBS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tmp = Path(tempfile.mkdtemp(prefix="puzzles-bench-"))
    # The splits and the base checkpoint are deterministic: a rebuild gives the same substrate (fingerprint).
    built = build_substrate(tmp / "substrate", answers_path=tmp / "answers.jsonl", progress=print)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / f"puzzles_runs-{built.fingerprint[:12]}.jsonl"

    jobs = [("base", s, []) for s in range(args.seeds)]
    # Every arm runs on the base recipe's seeds (0, 1, ...), so an effect is a paired difference per seed.
    jobs += [(name, s, overrides) for name, overrides in TRAPS.items() for s in range(args.trap_seeds)]
    chosen = [k for k in args.knobs.split(",") if k]
    jobs += [(k, s, KNOBS[k]) for k in chosen for s in range(args.knob_seeds)]
    load_before = os.getloadavg()
    done = run_all(built.path, built.answers_path, jobs, args.parallel, tmp, log)
    base = [r for n, r in done if n == "base"]
    knobs = {k: [r for n, r in done if n == k] for k in chosen}
    traps = {name: [r for n, r in done if n == name] for name in TRAPS}

    walls = [r["trial_s"] for r in base]
    text = "\n\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores, {args.parallel} trials at a time "
            f"with 1 thread each; 1-min load average {load_before[0]:.1f} before and {os.getloadavg()[0]:.1f} after "
            "the runs (other jobs may share the machine). "
            f"Substrate fingerprint {built.fingerprint[:12]}.",
            f"**Base recipe, {len(base)} seeds (mean ± sd, final checkpoint):**\n\n" + table_base(base),
            f"**Trial wall time** (prepare + train + evaluate every checkpoint on dev), base recipe: median "
            f"{statistics.median(walls):.0f} s (min {min(walls):.0f}, max {max(walls):.0f}); train step alone: median "
            f"{statistics.median(r['train_s'] for r in base):.0f} s.",
            "**Knob effects on overall accuracy** (bold: outside the noise band):\n\n" + table_knobs(base, knobs),
            *(
                f"**{name}** (`{' '.join(TRAPS[name])}`), {len(runs)} seeds:\n\n" + table_trap(base, runs)
                for name, runs in traps.items()
            ),
            *(
                f"**{name}**, the follow-up probe (`{' '.join(KNOBS[name])}`), {len(knobs[name])} seeds:\n\n"
                + table_trap(base, knobs[name])
                for name in PROBES
                if knobs.get(name)
            ),
        ]
    )
    (args.out / "puzzles_baseline.md").write_text(text + "\n")
    for name, runs in traps.items():
        if base and runs:
            plot_trap(base, runs, name, args.out / "puzzles_trap.svg")
    (args.out / "puzzles_baseline.json").write_text(
        json.dumps({"fingerprint": built.fingerprint, "runs": [{"name": n, **r} for n, r in done]}, indent=1) + "\n"
    )
    print(text)


if __name__ == "__main__":
    main()
