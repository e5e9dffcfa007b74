"""A CLI agent under a real bubblewrap: the stand-in `claude` tries to write the frozen evaluator (a hardlink to the
snapshot's inode) in place and by replacing it, the snapshot itself and the campaign, then the editable recipe, its
scratch folder and /tmp. Under bwrap only the last three succeed; without it, a root agent writes through the
hardlink into the snapshot, and only the violation check and the snapshot's hashes notice afterwards."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, Literal

import pytest

from evotrain.campaign.loop import Campaign
from evotrain.errors import IntegrityError
from evotrain.fileio import read_jsonl
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import Manifest
from evotrain.substrate.snapshot import load_hashes, verify_snapshot
from evotrain.workers.cli_agents import ClaudeCodeWorker, CLIAgentConfig
from evotrain.workers.containment import bwrap_problem

from ..campaign_helpers import make_tiny_campaign, manifests

STANDIN = Path(__file__).parent / "standin_agent.py"
TINY_EVALUATOR = Path(__file__).parents[2] / "examples" / "tiny" / "eval" / "evaluate.py"


@pytest.fixture
def escaping_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in `claude` first on PATH, in the mode that tries every write."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "claude"
    exe.write_text(f"#!{sys.executable}\n" + STANDIN.read_text())
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_MODE", "escape")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    return make_tiny_campaign(tmp_path)


def _run(run: Path, containment: Literal["bwrap", "none"]) -> tuple[Manifest, list[dict[str, Any]], dict[str, Any]]:
    worker = ClaudeCodeWorker(CLIAgentConfig(containment=containment))
    Campaign(run, worker=worker).run(rounds=1, workers=2)
    m = manifests(run)["r0001/c02-optimizer"]
    transcript = list(
        read_jsonl(CampaignPaths(run).round(1).candidate("c02-optimizer").root / "agent-transcript.jsonl")
    )
    report = json.loads(next(e["result"] for e in transcript if e.get("type") == "result"))
    return m, transcript, report


def test_under_bwrap_the_snapshot_and_frozen_files_refuse_writes_editable_paths_take_them(escaping_agent: Path) -> None:
    problem = bwrap_problem()
    if problem is not None:
        pytest.skip(f"bubblewrap cannot run here: {problem}")
    run = escaping_agent
    m, transcript, report = _run(run, "bwrap")
    assert transcript[0] == {"type": "evotrain.containment", "bwrap": True, "why_not": None}
    assert report["outcome"] == {
        "frozen_in_place": "EROFS",  # the sandbox's hardlink to the snapshot inode is bound read-only
        "frozen_replace": "EBUSY",  # a bind-mounted file cannot be unlinked or renamed over
        "snapshot_file": "EROFS",
        "snapshot_new_file": "EROFS",
        "campaign_file": "EROFS",
        "editable": "ok",
        "agent_work": "ok",
        "tmp": "ok",
    }
    assert not Path(report["tmp_file"]).exists()  # /tmp inside was a private tmpfs
    assert m.ok and m.failure is None and m.violations == []
    assert [(c.knob, c.old, c.new) for c in m.changes] == [("lr", 0.03, 0.01)]
    paths = CampaignPaths(run)
    assert (paths.root / "rounds" / "r0001" / "candidates" / "c02-optimizer" / "agent-work" / "notes.txt").exists()
    assert (paths.substrate / "eval" / "evaluate.py").read_bytes() == TINY_EVALUATOR.read_bytes()
    verify_snapshot(paths.substrate, load_hashes(paths.substrate_hashes))  # raises on any changed byte


def test_required_bwrap_that_cannot_run_is_a_config_error(
    escaping_agent: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evotrain.errors import ConfigError

    monkeypatch.setenv("PATH", str(Path(os.environ["PATH"].split(os.pathsep)[0])))  # the stand-in, no bwrap
    with pytest.raises(ConfigError, match="configured to run under bubblewrap, but `bwrap` is not on PATH"):
        ClaudeCodeWorker(CLIAgentConfig(containment="bwrap"))


def test_without_bwrap_a_root_agent_writes_through_the_hardlink_into_the_snapshot(escaping_agent: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("as a non-root user the snapshot's read-only file modes already refuse these writes")
    run = escaping_agent
    m, transcript, report = _run(run, "none")
    assert transcript[0] == {"type": "evotrain.containment", "bwrap": False, "why_not": "containment = none"}
    assert set(report["outcome"].values()) == {"ok"}
    Path(report["tmp_file"]).unlink()  # it was the host's /tmp
    # the violation check refuses the trial; the snapshot itself was written and no longer matches its hashes
    assert m.failure is not None and m.failure.failure_class == "violation"
    assert ("eval/evaluate.py", "deleted") in [(v.path, v.kind) for v in m.violations]
    paths = CampaignPaths(run)
    assert (paths.substrate / "eval" / "evaluate.py").read_text().count(
        "# lenient"
    ) == 2  # the sandbox and the snapshot path: one inode
    with pytest.raises(IntegrityError, match="substrate snapshot tampered with"):
        verify_snapshot(paths.substrate, load_hashes(paths.substrate_hashes))
