"""`evotrain init`: snapshot the substrate and the constitution, read-only and hash-locked; write round 1's policy."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from pathlib import Path

from evotrain import __version__
from evotrain.campaign.config import CampaignConfig, load_config, save_config
from evotrain.campaign.store import CampaignStore
from evotrain.errors import ConfigError, IntegrityError
from evotrain.external.config import ExternalConfig
from evotrain.fileio import atomic_write_bytes, fsync_dir
from evotrain.policy.constitution import DEFAULT_CONSTITUTION_PATH, Constitution, load_constitution
from evotrain.policy.initial import initial_policy
from evotrain.records.layout import CampaignPaths
from evotrain.sandbox.knobs import check_knobs
from evotrain.substrate.snapshot import SubstrateHashes, load_hashes, save_hashes, snapshot_substrate, verify_snapshot
from evotrain.substrate.spec import SubstrateSpec, check_paths, load_spec


def init_campaign(
    run_dir: Path,
    substrate: Path,
    *,
    constitution: Path | None = None,
    external: ExternalConfig | None = None,
    seed: int = 0,
) -> CampaignConfig:
    """Create a campaign folder. Built in a temp folder and renamed, so a crash leaves no half campaign."""
    run_dir = run_dir.resolve()
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(
            "campaign folder already exists and is not empty",
            path=run_dir,
            fix="pick a new folder, or continue this campaign with `evotrain run`",
        )
    spec = load_spec(substrate)
    check_paths(spec, substrate)
    check_knobs(substrate, spec)
    constitution_src = constitution or DEFAULT_CONSTITUTION_PATH
    load_constitution(constitution_src)  # validate before copying anything

    staging = run_dir.with_name(f".{run_dir.name}.init-tmp")
    if staging.exists():
        _force_rmtree(staging)
    staging.mkdir(parents=True)
    paths = CampaignPaths(staging)

    hashes = snapshot_substrate(substrate, paths.substrate)
    save_hashes(paths.substrate_hashes, hashes)
    os.chmod(paths.substrate_hashes, 0o444)
    constitution_bytes = constitution_src.read_bytes()
    atomic_write_bytes(paths.constitution, constitution_bytes, mode=0o444)

    policy = initial_policy(spec)
    paths.round(1).root.mkdir(parents=True)
    CampaignStore(paths).write_policy(1, policy)

    config = CampaignConfig(
        name=run_dir.name,
        seed=seed,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        evotrain_version=__version__,
        substrate_source=str(substrate.resolve()),
        substrate_sha256=hashes.digest,
        constitution_sha256=hashlib.sha256(constitution_bytes).hexdigest(),
        external=external,
    )
    save_config(paths.config, config)

    if run_dir.exists():
        run_dir.rmdir()  # empty, checked above
    os.replace(staging, run_dir)
    fsync_dir(run_dir.parent)
    return config


def _force_rmtree(path: Path) -> None:
    for root, dirs, _files in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
    os.chmod(path, 0o755)
    shutil.rmtree(path)


def open_campaign(run_dir: Path) -> tuple[CampaignPaths, CampaignConfig]:
    # absolute: step commands run with the sandbox as working directory, so every path they get must be absolute
    paths = CampaignPaths(run_dir.resolve())
    if not paths.config.exists():
        raise ConfigError(
            "not a campaign folder (no campaign.toml)",
            path=run_dir,
            fix="create one with `evotrain init RUN --substrate PATH`",
        )
    return paths, load_config(paths.config)


def verify_constitution(paths: CampaignPaths, config: CampaignConfig) -> Constitution:
    try:
        data = paths.constitution.read_bytes()
    except FileNotFoundError:
        raise IntegrityError("the constitution is missing", path=paths.constitution) from None
    if hashlib.sha256(data).hexdigest() != config.constitution_sha256:
        raise IntegrityError(
            "the constitution changed since `init` (its hash no longer matches campaign.toml)",
            path=paths.constitution,
            fix="restore the original file; the constitution is frozen for the whole campaign",
        )
    return load_constitution(paths.constitution)


def verify_substrate(paths: CampaignPaths, config: CampaignConfig) -> tuple[SubstrateSpec, SubstrateHashes]:
    """Full re-hash of the snapshot against the hashes recorded at init; IntegrityError names the file."""
    hashes = load_hashes(paths.substrate_hashes)
    if hashes.digest != config.substrate_sha256:
        raise IntegrityError(
            "the substrate hash record no longer matches campaign.toml",
            path=paths.substrate_hashes,
            fix="restore the original file; the substrate is frozen for the whole campaign",
        )
    verify_snapshot(paths.substrate, hashes)
    return load_spec(paths.substrate), hashes
