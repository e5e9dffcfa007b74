"""Frozen: zip a checkpoint's LoRA adapter for submission (adapter_config.json at the zip root, rank <= 32).

python package.py --checkpoint WORK/checkpoints/step-00060 --out submission.zip
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "vendor"))  # evotrain as sealed in the substrate

from evotrain.errors import EvotrainError
from evotrain.hf_lora.package import MAX_RANK, package_adapter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="an adapter folder (peft save_pretrained)")
    parser.add_argument("--out", type=Path, required=True, help="the zip to write")
    parser.add_argument("--max-rank", type=int, default=MAX_RANK)
    args = parser.parse_args()
    try:
        names = package_adapter(args.checkpoint, args.out, max_rank=args.max_rank)
    except EvotrainError as exc:
        sys.exit(f"package: {exc}")
    print(f"wrote {args.out}: {', '.join(names)}")


if __name__ == "__main__":
    main()
