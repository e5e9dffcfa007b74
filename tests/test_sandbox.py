from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from evotrain.errors import ConfigError, IntegrityError
from evotrain.records.policy import StandingRecipe
from evotrain.sandbox.diff import UnrepresentableRecipe, editable_files_changed, recipe_diff
from evotrain.sandbox.fork import fork_sandbox, remove_sandbox, temp_path
from evotrain.sandbox.knobs import read_knob, write_knob
from evotrain.sandbox.violations import detect_violations
from evotrain.substrate.snapshot import SubstrateHashes, snapshot_substrate, verify_snapshot
from evotrain.substrate.spec import SubstrateSpec, load_spec

SUBSTRATE = Path(__file__).parent / "data" / "sandbox_substrate"
RECIPE_TOML = (SUBSTRATE / "recipe.toml").read_text()


def make_substrate(root: Path) -> Path:
    """A fresh copy of tests/data/sandbox_substrate (editable recipe.toml and pipeline/**; frozen eval/**, data/**)."""
    return Path(shutil.copytree(SUBSTRATE, root / "substrate", ignore=shutil.ignore_patterns("__pycache__")))


class Campaign:
    def __init__(self, root: Path) -> None:
        src = make_substrate(root)
        self.snapshot = root / "run" / "substrate"
        self.hashes: SubstrateHashes = snapshot_substrate(src, self.snapshot)
        self.spec: SubstrateSpec = load_spec(self.snapshot)
        self.candidates = root / "run" / "rounds" / "r0001" / "candidates"

    def fork(self, name: str = "c02-optimizer", standing: StandingRecipe | None = None) -> Path:
        dest = self.candidates / name / "sandbox"
        fork_sandbox(self.snapshot, self.spec, dest, standing)
        return dest


@pytest.fixture
def camp(tmp_path: Path) -> Campaign:
    return Campaign(tmp_path)


# --- forks -------------------------------------------------------------------------------------------------


def test_fork_hardlinks_shared_files_and_copies_editable_ones(camp: Campaign) -> None:
    sandbox = camp.fork()
    for relpath in ("train.py", "eval/evaluate.py", "data/dev.jsonl", "model/weights.bin", "evotrain.toml"):
        assert (sandbox / relpath).stat().st_ino == (camp.snapshot / relpath).stat().st_ino, relpath
        assert stat.S_IMODE((sandbox / relpath).stat().st_mode) == 0o444
    for relpath in ("recipe.toml", "pipeline/build.py"):
        assert (sandbox / relpath).stat().st_ino != (camp.snapshot / relpath).stat().st_ino, relpath
        assert stat.S_IMODE((sandbox / relpath).stat().st_mode) == 0o644
        assert (sandbox / relpath).read_bytes() == (camp.snapshot / relpath).read_bytes()
    (sandbox / "recipe.toml").write_text("edited")  # writable, and the snapshot is untouched
    verify_snapshot(camp.snapshot, camp.hashes)
    assert detect_violations(camp.snapshot, sandbox, camp.spec, camp.hashes) == []


def test_fork_applies_the_standing_recipe(camp: Campaign) -> None:
    new_recipe = RECIPE_TOML.replace("lr = 0.003", "lr = 0.01")
    standing = StandingRecipe(files={"recipe.toml": new_recipe, "pipeline/extra.py": "X = 1\n"})
    sandbox = camp.fork(standing=standing)
    assert (sandbox / "recipe.toml").read_text() == new_recipe
    assert (sandbox / "pipeline/extra.py").read_text() == "X = 1\n"
    assert (camp.snapshot / "recipe.toml").read_text() == RECIPE_TOML
    diff, edited = recipe_diff(camp.snapshot, sandbox, camp.spec)
    assert edited == ["pipeline/extra.py", "recipe.toml"]
    assert "-lr = 0.003" in diff and "+lr = 0.01" in diff


