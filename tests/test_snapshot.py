from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

from evotrain.errors import ConfigError, IntegrityError
from evotrain.fileio import hash_file, remove_tree
from evotrain.substrate.snapshot import load_hashes, save_hashes, snapshot_substrate, verify_snapshot

SUBSTRATE = Path(__file__).parent / "data" / "sandbox_substrate"


def make_substrate(root: Path) -> Path:
    """A fresh copy of tests/data/sandbox_substrate, plus a .git folder and a Python cache a snapshot must skip."""
    sub = Path(shutil.copytree(SUBSTRATE, root / "substrate", ignore=shutil.ignore_patterns("__pycache__")))
    (sub / ".git").mkdir()
    (sub / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (sub / "pipeline" / "__pycache__").mkdir()
    (sub / "pipeline" / "__pycache__" / "build.cpython-311.pyc").write_bytes(b"cache")
    return sub


@pytest.fixture
def snap(tmp_path: Path) -> tuple[Path, Path]:
    src = make_substrate(tmp_path)
    return src, tmp_path / "run" / "substrate"


def test_hash_file_streams_a_file_larger_than_one_chunk(tmp_path: Path) -> None:
    data = os.urandom(9 * 1024 * 1024 + 17)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert hash_file(path) == hashlib.sha256(data).hexdigest()


def test_snapshot_is_read_only_and_every_file_is_hashed(snap: tuple[Path, Path]) -> None:
    src, dest = snap
    hashes = snapshot_substrate(src, dest)
    assert set(hashes.files) == {
        "evotrain.toml",
        "recipe.toml",
        "pipeline/build.py",
        "train.py",
        "eval/evaluate.py",
        "data/dev.jsonl",
        "model/weights.bin",
    }  # .git and __pycache__ skipped
    for relpath, record in hashes.files.items():
        path = dest / relpath
        assert record.sha256 == hashlib.sha256((src / relpath).read_bytes()).hexdigest()
        assert record.size == path.stat().st_size
        assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert stat.S_IMODE(dest.stat().st_mode) == 0o555
    assert stat.S_IMODE((dest / "eval").stat().st_mode) == 0o555
    assert not (dest.parent / ".substrate.tmp").exists()
    if os.geteuid() != 0:  # root writes through modes; the hash check below is what catches it
        with pytest.raises(PermissionError):
            (dest / "train.py").write_text("x")


def test_hashes_round_trip_and_verify_passes_on_an_intact_snapshot(snap: tuple[Path, Path], tmp_path: Path) -> None:
    src, dest = snap
    hashes = snapshot_substrate(src, dest)
    save_hashes(tmp_path / "run" / "substrate.hashes.json", hashes)
    loaded = load_hashes(tmp_path / "run" / "substrate.hashes.json")
    assert loaded == hashes
    verify_snapshot(dest, loaded)


def _writable(path: Path) -> None:
    os.chmod(path.parent, 0o755)
    if path.exists():
        os.chmod(path, 0o644)


def test_verify_names_a_modified_file(snap: tuple[Path, Path]) -> None:
    src, dest = snap
    hashes = snapshot_substrate(src, dest)
    target = dest / "eval" / "evaluate.py"
    _writable(target)
    target.write_text("print('forged')\n")
    with pytest.raises(IntegrityError, match=r"'eval/evaluate.py' changed"):
        verify_snapshot(dest, hashes)


def test_verify_names_a_missing_file(snap: tuple[Path, Path]) -> None:
    src, dest = snap
    hashes = snapshot_substrate(src, dest)
    _writable(dest / "data" / "dev.jsonl")
    (dest / "data" / "dev.jsonl").unlink()
    with pytest.raises(IntegrityError, match=r"'data/dev.jsonl' is missing"):
        verify_snapshot(dest, hashes)


def test_verify_names_an_added_file(snap: tuple[Path, Path]) -> None:
    src, dest = snap
    hashes = snapshot_substrate(src, dest)
    _writable(dest / "data" / "extra.jsonl")
    (dest / "data" / "extra.jsonl").write_text("{}\n")
    with pytest.raises(IntegrityError, match=r"'data/extra.jsonl' was added"):
        verify_snapshot(dest, hashes)


def test_verify_refuses_an_edited_hash_record(snap: tuple[Path, Path]) -> None:
    src, dest = snap
    hashes = snapshot_substrate(src, dest)
    forged = hashes.model_copy(deep=True)
    forged.files["train.py"].sha256 = "0" * 64
    with pytest.raises(IntegrityError, match="combined digest"):
        verify_snapshot(dest, forged)


def test_load_hashes_names_a_missing_record(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="missing"):
        load_hashes(tmp_path / "nope.json")


def test_symlink_outside_the_substrate_is_refused(snap: tuple[Path, Path], tmp_path: Path) -> None:
    src, dest = snap
    (tmp_path / "secret.txt").write_text("hidden labels")
    (src / "data" / "leak.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(ConfigError, match=r"symlink 'data/leak.txt' points outside the substrate"):
        snapshot_substrate(src, dest)
    assert not dest.exists()
    assert not (dest.parent / ".substrate.tmp").exists()


def test_symlink_inside_the_substrate_is_copied_as_its_target(snap: tuple[Path, Path]) -> None:
    src, dest = snap
    (src / "train_link.py").symlink_to("train.py")
    (src / "evaldir").symlink_to("eval", target_is_directory=True)
    hashes = snapshot_substrate(src, dest)
    assert not (dest / "train_link.py").is_symlink()
    assert (dest / "train_link.py").read_text() == "print('train')\n"
    assert (dest / "evaldir" / "evaluate.py").read_text() == "print('evaluate')\n"
    assert "evaldir/evaluate.py" in hashes.files


def test_symlink_loop_is_refused(snap: tuple[Path, Path]) -> None:
    src, dest = snap
    (src / "eval" / "up").symlink_to("..", target_is_directory=True)
    with pytest.raises(ConfigError, match="contains it"):
        snapshot_substrate(src, dest)


def test_snapshot_refuses_an_existing_destination_and_clears_a_crash_leftover(snap: tuple[Path, Path]) -> None:
    src, dest = snap
    leftover = dest.parent / ".substrate.tmp"
    (leftover / "half").mkdir(parents=True)
    (leftover / "half" / "file").write_text("x")
    os.chmod(leftover / "half", 0o555)
    snapshot_substrate(src, dest)
    assert not leftover.exists()
    with pytest.raises(ConfigError, match="already exists"):
        snapshot_substrate(src, dest)


def test_remove_tree_deletes_a_read_only_snapshot(snap: tuple[Path, Path]) -> None:
    src, dest = snap
    snapshot_substrate(src, dest)
    remove_tree(dest)
    assert not dest.exists()
