"""File-system primitives: crash-safe writes (every file evotrain writes is complete or absent, never
half-written), fsync, a sorted walk that skips caches, streamed hashing, fast copies (reflink where the filesystem
has it), and removing a read-only tree."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from evotrain.errors import IntegrityError

HASH_CHUNK_BYTES = 4 * 1024 * 1024

# Never part of a snapshot, fork or check: VCS metadata and caches that running Python or pytest leaves behind.
IGNORED_DIR_NAMES = frozenset({".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
IGNORED_SUFFIXES = (".pyc",)


# linux/fs.h: _IOW(0x94, 9, int). Clones a whole file on btrfs, XFS (reflink=1), bcachefs, OCFS2.
FICLONE = 0x40049409


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write to a temp file in the same folder, fsync, rename over `path`, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(path: Path, obj: Any, *, mode: int = 0o644) -> None:
    if isinstance(obj, BaseModel):
        text = obj.model_dump_json(indent=2)
    else:
        text = json.dumps(obj, indent=2, sort_keys=False)
    atomic_write_text(path, text + "\n", mode=mode)


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync it: the line is durable when this returns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    new = not path.exists()
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    if new:
        fsync_dir(path.parent)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the complete lines of a JSONL file; a torn last line (a crash mid-append) is ignored, a damaged line
    before it is an IntegrityError naming the file and the line (a kill cannot leave one: it was edited)."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i >= len(lines) - 2:  # only the final line may be torn
                return
            raise IntegrityError(
                f"line {i + 1} is not valid JSON (damaged in the middle of the file, not torn by a kill)",
                path=path,
                fix="restore the file; without a copy, delete that line and run `evotrain audit RUN`",
            ) from None
        if not isinstance(record, dict):
            raise IntegrityError(f"line {i + 1} is not a JSON object", path=path, fix="restore the file")
        yield record


@contextlib.contextmanager
def staged_dir(dest: Path) -> Iterator[Path]:
    """A folder to build `dest` in: a hidden sibling that becomes `dest` (absent or empty) only when the block ends
    without an exception, and is removed when it raises, so a killed or failed build never leaves half a `dest`."""
    staging = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        if dest.exists():
            dest.rmdir()  # the callers check that it is empty; rmdir refuses otherwise
        staging.rename(dest)
        fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def hash_file(path: Path) -> str:
    """sha256 of a file, streamed so a multi-gigabyte checkpoint never sits in memory."""
    digest = hashlib.sha256()
    buffer = bytearray(HASH_CHUNK_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(view):
            digest.update(view[:n])
    return digest.hexdigest()


def is_ignored(relpath: str) -> bool:
    """Whether a substrate-relative path is a cache or VCS file that snapshots, forks and checks all skip."""
    parts = relpath.split("/")
    return any(part in IGNORED_DIR_NAMES for part in parts) or relpath.endswith(IGNORED_SUFFIXES)


def iter_tree(root: Path) -> Iterator[tuple[str, Path]]:
    """Yield (relpath, path) for every non-directory entry under `root` (symlinks not followed), in path order."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        # os.walk lists a symlink to a directory among dirnames; report it as an entry, do not descend.
        links = [d for d in dirnames if (here / d).is_symlink()]
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIR_NAMES and d not in links)
        for name in sorted([*filenames, *links]):
            path = here / name
            relpath = path.relative_to(root).as_posix()
            if not is_ignored(relpath):
                yield relpath, path


def reflink(src: Path, dst: Path) -> bool:
    """Clone `src` to a new file `dst` sharing its blocks (copy-on-write); False where the filesystem cannot."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
            return True
        except OSError:
            pass
    os.unlink(dst)
    return False


def copy_file_fast(src: Path, dst: Path) -> None:
    """Copy one file's bytes and times: a reflink where possible, else shutil's sendfile/copy_file_range path."""
    if not reflink(src, dst):
        shutil.copyfile(src, dst)
    shutil.copystat(src, dst)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_tree_writable(root: Path) -> None:
    """Give the owner write permission on every folder under `root` so it can be deleted.

    Only folders: a file of a sandbox may be a hardlink to the snapshot, and chmod on it would change the
    snapshot's own inode. Deleting a file needs write permission on its folder, not on the file.
    """
    if not root.exists() or root.is_symlink():
        return
    for dirpath, dirnames, _ in os.walk(root, followlinks=False):
        os.chmod(dirpath, os.stat(dirpath).st_mode | stat.S_IRWXU)
        for d in dirnames:
            p = Path(dirpath) / d
            if not p.is_symlink():
                os.chmod(p, os.stat(p).st_mode | stat.S_IRWXU)


def remove_tree(root: Path) -> None:
    """Delete a read-only tree (a snapshot or a sandbox) without touching the modes of its files."""
    if root.is_symlink():
        root.unlink()
        return
    if not root.exists():
        return
    make_tree_writable(root)
    shutil.rmtree(root)


def same_inode(a: os.stat_result, b: os.stat_result) -> bool:
    return a.st_ino == b.st_ino and a.st_dev == b.st_dev
