"""Load a tiny-substrate checkpoint and the frozen data splits (shared by evaluate.py and predict.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "data"


def load_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in open(DATA / f"{name}.jsonl", encoding="utf-8")]


def predict(checkpoint: Path, rows: list[dict]) -> np.ndarray:
    w = np.load(checkpoint / "weights.npy")
    b = np.load(checkpoint / "bias.npy")
    domains = json.loads((checkpoint / "meta.json").read_text())["domains"]
    x = np.array([row["x"] for row in rows], dtype=np.float64)
    bias = np.array([b[domains.index(row["domain"])] for row in rows])
    return (x @ w + bias > 0).astype(int)
