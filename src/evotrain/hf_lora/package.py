"""Submission packaging: a LoRA adapter folder zipped with ``adapter_config.json`` at the zip's root.

The challenge accepts LoRA adapters of rank at most 32; a larger rank (``r``, or any value of ``rank_pattern``)
is refused before anything is written.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from evotrain.errors import EvotrainError
from evotrain.fileio import fsync_dir

MAX_RANK = 32
ADAPTER_CONFIG = "adapter_config.json"


class PackagingError(EvotrainError):
    """An adapter folder that cannot be submitted."""


class AdapterConfig(BaseModel):
    """The fields of peft's adapter_config.json that packaging checks (the others pass through untouched)."""

    model_config = ConfigDict(extra="allow")

    peft_type: str = "LORA"
    r: int
    lora_alpha: float | None = None
    rank_pattern: dict[str, int] = {}
    target_modules: list[str] | str | None = None


def read_adapter_config(folder: Path) -> AdapterConfig:
    path = folder / ADAPTER_CONFIG
    if not path.is_file():
        raise PackagingError(
            f"no {ADAPTER_CONFIG} in the adapter folder",
            path=folder,
            fix="point at a checkpoint folder written by peft's save_pretrained (e.g. {checkpoints}/step-00060)",
        )
    try:
        return AdapterConfig.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise PackagingError(f"not a LoRA adapter config: {exc}", path=path) from None


def check_rank(config: AdapterConfig, where: Path, max_rank: int = MAX_RANK) -> int:
    """The adapter's largest rank; PackagingError when it exceeds ``max_rank``."""
    if config.peft_type.upper() != "LORA":
        raise PackagingError(f"peft_type is {config.peft_type!r}, not LORA", path=where)
    ranks = [config.r, *config.rank_pattern.values()]
    largest = max(ranks)
    if largest > max_rank:
        raise PackagingError(
            f"LoRA rank {largest} exceeds the limit of {max_rank}",
            path=where / ADAPTER_CONFIG,
            fix=f"train with [lora].rank <= {max_rank} in recipe.toml",
        )
    return largest


def package_adapter(adapter: Path, out: Path, *, max_rank: int = MAX_RANK) -> list[str]:
    """Zip every file of ``adapter`` (flat, at the zip root) into ``out``; returns the names written.

    Written to a temporary file beside ``out`` and renamed, so ``out`` is a complete zip or absent.
    """
    config = read_adapter_config(adapter)
    check_rank(config, adapter, max_rank)
    files = sorted(p for p in adapter.iterdir() if p.is_file() and not p.name.startswith("."))
    if not any(p.name.startswith("adapter_model.") for p in files):
        raise PackagingError("no adapter_model.safetensors (or .bin) beside adapter_config.json", path=adapter)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in files:
                zf.write(path, arcname=path.name)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(out.parent)
    return [p.name for p in files]
