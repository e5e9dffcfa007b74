"""Ad-hoc recipe exploration on the puzzles substrate: named override sets over a few seeds, raw runs kept.

    python benchmarks/puzzles_explore.py --log benchmarks/puzzles_explore_runs.jsonl \
        --job "constant=train.schedule=constant" --job "rank8=lora.rank=8,lora.alpha=16.0" --seeds 0,1

Each --job is NAME=KEY=VALUE[,KEY=VALUE...] (overrides of recipe.toml, as in puzzles_trial.py; NAME=base for
none). Trials run exactly as evotrain runs them (benchmarks/puzzles_trial.py), `--parallel` at a time with one
thread each. Every finished trial is appended to --log (one JSON line: name, seed, substrate fingerprint, load
average, the trial's result); a (name, seed, fingerprint) already in the log is not rerun. Prints one line a trial
and a summary (mean ± sd of dev / external / control and trial wall time, per job).
"""

from __future__ import annotations

import argparse
import json
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

from puzzles_trial import trial

from evotrain.puzzles.build import build_substrate


def parse_job(text: str) -> tuple[str, list[str]]:
    name, _, rest = text.partition("=")
    overrides = [] if rest in ("", "base") else rest.split(",")
    return name, overrides


def load_done(log: Path, fingerprint: str) -> dict[tuple[str, int], dict[str, Any]]:
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            row = json.loads(line)
            if row.get("fingerprint") == fingerprint:
                done[(row["name"], row["seed"])] = row["result"]
    return done


def summary(name: str, runs: list[dict[str, Any]]) -> str:
    def ms(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f}±{sd:.3f}"

    dev = [r["dev"]["overall"] for r in runs]
    ext = [r["external"]["score"] for r in runs]
    ctl = [r["control"]["score"] for r in runs]
    eq_dev = [r["dev"]["domains"]["equations"] for r in runs]
    eq_ext = [r["external"]["domains"]["equations"] for r in runs]
    wall = statistics.median(r["trial_s"] for r in runs)
    return (
        f"{name:28s} n={len(runs)} dev {ms(dev)} ext {ms(ext)} ctl {ms(ctl)} | eq dev {ms(eq_dev)} "
        f"eq ext {ms(eq_ext)} | wall {wall:.0f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--job", action="append", default=[])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--log", type=Path, default=Path("benchmarks/puzzles_explore_runs.jsonl"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tmp = Path(tempfile.mkdtemp(prefix="puzzles-explore-"))
    built = build_substrate(tmp / "substrate", answers_path=tmp / "answers.jsonl")
    fingerprint = built.fingerprint[:12]
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [(*parse_job(j), s) for j in args.job for s in seeds]
    done = load_done(args.log, fingerprint)
    lock = threading.Lock()

    def one(index: int) -> tuple[str, dict[str, Any]]:
        name, overrides, seed = jobs[index]
        if (name, seed) in done:
            return name, done[(name, seed)]
        load = os.getloadavg()[0]
        r = trial(built.path, tmp / f"{index:03d}", seed, overrides, built.answers_path)
        row = {"name": name, "seed": seed, "fingerprint": fingerprint, "load_before": load, "result": r}
        with lock, args.log.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(
            f"[{time.strftime('%H:%M:%S')}] {name} seed {seed}: dev {r['dev']['overall']:.3f} "
            f"ext {r['external']['score']:.3f} ctl {r['control']['score']:.3f} "
            f"(trial {r['trial_s']:.0f}s, train {r['train_s']:.0f}s)",
            flush=True,
        )
        return name, r

    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(one, range(len(jobs))))
    print(f"substrate {fingerprint}")
    for name in dict.fromkeys(n for n, _, _ in jobs):
        print(summary(name, [r for n, r in results if n == name]))


if __name__ == "__main__":
    main()
