"""Generate the tiny substrate's frozen data splits (run once; the outputs are committed).

Three domains of binary classification in 8 dimensions. Each domain's true weights share a common part and
add a domain-specific one, so one shared linear model must compromise between domains: the training mix
decides where. The external split of `gamma` is deliberately shifted: its inputs come from a moved
distribution and its labels follow the shared part only, so pushing dev `gamma` up (by upweighting it in the
mix) does not carry over to the external target. Dev and external can decouple.

    python make_data.py   # writes data/*.jsonl and ../tiny_external_answers.jsonl (outside the substrate)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DOMAINS = ("alpha", "beta", "gamma")
DIM = 8
SIZES = {"train": 500, "dev": 150, "external": 150}  # per domain


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def main() -> None:
    rng = np.random.default_rng(20240601)
    shared = rng.normal(size=DIM)
    own = {d: 1.2 * rng.normal(size=DIM) for d in DOMAINS}
    bias = {d: float(rng.normal(scale=0.5)) for d in DOMAINS}

    def sample(domain: str, n: int, external: bool) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, DIM))
        weights = shared + own[domain]
        if external and domain == "gamma":
            x = x + 0.8  # covariate shift
            weights = shared  # the dev-specific part of gamma does not hold on the external split
        logits = x @ weights + bias[domain] + rng.normal(scale=0.7, size=n)
        return x, (logits > 0).astype(int)

    rows: dict[str, list[dict[str, object]]] = {split: [] for split in SIZES}
    for split, n in SIZES.items():
        for domain in DOMAINS:
            x, y = sample(domain, n, external=split == "external")
            for i in range(n):
                rows[split].append(
                    {
                        "id": f"{split}-{domain}-{i:04d}",
                        "domain": domain,
                        "x": [round(float(v), 4) for v in x[i]],
                        "y": int(y[i]),
                    }
                )
    write_jsonl(HERE / "data/train.jsonl", rows["train"])
    write_jsonl(HERE / "data/dev.jsonl", rows["dev"])
    inputs = [{k: r[k] for k in ("id", "domain", "x")} for r in rows["external"]]
    write_jsonl(HERE / "data/external_inputs.jsonl", inputs)
    write_jsonl(
        HERE.parent / "tiny_external_answers.jsonl",
        [{"id": r["id"], "domain": r["domain"], "answer": str(r["y"])} for r in rows["external"]],
    )


if __name__ == "__main__":
    main()
