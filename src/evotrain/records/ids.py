"""Ids and seeds. A candidate's id names its round and folder (`r0001/c02-optimizer`); every seed is derived from
stable hashes of its parts, the same across processes and Python versions (Python's hash() is salted).

The loop hands every seed out: a candidate's training seed comes with its plan, and a worker receives the seeds
it may use in its request (`WorkerSeeds`), so no worker derives one from the campaign seed."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict


def round_dirname(round_no: int) -> str:
    return f"r{round_no:04d}"


def candidate_dirname(index: int, axis: str | None) -> str:
    """`c01-anchor` for the anchor (index 1), `c02-<axis>` for workers."""
    return f"c{index:02d}-{axis if axis else 'anchor'}"


def candidate_id(round_no: int, dirname: str) -> str:
    return f"{round_dirname(round_no)}/{dirname}"


def stable_hash(*parts: object, separator: str = "/", nbytes: int = 4) -> int:
    """The first `nbytes` of the sha256 of the parts joined by `separator`, as a big-endian integer: the one hash
    every seed comes from (the separator and width differ by use, so each keeps the values it always had)."""
    digest = hashlib.sha256(separator.join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:nbytes], "big")


def derive_seed(campaign_seed: int, *parts: object) -> int:
    """A 31-bit seed for one use of the campaign seed (a candidate's training seed, a replicate's)."""
    return stable_hash(campaign_seed, *parts) & 0x7FFFFFFF


def mutator_seed(campaign_seed: int, round_no: int, candidate: str) -> int:
    """The offline mutator's 64-bit seed for one candidate."""
    return stable_hash("mutator", campaign_seed, round_no, candidate, separator="\0", nbytes=8)


class WorkerSeeds(BaseModel):
    """Every seed a worker may use for one candidate, handed to it with its request."""

    model_config = ConfigDict(frozen=True)

    trial: int  # the candidate's planned training seed (CandidatePlan.seed), which its official trial runs with
    mutator: int  # the offline mutator's draws (64-bit)
    agent_trials: int  # an agent's own scratch trials (`evotrain trial` inside its sandbox)
    sampler: int  # a search baseline's sampler: one per round and worker, the same for the round's candidates


def worker_seeds(campaign_seed: int, round_no: int, candidate: str, *, trial: int, worker: str) -> WorkerSeeds:
    """The seeds handed to the worker `worker` editing `candidate` (`r0001/c02-optimizer`), whose plan gave it
    the training seed `trial`."""
    return WorkerSeeds(
        trial=trial,
        mutator=mutator_seed(campaign_seed, round_no, candidate),
        agent_trials=derive_seed(campaign_seed, round_no, candidate, "agent"),
        sampler=derive_seed(campaign_seed, round_no, worker),
    )


def statistics_seed(*parts: object) -> int:
    """A 48-bit seed for a resampling statistic (a bootstrap), from what it is computed over."""
    return stable_hash(*parts, separator="\x1f", nbytes=6)
