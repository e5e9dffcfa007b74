"""SIGTERM of `evotrain run` on the local executor: running steps are killed, nothing records them, resume finishes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evotrain.records.layout import CampaignPaths
from evotrain.trial.trace import Trace

from ..campaign_helpers import EXAMPLES, make_tiny_campaign, manifests


@pytest.mark.slow
def test_sigterm_kills_local_steps_without_recording_them_and_resume_finishes(tmp_path: Path) -> None:
    substrate = tmp_path / "tiny"
    subprocess.run(["cp", "-r", str(EXAMPLES / "tiny"), str(substrate)], check=True)
    spec = substrate / "evotrain.toml"
    spec.write_text(spec.read_text().replace('train = "{python} train.py', 'train = "sleep 3 && {python} train.py'))
    run = make_tiny_campaign(tmp_path)
    args = [sys.executable, "-m", "evotrain", "run", str(run), "--rounds", "1", "--workers", "2", "--parallel", "2"]
    proc = subprocess.Popen([*args, "--executor", "local"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    traces = [CampaignPaths(run).round(1).candidate(n).trace for n in ("c01-anchor",)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(p.exists() and any(e.key and e.key.endswith("/train") for e in Trace(p).events()) for p in traces):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    for cp in CampaignPaths(run).round(1).candidates():
        events = Trace(cp.trace).events()
        assert all(e.data.get("status") != "cancelled" for e in events if e.kind == "step_finished")
        assert not cp.manifest.exists()
    final = subprocess.run(args, capture_output=True, timeout=300)
    assert final.returncode == 0, final.stderr.decode()
    assert len(manifests(run)) == 2 and all(m.ok for m in manifests(run).values())
