"""The read-only substrate snapshot taken at `init`, and the content hashes that lock it.

`snapshot_substrate` copies the user's substrate into the campaign (large files by reflink where the filesystem
has it, else by the kernel's copy fast path), makes it read-only, and records a sha256 of every file.
`verify_snapshot` re-hashes every byte and names the first file that differs: it runs every round and is the
authoritative integrity check (the per-trial violation check in `evotrain.sandbox.violations` is a fast filter).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ValidationError

from evotrain.errors import ConfigError, IntegrityError
from evotrain.fileio import atomic_write_json, fsync_dir

HASH_CHUNK_BYTES = 4 * 1024 * 1024
HASHES_VERSION = 1

# Never part of a snapshot: VCS metadata and caches that running Python or pytest leaves behind.
IGNORED_DIR_NAMES = frozenset({".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
IGNORED_SUFFIXES = (".pyc",)

READ_ONLY_FILE = 0o444
READ_ONLY_EXECUTABLE = 0o555
READ_ONLY_DIR = 0o555

# linux/fs.h: _IOW(0x94, 9, int). Clones a whole file on btrfs, XFS (reflink=1), bcachefs, OCFS2.
FICLONE = 0x40049409


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


def same_inode(a: os.stat_result, b: os.stat_result) -> bool:
    return a.st_ino == b.st_ino and a.st_dev == b.st_dev