@pytest.mark.parametrize("relpath", ["eval/evaluate.py", "train.py", "../outside.toml"])
def test_fork_refuses_a_standing_recipe_file_that_is_not_editable(camp: Campaign, relpath: str) -> None:
    with pytest.raises(ConfigError, match="standing recipe file"):
        camp.fork(standing=StandingRecipe(files={relpath: "x"}))
    assert not (camp.candidates / "c02-optimizer" / "sandbox").exists()


def test_fork_removes_a_temp_folder_left_by_a_crash(camp: Campaign) -> None:
    dest = camp.candidates / "c02-optimizer" / "sandbox"
    half = temp_path(dest)
    (half / "eval").mkdir(parents=True)
    os.link(camp.snapshot / "train.py", half / "train.py")
    os.chmod(half / "eval", 0o555)
    fork_sandbox(camp.snapshot, camp.spec, dest, None)
    assert not half.exists()
    assert (dest / "recipe.toml").exists()
    verify_snapshot(camp.snapshot, camp.hashes)  # removing the half fork never touched the snapshot's inodes


def test_fork_failing_midway_leaves_no_sandbox(camp: Campaign) -> None:
    # an editable standing-recipe path under a file fails to write after the files were copied
    standing = StandingRecipe(files={"pipeline/build.py/inner.py": "x"})
    dest = camp.candidates / "c02-optimizer" / "sandbox"
    with pytest.raises(OSError):
        fork_sandbox(camp.snapshot, camp.spec, dest, standing)
    assert not dest.exists() and not temp_path(dest).exists()


def test_fork_refuses_an_existing_sandbox_and_remove_sandbox_allows_a_refork(camp: Campaign) -> None:
    sandbox = camp.fork()
    (sandbox / "recipe.toml").write_text("half-edited by a worker that crashed")
    with pytest.raises(FileExistsError):
        camp.fork()
    remove_sandbox(sandbox)
    assert not sandbox.exists()
    verify_snapshot(camp.snapshot, camp.hashes)
    assert stat.S_IMODE((camp.snapshot / "train.py").stat().st_mode) == 0o444
    sandbox = camp.fork()
    assert (sandbox / "recipe.toml").read_text() == RECIPE_TOML


# --- diff ---------------------------------------------------------------------------------------------------


def test_recipe_diff_shows_edits_additions_and_deletions(camp: Campaign) -> None:
    sandbox = camp.fork()
    (sandbox / "recipe.toml").write_text(RECIPE_TOML.replace('schedule = "cosine"', 'schedule = "linear"'))
    (sandbox / "pipeline" / "new.py").write_text("print('new')\n")
    (sandbox / "pipeline" / "build.py").unlink()
    diff, edited = recipe_diff(camp.snapshot, sandbox, camp.spec)
    assert edited == ["pipeline/build.py", "pipeline/new.py", "recipe.toml"]
    assert "--- a/recipe.toml\n+++ b/recipe.toml\n" in diff
    assert '-schedule = "cosine"\n+schedule = "linear"\n' in diff
    assert "--- /dev/null\n+++ b/pipeline/new.py\n" in diff
    assert "--- a/pipeline/build.py\n+++ /dev/null\n" in diff
    with pytest.raises(UnrepresentableRecipe, match=r"pipeline/build.py"):
        editable_files_changed(camp.snapshot, sandbox, camp.spec)


def test_recipe_diff_is_empty_for_an_untouched_sandbox_even_with_python_caches(camp: Campaign) -> None:
    sandbox = camp.fork()
    (sandbox / "pipeline" / "__pycache__").mkdir()
    (sandbox / "pipeline" / "__pycache__" / "build.cpython-311.pyc").write_bytes(b"\x00")
    (sandbox / "eval" / "__pycache__").mkdir()
    (sandbox / "eval" / "__pycache__" / "evaluate.cpython-311.pyc").write_bytes(b"\x00")
    assert recipe_diff(camp.snapshot, sandbox, camp.spec) == ("", [])
    assert detect_violations(camp.snapshot, sandbox, camp.spec, camp.hashes) == []


