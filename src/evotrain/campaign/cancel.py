"""`evotrain cancel RUN`: stop the jobs a campaign's traces record as started and unfinished.

For an orchestrator that is gone (killed, its machine lost) while its jobs still run on the cluster. A running
`evotrain run` is stopped with Ctrl-C or SIGTERM instead, which cancels its own jobs; this command refuses to
race it. Cancelled SLURM jobs are marked, so a later `evotrain run` runs their steps again.
"""

from __future__ import annotations

from pathlib import Path

from evotrain.campaign.init import open_campaign
from evotrain.campaign.store import CampaignBusy, CampaignStore
from evotrain.errors import EvotrainError
from evotrain.executors.factory import abandon
from evotrain.executors.protocol import JobRef
from evotrain.trial.trace import Trace


def unfinished_jobs(run_dir: Path) -> list[JobRef]:
    paths, _ = open_campaign(run_dir)
    return [ref for rp in paths.rounds() for cp in rp.candidates() for ref in Trace(cp.trace).started_unfinished()]


def cancel_unfinished_jobs(run_dir: Path) -> list[tuple[JobRef, str]]:
    """Cancel every started-and-unfinished job of the campaign; each job with how it ended."""
    paths, config = open_campaign(run_dir)
    try:
        with CampaignStore(paths).lock():
            return [(ref, abandon(ref, config.executor, config_path=paths.config)) for ref in unfinished_jobs(run_dir)]
    except CampaignBusy:
        raise EvotrainError(
            "an `evotrain run` is driving this campaign",
            path=paths.root,
            fix="stop it with Ctrl-C or `kill -TERM <pid>`: it cancels its own jobs",
        ) from None
