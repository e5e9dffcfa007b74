"""Score a checkpoint on a labelled split; write the evaluation report (docs/substrate-format.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep the frozen eval/ folder free of __pycache__ in sandboxes
from model import load_rows, predict  # noqa: E402

DOMAINS = ("alpha", "beta", "gamma")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    rows = load_rows(args.split)
    correct = predict(args.checkpoint, rows) == [row["y"] for row in rows]
    items = [
        {"id": row["id"], "domain": row["domain"], "score": float(ok)} for row, ok in zip(rows, correct, strict=True)
    ]
    domains = {}
    for domain in DOMAINS:
        scores = [item["score"] for item in items if item["domain"] == domain]
        domains[domain] = {"score": sum(scores) / len(scores), "n": len(scores)}
    report = {"metric": "accuracy", "domains": domains, "items": items}
    args.out.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