def test_editable_files_changed_builds_a_standing_recipe_that_reproduces_the_sandbox(camp: Campaign) -> None:
    sandbox = camp.fork()
    write_knob(sandbox, camp.spec.search.axes["optimizer"].knobs["lr"], 0.006)
    files = editable_files_changed(camp.snapshot, sandbox, camp.spec)
    assert list(files) == ["recipe.toml"]
    diff, _ = recipe_diff(camp.snapshot, sandbox, camp.spec)
    again = camp.fork("c03-optimizer", standing=StandingRecipe(files=files, diff=diff))
    assert (again / "recipe.toml").read_bytes() == (sandbox / "recipe.toml").read_bytes()


# --- violations ---------------------------------------------------------------------------------------------


def _replace(path: Path, text: str) -> None:
    """A worker that unlinks a shared (read-only, hardlinked) file and writes its own."""
    path.unlink()
    path.write_text(text)


def test_frozen_edit_is_detected(camp: Campaign) -> None:
    sandbox = camp.fork()
    _replace(sandbox / "eval" / "evaluate.py", "print('all correct')\n")
    [v] = detect_violations(camp.snapshot, sandbox, camp.spec, camp.hashes)
    assert (v.path, v.kind) == ("eval/evaluate.py", "frozen_edit")
    verify_snapshot(camp.snapshot, camp.hashes)  # the snapshot itself is intact


def test_shared_edit_is_detected(camp: Campaign) -> None:
    sandbox = camp.fork()
    _replace(sandbox / "train.py", "print('faster')\n")
    [v] = detect_violations(camp.snapshot, sandbox, camp.spec, camp.hashes)
    assert (v.path, v.kind) == ("train.py", "shared_edit")


def test_file_created_outside_editable_is_detected(camp: Campaign) -> None:
    sandbox = camp.fork()
    (sandbox / "data" / "answers.jsonl").write_text("{}\n")
    (sandbox / "notes.txt").write_text("x")
    (sandbox / "pipeline" / "ok.py").write_text("fine\n")  # editable: allowed
    found = detect_violations(camp.snapshot, sandbox, camp.spec, camp.hashes)
    assert [(v.path, v.kind) for v in found] == [
        ("data/answers.jsonl", "created_outside_editable"),
        ("notes.txt", "created_outside_editable"),
    ]
    assert "frozen" in found[0].detail


def test_deleted_shared_and_frozen_files_are_detected_but_editable_deletion_is_allowed(camp: Campaign) -> None:
    sandbox = camp.fork()
    (sandbox / "model" / "weights.bin").unlink()
    (sandbox / "data" / "dev.jsonl").unlink()
    (sandbox / "pipeline" / "build.py").unlink()
    found = detect_violations(camp.snapshot, sandbox, camp.spec, camp.hashes)
    assert [(v.path, v.kind) for v in found] == [("data/dev.jsonl", "deleted"), ("model/weights.bin", "deleted")]


def test_a_file_replaced_by_a_symlink_is_a_violation(camp: Campaign) -> None:
    sandbox = camp.fork()
    (sandbox / "data" / "dev.jsonl").unlink()
    (sandbox / "data" / "dev.jsonl").symlink_to(sandbox / "recipe.toml")
    [v] = detect_violations(camp.snapshot, sandbox, camp.spec, camp.hashes)
    assert (v.path, v.kind) == ("data/dev.jsonl", "frozen_edit")


def test_an_editable_link_out_of_the_sandbox_is_a_violation(camp: Campaign, tmp_path: Path) -> None:
    sandbox = camp.fork()
    secret = tmp_path / "answers.jsonl"
    secret.write_text("{}\n")
    (sandbox / "pipeline" / "answers.jsonl").symlink_to(secret)  # an editable path, leading out
    (sandbox / "pipeline" / "up").symlink_to("../..")  # a relative one, to the candidate folder
    (sandbox / "pipeline" / "recipe_link.toml").symlink_to("../recipe.toml")  # inside the sandbox: allowed
    found = detect_violations(camp.snapshot, sandbox, camp.spec, camp.hashes)
    assert [(v.path, v.kind) for v in found] == [
        ("pipeline/answers.jsonl", "link_outside"),
        ("pipeline/up", "link_outside"),
    ]
    assert str(secret) in found[0].detail


