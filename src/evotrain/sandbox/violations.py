"""Detect a worker's edits outside its editable paths, before the trial runs.

Kinds: `frozen_edit` (a frozen file's content changed), `shared_edit` (a non-editable, non-frozen file changed),
`created_outside_editable` (a new file outside the editable globs), `deleted` (a non-editable file is gone),
`link_outside` (a symbolic link at an editable path that leads out of the sandbox: the trial's steps would read or
write whatever it points at, such as the external target's answers). A trial with any violation does not run.

Shared files are hardlinks to the snapshot, read-only, but a worker running as root writes through permissions:
writing into a hardlinked file modifies the snapshot's inode too. The fast path below treats a shared file as
unchanged only when it is still the snapshot's inode AND that inode's size and mtime_ns are the ones recorded at
init; anything else is re-hashed against the recorded sha256, so a write through a hardlink shows up here (the
recorded values no longer match) and is reported naming the file. A writer that also restores the mtime
(os.utime) slips past this fast path: the full-content `verify_snapshot` every round is the backstop for that.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from evotrain.fileio import hash_file, iter_tree, same_inode
from evotrain.records.manifest import Violation
from evotrain.substrate.snapshot import FileRecord, SubstrateHashes
from evotrain.substrate.spec import SubstrateSpec


def _edit_kind(relpath: str, spec: SubstrateSpec) -> Literal["frozen_edit", "shared_edit"]:
    return "frozen_edit" if spec.is_frozen(relpath) else "shared_edit"


def _unchanged_by_inode(snap_path: Path, st: os.stat_result, record: FileRecord) -> bool:
    """Still the snapshot's own inode, with the size and mtime recorded at init: unchanged without re-hashing."""
    try:
        snap_st = snap_path.lstat()
    except FileNotFoundError:
        return False
    return same_inode(st, snap_st) and st.st_size == record.size and st.st_mtime_ns == record.mtime_ns


def _check_shared_file(
    relpath: str, path: Path, snapshot: Path, record: FileRecord, spec: SubstrateSpec
) -> Violation | None:
    st = path.lstat()
    if path.is_symlink() or not path.is_file():
        return Violation(path=relpath, kind=_edit_kind(relpath, spec), detail="replaced by a link or a non-file")
    if _unchanged_by_inode(snapshot / relpath, st, record):
        return None
    if st.st_size == record.size and hash_file(path) == record.sha256:
        return None  # a copy (no hardlink across devices) or a touched file whose bytes are intact
    through_link = same_inode(st, (snapshot / relpath).lstat()) if (snapshot / relpath).exists() else False
    detail = "content differs from the snapshot (sha256 recorded at init)"
    if through_link:
        detail += "; written through the hardlink, so the snapshot copy was modified too"
    return Violation(path=relpath, kind=_edit_kind(relpath, spec), detail=detail)


def _link_outside(relpath: str, link: Path, sandbox: Path) -> Violation | None:
    target = Path(os.readlink(link))
    if (link.parent / target).resolve().is_relative_to(sandbox.resolve()):  # an absolute target joins as itself
        return None
    return Violation(path=relpath, kind="link_outside", detail=f"a symbolic link to {target}, outside the sandbox")


def detect_violations(snapshot: Path, sandbox: Path, spec: SubstrateSpec, hashes: SubstrateHashes) -> list[Violation]:
    """Every edit of the sandbox outside its editable paths, in path order (empty when the sandbox is clean).

    `__pycache__` folders and `*.pyc` files (written by running Python in the sandbox) are ignored.
    """
    present = dict(iter_tree(sandbox))
    violations: list[Violation] = []
    for relpath in sorted(set(hashes.files) | set(present)):
        if spec.is_editable(relpath):
            if relpath in present and present[relpath].is_symlink():
                escape = _link_outside(relpath, present[relpath], sandbox)
                if escape is not None:
                    violations.append(escape)
            continue
        if relpath not in present:
            where = "frozen" if spec.is_frozen(relpath) else "shared"
            violations.append(Violation(path=relpath, kind="deleted", detail=f"a {where} file was deleted"))
        elif relpath not in hashes.files:
            where = "under a frozen path" if spec.is_frozen(relpath) else "outside the editable globs"
            violations.append(Violation(path=relpath, kind="created_outside_editable", detail=f"new file {where}"))
        else:
            found = _check_shared_file(relpath, present[relpath], snapshot, hashes.files[relpath], spec)
            if found is not None:
                violations.append(found)
    return violations
