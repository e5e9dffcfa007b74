"""Forking a substrate that holds a 1 GB file: wall time and new disk used (target < 1 s, < 1 MB).

Builds a substrate with a real (non-sparse) 1 GiB model file, snapshots it read-only as `evotrain init` does,
then forks it into candidate sandboxes with `fork_sandbox` and, as the baseline, copies it with
`shutil.copytree`. New disk is measured two ways: the blocks of every inode the fork created (files not shared
with the snapshot, plus folders), and the filesystem's free-space delta (statvfs, after a sync; noisy when other
processes write to the same disk). Appends a results section to docs/benchmarks.md.

    .venv/bin/python benchmarks/fork_large_file.py [--size-mb 1024] [--repeats 5] [--dir PATH] [--no-docs]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from evotrain.fileio import atomic_write_text, remove_tree
from evotrain.sandbox.fork import fork_sandbox
from evotrain.sandbox.violations import detect_violations
from evotrain.substrate.snapshot import snapshot_substrate, verify_snapshot
from evotrain.substrate.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "benchmarks.md"
CHUNK = 16 * 1024 * 1024

SPEC = """\
name = "bench"
editable = ["recipe.toml", "pipeline/**"]
frozen = ["eval/**", "data/**", "model/**", "evotrain.toml"]

[commands]
train = "{python} train.py"
evaluate = "{python} eval/evaluate.py --out {output}"

[metric]
name = "accuracy"
domains = ["a"]
"""


@dataclass
class Measure:
    wall_s: list[float]
    new_inode_bytes: list[int]
    statvfs_bytes: list[int]

    def row(self) -> tuple[float, int, int]:
        return (
            statistics.median(self.wall_s),
            int(statistics.median(self.new_inode_bytes)),
            int(statistics.median(self.statvfs_bytes)),
        )


def write_substrate(root: Path, size_mb: int) -> Path:
    """A substrate whose model file is `size_mb` MiB of random bytes, every block really allocated."""
    sub = root / "substrate"
    for relpath, text in {
        "evotrain.toml": SPEC,
        "recipe.toml": "[train]\nlr = 0.003\n",
        "pipeline/build.py": "print('build')\n",
        "train.py": "print('train')\n",
        "eval/evaluate.py": "print('eval')\n",
        "data/dev.jsonl": "{}\n" * 1000,
    }.items():
        (sub / relpath).parent.mkdir(parents=True, exist_ok=True)
        (sub / relpath).write_text(text)
    (sub / "model").mkdir()
    rng = np.random.default_rng(0)
    with open(sub / "model" / "weights.bin", "wb") as fh:
        for _ in range(size_mb * 1024 * 1024 // CHUNK):
            fh.write(rng.bytes(CHUNK))
        fh.flush()
        os.fsync(fh.fileno())
    return sub


def free_bytes(path: Path) -> int:
    os.sync()
    st = os.statvfs(path)
    return st.f_bfree * st.f_frsize


def new_inode_bytes(tree: Path, shared_with: Path) -> int:
    """Allocated bytes of every inode under `tree` that `shared_with` does not also hold (folders included)."""
    shared = {(st.st_dev, st.st_ino) for st in (p.lstat() for p in shared_with.rglob("*"))}
    total = tree.lstat().st_blocks * 512
    for p in tree.rglob("*"):
        st = p.lstat()
        if (st.st_dev, st.st_ino) not in shared:
            total += st.st_blocks * 512
    return total


def measure(make: Callable[[Path], object], snapshot: Path, out_root: Path, repeats: int) -> Measure:
    m = Measure([], [], [])
    for i in range(repeats):
        dest = out_root / f"c{i:02d}" / "sandbox"
        dest.parent.mkdir(parents=True)
        before = free_bytes(out_root)
        t0 = time.perf_counter()
        make(dest)
        m.wall_s.append(time.perf_counter() - t0)
        m.statvfs_bytes.append(max(0, before - free_bytes(out_root)))
        m.new_inode_bytes.append(new_inode_bytes(dest, snapshot))
    return m


def fs_type(path: Path) -> str:
    out = subprocess.run(["df", "--output=fstype", str(path)], capture_output=True, text=True)
    return out.stdout.split()[-1] if out.returncode == 0 else "unknown"


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def run(size_mb: int, repeats: int, base_dir: Path) -> tuple[list[list[str]], dict[str, str]]:
    base_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="fork-bench-", dir=base_dir))
    try:
        src = write_substrate(root, size_mb)
        snapshot = root / "run" / "substrate"
        t0 = time.perf_counter()
        hashes = snapshot_substrate(src, snapshot)
        snapshot_s = time.perf_counter() - t0
        spec = load_spec(snapshot)
        fork = measure(lambda d: fork_sandbox(snapshot, spec, d, None), snapshot, root / "forks", repeats)
        copy = measure(lambda d: shutil.copytree(snapshot, d), snapshot, root / "copies", repeats)
        t0 = time.perf_counter()
        verify_snapshot(snapshot, hashes)
        verify_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert detect_violations(snapshot, root / "forks" / "c00" / "sandbox", spec, hashes) == []
        violations_s = time.perf_counter() - t0
    finally:
        remove_tree(root)
    fw, fi, fv = fork.row()
    cw, ci, cv = copy.row()
    rows = [
        ["fork_sandbox (hardlink/reflink)", f"{fw * 1000:.1f} ms", human(fi), human(fv)],
        ["shutil.copytree (baseline)", f"{cw * 1000:.1f} ms", human(ci), human(cv)],
        ["fork / baseline", f"{fw / cw:.4f}", f"{fi / ci:.6f}", f"{fv / cv:.6f}" if cv else "n/a"],
    ]
    context = {
        "file": f"{size_mb} MiB random (non-sparse)",
        "filesystem": fs_type(base_dir),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "repeats": f"{repeats} (median shown)",
        "snapshot (init)": f"{snapshot_s:.2f} s",
        "verify_snapshot (full re-hash, every round)": f"{verify_s:.2f} s",
        "detect_violations on one fork (inode fast path, every trial)": f"{violations_s * 1000:.1f} ms",
        "target met": "yes" if fw < 1.0 and fi < 1_000_000 else "NO",
    }
    return rows, context


DOCS_HEADER = """# Benchmarks

