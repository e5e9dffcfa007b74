"""Sealed substrates: every evotrain module a substrate's scripts import is copied into it (vendor/, frozen), a
step imports that copy and not the installed package, and a changed copy stops `run` and `audit` by name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evotrain.campaign.init import init_campaign
from evotrain.cli import app
from evotrain.errors import ConfigError
from evotrain.external.config import CommandTargetConfig
from evotrain.puzzles.answers import extract_answer, verify
from evotrain.puzzles.build import SubstrateBuild, build_substrate
from evotrain.substrate.seal import PACKAGE_DIR, VENDOR, evotrain_imports, import_closure
from evotrain.substrate.spec import load_spec

runner = CliRunner()
SEALED = f"{VENDOR}/evotrain/puzzles/answers.py"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SubstrateBuild]:
    root = tmp_path_factory.mktemp("sealed")
    old = os.environ.get("EVOTRAIN_CACHE")
    os.environ["EVOTRAIN_CACHE"] = str(root / "cache")
    try:
        yield build_substrate(root / "sub", answers_path=root / "answers.jsonl", profile="micro", seed=1)
    finally:
        if old is None:
            del os.environ["EVOTRAIN_CACHE"]
        else:
            os.environ["EVOTRAIN_CACHE"] = old


def _vendored(sub: Path) -> dict[str, Path]:
    return {p.relative_to(sub / VENDOR).as_posix(): p for p in (sub / VENDOR).rglob("*.py")}


def test_every_evotrain_module_the_scripts_import_is_sealed_and_frozen(built: SubstrateBuild) -> None:
    sub = built.path
    vendored = _vendored(sub)
    assert {
        "evotrain/__init__.py",
        "evotrain/puzzles/answers.py",
        "evotrain/puzzles/lm.py",
        "evotrain/fileio.py",
        "evotrain/substrate/spec.py",
    } <= set(vendored)
    for rel, path in vendored.items():  # byte-identical to the package that built it
        assert path.read_bytes() == (PACKAGE_DIR.parent / rel).read_bytes(), rel
    # the generators and the splits (the external shift) stay out: lm.py no longer imports them
    assert not {"evotrain/puzzles/generators.py", "evotrain/puzzles/splits.py"} & set(vendored)
    spec = load_spec(sub)
    assert all(spec.is_frozen(f"{VENDOR}/{rel}") for rel in vendored)
    # nothing a script imports from evotrain is missing from the copy, transitively
    scripts = [sub / "train.py", sub / "eval/evaluate.py", sub / "eval/predict.py"]
    assert {source.relative_to(PACKAGE_DIR.parent).as_posix() for source in import_closure(scripts).values()} == set(
        vendored
    )


def _changed_installed_evotrain(tmp_path: Path) -> Path:
    """A copy of the installed evotrain whose scorer and model code refuse to be imported."""
    root = tmp_path / "installed"
    shutil.copytree(PACKAGE_DIR, root / "evotrain", ignore=shutil.ignore_patterns("__pycache__", "substrate_template"))
    for rel in ("puzzles/answers.py", "puzzles/lm.py"):
        (root / "evotrain" / rel).write_text("raise ImportError('the installed evotrain module was imported')\n")
    return root


def test_a_step_imports_the_sealed_copy_not_the_installed_package(built: SubstrateBuild, tmp_path: Path) -> None:
    changed = _changed_installed_evotrain(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(changed), "OMP_NUM_THREADS": "1"}  # the changed package comes first
    evaluate = [sys.executable, "eval/evaluate.py", "--checkpoint", "model/base", "--split", "dev"]
    done = subprocess.run([*evaluate, "--out", str(tmp_path / "r.json")], cwd=built.path, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads((tmp_path / "r.json").read_text())
    dev = {it["id"]: it for it in map(json.loads, (built.path / "data/dev.jsonl").read_text().splitlines())}
    for item in report["items"]:  # scored by the sealed scorer, which is this one
        expected = verify(extract_answer(report["outputs"][item["id"]]), dev[item["id"]]["answer"])
        assert item["score"] == float(expected)
    # Without the sealed copy the same step would have used the changed package: the seal is what holds.
    unsealed = tmp_path / "unsealed"
    shutil.copytree(built.path, unsealed, ignore=shutil.ignore_patterns(VENDOR))
    done = subprocess.run([*evaluate, "--out", str(tmp_path / "u.json")], cwd=unsealed, env=env, capture_output=True)
    assert done.returncode != 0 and b"the installed evotrain module was imported" in done.stderr


def test_a_changed_sealed_module_stops_run_and_audit(built: SubstrateBuild, tmp_path: Path) -> None:
    score = f"{sys.executable} -m evotrain.puzzles.score --answers {built.answers_path} --predictions {{predictions}}"
    run = tmp_path / "run"
    init_campaign(run, built.path, external=CommandTargetConfig(command=score), seed=0)
    target = run / "substrate" / SEALED
    os.chmod(target, 0o644)
    target.write_text(target.read_text().replace("REL_TOL = 1e-2", "REL_TOL = 0.5"))
    result = runner.invoke(app, ["run", str(run), "--rounds", "1", "--workers", "2"])
    assert result.exit_code == 2 and SEALED in result.output, result.output
    result = runner.invoke(app, ["audit", str(run)])
    assert result.exit_code == 1 and SEALED in result.output, result.output
    assert not list(run.glob("rounds/*/candidates/*"))  # no trial ran


def test_an_import_of_a_module_evotrain_does_not_have_is_refused_at_build(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("from evotrain.puzzles import nowhere\nimport evotrain.no_such_module\n")
    with pytest.raises(ConfigError, match=r"train\.py imports evotrain\.no_such_module"):
        evotrain_imports(script)


def test_imports_are_found_anywhere_in_a_file(tmp_path: Path) -> None:
    script = tmp_path / "eval.py"
    script.write_text(
        "import json\n"
        "def main():\n"
        "    from evotrain.puzzles import answers\n"
        "    import evotrain.fileio as io\n"
        "    from evotrain.substrate.spec import checkpoint_folders\n"
    )
    assert evotrain_imports(script) == {
        "evotrain",
        "evotrain.puzzles",
        "evotrain.puzzles.answers",
        "evotrain.fileio",
        "evotrain.substrate",
        "evotrain.substrate.spec",
    }
