"""Train a shared logistic-regression model with per-domain biases by minibatch SGD; checkpoint as it goes."""

from __future__ import annotations

import argparse
import json
import math
import os
import tomllib
from pathlib import Path

import numpy as np


def learning_rate(recipe: dict, step: int) -> float:
    lr, steps, schedule = float(recipe["lr"]), int(recipe["steps"]), recipe["schedule"]
    progress = step / steps
    if schedule == "constant":
        return lr
    if schedule == "linear":
        return lr * (1.0 - progress)
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise SystemExit(f"recipe.toml: [train].schedule = {schedule!r} is not constant, linear or cosine")


def save_checkpoint(root: Path, step: int, w: np.ndarray, b: np.ndarray, domains: list[str]) -> None:
    final = root / f"step-{step:06d}"
    tmp = root / f".{final.name}.tmp"  # written aside and renamed, so a checkpoint is complete or absent
    tmp.mkdir(parents=True, exist_ok=True)
    np.save(tmp / "weights.npy", w)
    np.save(tmp / "bias.npy", b)
    (tmp / "meta.json").write_text(json.dumps({"step": step, "domains": domains}))
    os.replace(tmp, final)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--checkpoints", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--summary", required=True)
    args = parser.parse_args()
    with open(args.recipe, "rb") as fh:
        recipe = tomllib.load(fh)["train"]
    data = np.load(args.data)
    x, y, domain = data["x"], data["y"], data["domain"]
    domains = [str(d) for d in data["domains"]]
    rng = np.random.default_rng(args.seed)
    w = rng.normal(scale=0.1, size=x.shape[1])
    b = np.zeros(len(domains))
    steps, batch, l2 = int(recipe["steps"]), int(recipe["batch_size"]), float(recipe["l2"])
    every = int(recipe["checkpoint_every"])
    root = Path(args.checkpoints)
    loss = float("nan")
    for step in range(1, steps + 1):
        idx = rng.integers(0, len(y), size=batch)
        logits = x[idx] @ w + b[domain[idx]]
        p = 1.0 / (1.0 + np.exp(-logits))
        loss = float(np.mean(np.logaddexp(0.0, logits) - y[idx] * logits))
        grad = p - y[idx]
        lr = learning_rate(recipe, step - 1)
        w -= lr * (x[idx].T @ grad / batch + l2 * w)
        b -= lr * np.bincount(domain[idx], weights=grad, minlength=len(domains)) / batch
        if step % every == 0 or step == steps:
            save_checkpoint(root, step, w, b, domains)
    summary = {
        "steps": steps,
        "final_loss": loss,
        "examples_seen": steps * batch,
        "weight_norm": float(np.linalg.norm(w)),
    }
    Path(args.summary).write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