Each section below is appended by the benchmark script it names; rerun the command to add a fresh one.
Figures are medians over the repeats on the machine described under each table.
"""

HEADERS = ["method", "wall time", "new disk (new inodes)", "new disk (statvfs delta)"]


def print_table(rows: list[list[str]], context: dict[str, str]) -> None:
    table = Table(title="Forking a substrate with a large file")
    for h in HEADERS:
        table.add_column(h, justify="left" if h == "method" else "right")
    for r in rows:
        table.add_row(*r)
    console = Console()
    console.print(table)
    for k, v in context.items():
        console.print(f"  {k}: {v}")


def append_docs(rows: list[list[str]], context: dict[str, str], command: str) -> None:
    existing = DOCS.read_text() if DOCS.exists() else DOCS_HEADER
    lines = [
        "",
        f"## Fork of a substrate holding a large file ({dt.datetime.now().strftime('%Y-%m-%d %H:%M')})",
        "",
        "Target: < 1 s and < 1 MB of new disk per fork.",
        "",
        f"    {command}",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" for _ in HEADERS) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
        *(f"- {k}: {v}" for k, v in context.items()),
        "",
    ]
    atomic_write_text(DOCS, existing.rstrip("\n") + "\n" + "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=REPO / "benchmarks" / "results" / "tmp")
    parser.add_argument("--no-docs", action="store_true", help="do not append the results to docs/benchmarks.md")
    args = parser.parse_args()
    rows, context = run(args.size_mb, args.repeats, args.dir)
    print_table(rows, context)
    if not args.no_docs:
        command = f".venv/bin/python benchmarks/fork_large_file.py --size-mb {args.size_mb} --repeats {args.repeats}"
        append_docs(rows, context, command)


if __name__ == "__main__":
    main()
