"""Frozen prediction: generate with one checkpoint on the external inputs (no answers here) for submission.

Writes {"predictions": {item id: model output}}; the external target extracts and verifies the answers with
evotrain.puzzles.answers, the same rules as the dev evaluation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "vendor"))  # evotrain as sealed in the substrate
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generation import ROOT, EvalConfigError, generate, load_config

from evotrain.errors import EvotrainError
from evotrain.fileio import atomic_write_json
from evotrain.hf_lora.csvdata import read_items


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--inputs", type=Path, default=ROOT / "data" / "external_inputs.csv")
    args = parser.parse_args()
    try:
        config = load_config()
        items = read_items(args.inputs, answers=False)
        outputs, backend = generate(config, args.checkpoint, [it.prompt for it in items])
    except (EvotrainError, EvalConfigError) as exc:
        sys.exit(f"predict: {exc}")
    predictions = {it.id: out for it, out in zip(items, outputs, strict=True)}
    atomic_write_json(args.out, {"predictions": predictions})
    print(f"{backend}: wrote {len(predictions)} predictions to {args.out}")


if __name__ == "__main__":
    main()
