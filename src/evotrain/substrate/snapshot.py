"""The read-only substrate snapshot taken at `init`, and the content hashes that lock it.

`snapshot_substrate` copies the user's substrate into the campaign (large files by reflink where the filesystem
has it, else by the kernel's copy fast path), makes it read-only, and records a sha256 of every file.
`verify_snapshot` re-hashes every byte and names the first file that differs: it runs every round and is the
authoritative integrity check (the per-trial violation check in `evotrain.sandbox.violations` is a fast filter).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path

from pydantic import BaseModel, ValidationError

from evotrain.errors import ConfigError, IntegrityError
from evotrain.fileio import (
    IGNORED_DIR_NAMES,
    atomic_write_json,
    copy_file_fast,
    fsync_dir,
    fsync_file,
    hash_file,
    iter_tree,
    remove_tree,
)

HASHES_VERSION = 1

READ_ONLY_FILE = 0o444
READ_ONLY_EXECUTABLE = 0o555
READ_ONLY_DIR = 0o555


class FileRecord(BaseModel):
    sha256: str
    size: int
    mtime_ns: int


class SubstrateHashes(BaseModel):
    """The content hash of every snapshot file, keyed by substrate-relative POSIX path."""

    schema_version: int = HASHES_VERSION
    files: dict[str, FileRecord]
    digest: str  # sha256 over every (relpath, sha256) pair in path order: one value to put in campaign.toml

    @classmethod
    def from_files(cls, files: dict[str, FileRecord]) -> SubstrateHashes:
        ordered = dict(sorted(files.items()))
        return cls(files=ordered, digest=combined_digest(ordered))


def combined_digest(files: dict[str, FileRecord]) -> str:
    digest = hashlib.sha256()
    for relpath in sorted(files):
        digest.update(relpath.encode("utf-8") + b"\0" + files[relpath].sha256.encode("ascii") + b"\n")
    return digest.hexdigest()


def _resolve_symlink(link: Path, src_root: Path, active: frozenset[Path]) -> Path:
    """The in-substrate target of a symlink; ConfigError for one that leaves the substrate, dangles or loops.

    `active` holds the real paths of the folders being copied (the link's ancestors in the copy): a link to one
    of them, or to a folder above the link, would make the copy endless.
    """
    target = Path(os.path.realpath(link))
    rel = link.relative_to(src_root).as_posix() if link.is_relative_to(src_root) else link.name
    if target != src_root and src_root not in target.parents:
        raise ConfigError(
            f"symlink {rel!r} points outside the substrate (to {target})",
            path=link,
            fix="copy the file into the substrate, or make the link point inside it",
        )
    if not target.exists():
        raise ConfigError(f"symlink {rel!r} is dangling (to {target})", path=link, fix="remove the link or fix it")
    link_parent = Path(os.path.realpath(link.parent))
    if target.is_dir() and (target in active or target == link_parent or target in link_parent.parents):
        raise ConfigError(
            f"symlink {rel!r} points to a folder that contains it: the snapshot would never end",
            path=link,
            fix="remove the link",
        )
    return target


def _copy_entry(src: Path, dst: Path, src_root: Path, active: frozenset[Path]) -> None:
    """Copy one entry of the substrate; a symlink inside the substrate is copied as what it points to."""
    if src.is_symlink():
        target = _resolve_symlink(src, src_root, active)
        if target.is_dir():
            _copy_dir_contents(target, dst, src_root, active)
            return
        src = target
    if not src.is_file():
        raise ConfigError(
            f"{src.name!r} is not a regular file (a socket, FIFO or device)",
            path=src,
            fix="remove it from the substrate",
        )
    copy_file_fast(src, dst)


def _copy_dir_contents(src_dir: Path, dst_dir: Path, src_root: Path, active: frozenset[Path] = frozenset()) -> None:
    active = active | {Path(os.path.realpath(src_dir))}
    dst_dir.mkdir(parents=True, exist_ok=True)
    # empty folders are kept too: a stack may expect them
    for dirpath, dirnames, _ in os.walk(src_dir, followlinks=False):
        dirnames[:] = [d for d in dirnames if d not in IGNORED_DIR_NAMES and not (Path(dirpath) / d).is_symlink()]
        for d in dirnames:
            (dst_dir / (Path(dirpath) / d).relative_to(src_dir)).mkdir(parents=True, exist_ok=True)
    for relpath, path in iter_tree(src_dir):
        _copy_entry(path, dst_dir / relpath, src_root, active)


def _make_read_only(root: Path) -> None:
    """Files 0o444 (0o555 where the owner could execute), then folders 0o555 bottom-up."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            path = Path(dirpath) / name
            executable = os.stat(path).st_mode & stat.S_IXUSR
            os.chmod(path, READ_ONLY_EXECUTABLE if executable else READ_ONLY_FILE)
        for name in dirnames:
            os.chmod(Path(dirpath) / name, READ_ONLY_DIR)
    os.chmod(root, READ_ONLY_DIR)


def record_hashes(root: Path) -> SubstrateHashes:
    """Hash every file under `root` (content, size, mtime) into a SubstrateHashes."""
    files: dict[str, FileRecord] = {}
    for relpath, path in iter_tree(root):
        st = path.lstat()
        files[relpath] = FileRecord(sha256=hash_file(path), size=st.st_size, mtime_ns=st.st_mtime_ns)
    return SubstrateHashes.from_files(files)


def _temp_sibling(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.tmp"


def snapshot_substrate(src: Path, dest: Path) -> SubstrateHashes:
    """Copy the substrate `src` into `dest` read-only and return the hash of every file.

    The copy is built in a hidden sibling folder and renamed into place, so `dest` is either complete or
    absent; a leftover folder from a crash is removed first. `.git` and Python/pytest caches are skipped.
    """
    if not src.is_dir():
        raise ConfigError("substrate folder not found", path=src, fix="pass the folder holding evotrain.toml")
    if dest.exists():
        raise ConfigError("the snapshot folder already exists", path=dest, fix="start a new campaign folder")
    src_root = src.resolve()
    if src_root == dest.resolve() or src_root in dest.resolve().parents:
        raise ConfigError(
            "the campaign folder is inside the substrate", path=dest, fix="put the campaign outside the substrate"
        )
    tmp = _temp_sibling(dest)
    remove_tree(tmp)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        _copy_dir_contents(src_root, tmp, src_root)
        for _, path in iter_tree(tmp):
            fsync_file(path)
        _make_read_only(tmp)
        hashes = record_hashes(tmp)
        os.rename(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            remove_tree(tmp)
        raise
    fsync_dir(dest.parent)
    return hashes


def save_hashes(path: Path, hashes: SubstrateHashes) -> None:
    atomic_write_json(path, hashes, mode=0o444)


def load_hashes(path: Path) -> SubstrateHashes:
    try:
        return SubstrateHashes.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise IntegrityError(
            "the substrate hash record is missing", path=path, fix="restore it; the campaign cannot be verified"
        ) from None
    except ValidationError as err:
        raise IntegrityError(
            f"the substrate hash record is not valid: {err.errors()[0]['msg']}",
            path=path,
            fix="restore it; it is written once at init and never changes",
        ) from None


def verify_snapshot(dest: Path, recorded: SubstrateHashes) -> None:
    """Re-hash every byte of the snapshot; raise IntegrityError naming the first missing, extra or changed file."""
    if not dest.is_dir():
        raise IntegrityError("the substrate snapshot is missing", path=dest, fix="restore it from the substrate")
    if combined_digest(recorded.files) != recorded.digest:
        raise IntegrityError(
            "the substrate hash record does not match its own combined digest (it was edited)",
            path=dest,
            fix="restore substrate.hashes.json",
        )
    present = dict(iter_tree(dest))
    problems: list[tuple[str, str]] = []
    for relpath in sorted(set(recorded.files) | set(present)):
        if relpath not in present:
            problems.append((relpath, "is missing"))
        elif relpath not in recorded.files:
            problems.append((relpath, "was added"))
        elif present[relpath].is_symlink() or not present[relpath].is_file():
            problems.append((relpath, "was replaced by a link or a non-file"))
        elif hash_file(present[relpath]) != recorded.files[relpath].sha256:
            problems.append((relpath, "changed (its sha256 differs from the one recorded at init)"))
    if problems:
        relpath, what = problems[0]
        more = f" ({len(problems) - 1} more file(s) differ too)" if len(problems) > 1 else ""
        raise IntegrityError(
            f"substrate snapshot tampered with: {relpath!r} {what}{more}",
            path=dest / relpath,
            fix="the snapshot is read-only and must never change; restore it or start a new campaign",
        )
