"""Run one trial of a puzzles substrate by hand, exactly as evotrain runs it (same commands, same order).

    python benchmarks/puzzles_trial.py SUBSTRATE WORK [--seed N] [--set train.lr=0.001 ...] [--answers FILE]

Copies the substrate's editable files into WORK/sandbox (the rest is symlinked), applies the --set overrides
to recipe.toml, runs prepare, train, evaluate_all (every checkpoint) and, with --answers, predict + score on the
final checkpoint. Prints one JSON line: wall times, per-checkpoint dev scores, external/control scores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import tomlkit

from evotrain.puzzles.score import load_answers, score

EDITABLE = ("recipe.toml", "train.py", "pipeline")


def make_sandbox(substrate: Path, sandbox: Path, overrides: list[str]) -> None:
    sandbox.mkdir(parents=True)
    for entry in substrate.iterdir():
        target = sandbox / entry.name
        if entry.name in EDITABLE:
            (shutil.copytree if entry.is_dir() else shutil.copyfile)(entry, target)
        else:
            target.symlink_to(entry.resolve())
    recipe = tomlkit.parse((sandbox / "recipe.toml").read_text())
    for item in overrides:
        key, value = item.split("=", 1)
        *parents, last = key.split(".")
        table: Any = recipe
        for p in parents:
            table = table[p]
        try:
            table[last] = json.loads(value)  # numbers, true/false, lists, tables
        except json.JSONDecodeError:
            table[last] = value  # a bare string such as full or trace
    (sandbox / "recipe.toml").write_text(tomlkit.dumps(recipe))


def run(cmd: list[str], cwd: Path, log: Path, cpu: dict[str, float] | None = None, name: str = "") -> float:
    """Run one command; returns its wall time and adds its CPU time (user + system) to ``cpu[name]``.

    CPU time does not grow when other jobs share the machine, wall time does: both are recorded.
    """
    start = time.time()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with log.open("a") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    if cpu is not None:
        cpu[name] = cpu.get(name, 0.0) + usage.ru_utime + usage.ru_stime
    return time.time() - start


def trial(substrate: Path, work: Path, seed: int, overrides: list[str], answers: Path | None) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    sandbox = work / "sandbox"
    make_sandbox(substrate, sandbox, overrides)
    py, log = sys.executable, work / "log.txt"
    cpu: dict[str, float] = {}
    t0 = time.time()
    run(
        [
            py,
            "pipeline/build_data.py",
            "--recipe",
            "recipe.toml",
            "--out",
            str(work / "train.jsonl"),
            "--seed",
            str(seed),
        ],
        sandbox,
        log,
        cpu,
        "prepare",
    )
    train_s = run(
        [
            py,
            "train.py",
            "--recipe",
            "recipe.toml",
            "--data",
            str(work / "train.jsonl"),
            "--checkpoints",
            str(work / "checkpoints"),
            "--seed",
            str(seed),
            "--summary",
            str(work / "train_summary.json"),
        ],
        sandbox,
        log,
        cpu,
        "train",
    )
    checkpoints: dict[str, dict[str, Any]] = {}
    evaluate_all = [py, "eval/evaluate.py", "--checkpoints", str(work / "checkpoints"), "--split", "dev"]
    run([*evaluate_all, "--out", str(work / "eval")], sandbox, log, cpu, "evaluate")
    for ckpt in sorted((work / "checkpoints").iterdir()):
        report = json.loads((work / "eval" / f"{ckpt.name}.json").read_text())
        checkpoints[ckpt.name] = {
            "overall": report["overall"],
            "domains": {d: v["score"] for d, v in report["domains"].items()},
        }
    trial_s = time.time() - t0
    # The final checkpoint is the one reported and submitted: no selection on dev, so dev is not biased up.
    best = max(checkpoints)
    result: dict[str, Any] = {
        "seed": seed,
        "overrides": overrides,
        "trial_s": trial_s,
        "train_s": train_s,
        "cpu_s": cpu,  # prepare, train, evaluate (and predict, after trial_s)
        "checkpoints": checkpoints,
        "best": best,
        "dev": checkpoints[best],
    }
    if answers is not None:
        pred = work / "predictions.json"
        run(
            [py, "eval/predict.py", "--checkpoint", str(work / "checkpoints" / best), "--out", str(pred)],
            sandbox,
            log,
            cpu,
            "predict",
        )
        predictions = json.loads(pred.read_text())["predictions"]
        for split in ("external", "control"):  # the score command's scoring, in this process (no torch import)
            result[split] = {**score(load_answers(answers, split), predictions)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("substrate", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--answers", type=Path)
    args = parser.parse_args()
    print(json.dumps(trial(args.substrate, args.work, args.seed, args.overrides, args.answers)))


if __name__ == "__main__":
    main()
