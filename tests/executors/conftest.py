"""Fixtures for the executor tests: a running one-node SLURM, and each executor behind one contract.

`slurm_cluster` uses a SLURM that is already up (`SLURM_CONF`, or the folder scripts/slurm/start.sh writes);
when SLURM is installed but not running it starts one with scripts/slurm/start.sh (root needed) and stops it
at the end of the session. Tests that need SLURM are skipped only where it is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from evotrain.executors.local import LocalExecutor
from evotrain.executors.protocol import Executor
from evotrain.executors.slurm import SlurmConfig, SlurmExecutor

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "slurm"
DEFAULT_CONF = Path(os.environ.get("EVOTRAIN_SLURM_DIR", "/tmp/evotrain-slurm")) / "slurm.conf"
PARTITION = "debug"


def _answers(conf: str | None) -> bool:
    env = {**os.environ, **({"SLURM_CONF": conf} if conf else {})}
    try:
        probe = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0 and any(s in probe.stdout for s in ("idle", "mix", "alloc"))


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[str]:
    """The SLURM_CONF of a running cluster with partition `debug` and 2 (fake) GPUs, set for the session."""
    if shutil.which("sbatch") is None or shutil.which("slurmctld") is None:
        pytest.skip("SLURM is not installed (run `bash scripts/slurm/install.sh`; CI installs it)")
    started = False
    conf = os.environ.get("SLURM_CONF")
    if not (conf and _answers(conf)):
        conf = str(DEFAULT_CONF)
        if not _answers(conf):
            if os.geteuid() != 0:
                pytest.skip("SLURM is installed but not running, and starting it needs root: scripts/slurm/start.sh")
            subprocess.run(["bash", str(SCRIPTS / "start.sh")], check=True, stdout=subprocess.DEVNULL, timeout=120)
            started = True
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", conf)  # subprocesses (sbatch, the orchestrator under test) inherit it
        yield conf
    if started:
        subprocess.run(["bash", str(SCRIPTS / "stop.sh")], check=False, timeout=60)


def slurm_executor(**overrides: object) -> SlurmExecutor:
    """An executor with a job-name prefix of its own, so tests can count their jobs in squeue."""
    settings: dict[str, object] = {
        "partition": PARTITION,
        "poll_s": 0.3,
        "job_name_prefix": f"evotrain-test-{uuid.uuid4().hex[:8]}",
        "cancel_wait_s": 60.0,
    }
    return SlurmExecutor(SlurmConfig.model_validate({**settings, **overrides}))


def make_executor(kind: str) -> Executor:
    if kind == "local":
        return LocalExecutor(cpus=2, gpus=[0, 1], term_grace_s=0.5)
    return slurm_executor()


@pytest.fixture(params=["local", "slurm"])
def executor_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "slurm":
        request.getfixturevalue("slurm_cluster")
    return str(request.param)


@pytest.fixture
def executor(executor_kind: str) -> Iterator[Executor]:
    made = make_executor(executor_kind)
    yield made
    made.close()  # type: ignore[attr-defined]  # both executors have close(); the protocol does not require it
