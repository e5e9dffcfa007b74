"""Submission packaging: adapter_config.json at the zip root; a rank above 32 is refused with a clear message."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evotrain.cli import app
from evotrain.hf_lora.package import PackagingError, package_adapter


def _adapter(folder: Path, r: int = 16, rank_pattern: dict[str, int] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"peft_type": "LORA", "r": r, "lora_alpha": 32, "target_modules": ["q_proj"]}
    if rank_pattern:
        config["rank_pattern"] = rank_pattern
    (folder / "adapter_config.json").write_text(json.dumps(config))
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    (folder / "README.md").write_text("model card")
    return folder


def test_zip_holds_the_adapter_at_its_root(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "submission.zip"
    names = package_adapter(_adapter(tmp_path / "step-00060"), out)
    assert "adapter_config.json" in names
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
        assert json.loads(zf.read("adapter_config.json"))["r"] == 16


@pytest.mark.parametrize(("r", "pattern"), [(33, None), (16, {"layers.0.q_proj": 64})])
def test_rank_above_32_is_refused(tmp_path: Path, r: int, pattern: dict[str, int] | None) -> None:
    out = tmp_path / "submission.zip"
    with pytest.raises(PackagingError) as err:
        package_adapter(_adapter(tmp_path / "a", r, pattern), out)
    assert "exceeds the limit of 32" in str(err.value) and "[lora].rank <= 32" in str(err.value)
    assert not out.exists()


def test_folder_without_adapter_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackagingError, match=r"no adapter_config\.json"):
        package_adapter(tmp_path / "empty", tmp_path / "x.zip")
    folder = _adapter(tmp_path / "noweights")
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(PackagingError, match="no adapter_model"):
        package_adapter(folder, tmp_path / "x.zip")


def test_cli_packages_and_refuses(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["substrate", "package", str(_adapter(tmp_path / "ok")), str(tmp_path / "ok.zip")])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "ok.zip").is_file()
    bad = runner.invoke(app, ["substrate", "package", str(_adapter(tmp_path / "big", 64)), str(tmp_path / "b.zip")])
    assert bad.exit_code == 2
    assert "LoRA rank 64 exceeds the limit of 32" in bad.output and "Traceback" not in bad.output
