"""Predict the external split's labels with a checkpoint: {"predictions": {id: "0" | "1"}}."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep the frozen eval/ folder free of __pycache__ in sandboxes
from model import load_rows, predict  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    rows = load_rows("external_inputs")
    labels = predict(args.checkpoint, rows)
    predictions = {row["id"]: str(int(y)) for row, y in zip(rows, labels, strict=True)}
    args.out.write_text(json.dumps({"predictions": predictions}))


if __name__ == "__main__":
    main()
