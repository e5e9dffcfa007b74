"""Fork the read-only substrate snapshot into a candidate sandbox.

Editable files are copied (writable); every other file is shared with the snapshot by hardlink (a reflink, then a
plain copy, where a hardlink is impossible), read-only, so a fork of a stack holding a 1 GB checkpoint costs
neither time nor disk. The policy's standing recipe is then written over the editable copies.

A fork is built in a sibling temp folder and renamed into place: a half-made sandbox never appears at `dest`,
and a temp folder left by a crash is removed by the next call.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from evotrain.errors import ConfigError
from evotrain.fileio import atomic_write_text, copy_file_fast, fsync_dir, fsync_file, iter_tree, reflink, remove_tree
from evotrain.records.policy import StandingRecipe
from evotrain.substrate.snapshot import READ_ONLY_EXECUTABLE, READ_ONLY_FILE
from evotrain.substrate.spec import SubstrateSpec

WRITABLE_FILE = 0o644
WRITABLE_EXECUTABLE = 0o755
SANDBOX_DIR = 0o755  # folders stay writable: a worker may add files under editable globs, Python writes caches


@dataclass
class ForkStats:
    """How each file of a fork was made: the benchmark and the logs report it."""

    copied_editable: int = 0
    hardlinked: int = 0
    reflinked: int = 0
    copied_shared: int = 0  # shared files that could be neither hardlinked nor reflinked
    standing_files: int = 0


def temp_path(dest: Path) -> Path:
    return dest.parent / f"{dest.name}.tmp"


def remove_sandbox(path: Path) -> None:
    """Delete a sandbox (and any half-made temp fork beside it), e.g. to re-fork after a crash mid-worker.

    Shared files are hardlinks to the snapshot: only folder modes are changed, never a file's.
    """
    remove_tree(path)
    remove_tree(temp_path(path))


def check_standing_recipe(standing: StandingRecipe, spec: SubstrateSpec, where: Path) -> None:
    """Refuse a standing recipe that would write outside the editable paths or outside the sandbox."""
    for relpath in standing.files:
        pure = PurePosixPath(relpath)
        if pure.is_absolute() or ".." in pure.parts or relpath != pure.as_posix():
            raise ConfigError(
                f"standing recipe file {relpath!r} is not a plain substrate-relative path",
                path=where,
                fix="use a relative POSIX path without '..'",
            )
        if not spec.is_editable(relpath):
            raise ConfigError(
                f"standing recipe file {relpath!r} is not editable (it is "
                f"{'frozen' if spec.is_frozen(relpath) else 'outside the editable globs'})",
                path=where,
                fix="a promoted recipe may only hold files matching `editable` in evotrain.toml; drop this file",
            )


def _writable_mode(src_mode: int) -> int:
    return WRITABLE_EXECUTABLE if src_mode & stat.S_IXUSR else WRITABLE_FILE


def _copy_editable(src: Path, dst: Path) -> None:
    copy_file_fast(src, dst)
    os.chmod(dst, _writable_mode(os.stat(src).st_mode))
    fsync_file(dst)


def _share(src: Path, dst: Path, stats: ForkStats) -> None:
    """Share a read-only file: hardlink (same inode), else reflink, else copy; the copy is made read-only."""
    try:
        os.link(src, dst, follow_symlinks=False)
        stats.hardlinked += 1
        return
    except OSError:  # another filesystem (EXDEV), too many links (EMLINK), or a filesystem without hardlinks
        pass
    if reflink(src, dst):
        stats.reflinked += 1
    else:
        shutil.copyfile(src, dst)
        stats.copied_shared += 1
    shutil.copystat(src, dst)
    executable = os.stat(src).st_mode & stat.S_IXUSR
    os.chmod(dst, READ_ONLY_EXECUTABLE if executable else READ_ONLY_FILE)
    fsync_file(dst)


def _mirror_folders(snapshot: Path, tmp: Path) -> None:
    tmp.mkdir(mode=SANDBOX_DIR)
    for dirpath, dirnames, _ in os.walk(snapshot, followlinks=False):
        for d in dirnames:
            (tmp / (Path(dirpath) / d).relative_to(snapshot)).mkdir(mode=SANDBOX_DIR, exist_ok=True)


def fork_sandbox(snapshot: Path, spec: SubstrateSpec, dest: Path, standing: StandingRecipe | None) -> ForkStats:
    """Fork `snapshot` into the new folder `dest` and apply the standing recipe; return how files were made."""
    if dest.exists():
        raise FileExistsError(f"{dest}: the sandbox already exists; remove_sandbox() it before forking again")
    if standing is not None:
        check_standing_recipe(standing, spec, dest)
    tmp = temp_path(dest)
    remove_tree(tmp)  # left by a crash mid-fork
    dest.parent.mkdir(parents=True, exist_ok=True)
    stats = ForkStats()
    try:
        _mirror_folders(snapshot, tmp)
        for relpath, path in iter_tree(snapshot):
            if spec.is_editable(relpath):
                _copy_editable(path, tmp / relpath)
                stats.copied_editable += 1
            else:
                _share(path, tmp / relpath, stats)
        for relpath, content in (standing.files if standing else {}).items():
            target = tmp / relpath
            mode = _writable_mode(target.stat().st_mode) if target.exists() else WRITABLE_FILE
            atomic_write_text(target, content, mode=mode)
            stats.standing_files += 1
        fsync_dir(tmp)
        os.rename(tmp, dest)
    except BaseException:
        remove_tree(tmp)
        raise
    fsync_dir(dest.parent)
    return stats