def test_a_write_through_a_hardlink_is_detected_and_names_the_file(camp: Campaign) -> None:
    sandbox = camp.fork()
    target = sandbox / "data" / "dev.jsonl"
    if os.geteuid() != 0:
        pytest.skip("only root can write through the read-only hardlink")
    with open(target, "a") as fh:  # root ignores the 0o444 mode: this writes the snapshot's inode too
        fh.write('{"id": "dev-2", "answer": "forged"}\n')
    assert (camp.snapshot / "data" / "dev.jsonl").read_text().endswith('"forged"}\n')
    [v] = detect_violations(camp.snapshot, sandbox, camp.spec, camp.hashes)
    assert (v.path, v.kind) == ("data/dev.jsonl", "frozen_edit")
    assert "through the hardlink" in v.detail


def test_a_same_size_write_through_a_hardlink_with_restored_mtime_is_caught_by_verify(camp: Campaign) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can write through the read-only hardlink")
    sandbox = camp.fork()
    target = sandbox / "train.py"
    before = target.stat()
    target.write_text("print('TRAIN')\n")  # same length
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    # the per-trial fast path trusts the inode, size and mtime; the round's full re-hash is the backstop
    with pytest.raises(IntegrityError, match=r"'train.py' changed"):
        verify_snapshot(camp.snapshot, camp.hashes)


def test_a_touched_but_intact_shared_copy_is_not_a_violation(camp: Campaign) -> None:
    sandbox = camp.fork()
    path = sandbox / "model" / "weights.bin"
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)  # a new inode with the same bytes: re-hashed, found equal
    assert detect_violations(camp.snapshot, sandbox, camp.spec, camp.hashes) == []


# --- knobs --------------------------------------------------------------------------------------------------


def test_knobs_read_and_write_preserving_comments(camp: Campaign) -> None:
    sandbox = camp.fork()
    knobs = {**camp.spec.search.axes["optimizer"].knobs, **camp.spec.search.axes["data_mix"].knobs}
    assert read_knob(sandbox, knobs["lr"]) == 0.003
    assert read_knob(sandbox, knobs["schedule"]) == "cosine"
    assert read_knob(sandbox, knobs["warmup"]) == 10
    assert read_knob(sandbox, knobs["clip"]) is True
    assert read_knob(sandbox, knobs["mix"]) == {"cipher": 1.0, "numeral": 2.0}
    write_knob(sandbox, knobs["lr"], 0.006)
    write_knob(sandbox, knobs["mix"], {"cipher": 1.5, "numeral": 2.0})
    text = (sandbox / "recipe.toml").read_text()
    assert "lr = 0.006  # learning rate" in text
    assert "# the recipe a worker may edit" in text
    assert "mix = { cipher = 1.5, numeral = 2 }" in text  # the untouched weight keeps its spelling
    diff, _ = recipe_diff(camp.snapshot, sandbox, camp.spec)
    assert sum(1 for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")) == 2


def test_knob_errors_name_the_file_and_the_key(camp: Campaign) -> None:
    sandbox = camp.fork()
    lr = camp.spec.search.axes["optimizer"].knobs["lr"]
    missing = lr.model_copy(update={"key": "train.momentum"})
    with pytest.raises(ConfigError, match=r"recipe.toml: key `train.momentum` is missing"):
        read_knob(sandbox, missing)
    wrong_type = lr.model_copy(update={"key": "train.schedule"})
    with pytest.raises(ConfigError, match=r"recipe.toml: key `train.schedule` \(float knob\)"):
        read_knob(sandbox, wrong_type)
    with pytest.raises(ConfigError, match="outside the declared range"):
        write_knob(sandbox, lr, 0.5)
    schedule = camp.spec.search.axes["optimizer"].knobs["schedule"]
    with pytest.raises(ConfigError, match="not one of the declared choices"):
        write_knob(sandbox, schedule, "exponential")
    assert (sandbox / "recipe.toml").read_text() == RECIPE_TOML
