"""Where every file of a campaign lives. Files are the source of truth: readable, diffable, auditable.

RUN/
  campaign.toml                     config, substrate and constitution hashes
  constitution.md                   read-only copy
  substrate/                        read-only snapshot
  substrate.hashes.json             content hash of every snapshot file
  rounds/r0001/
    policy.json  policy.md          the policy in force for this round
    round.jsonl                     the round's trace
    candidates/c01-anchor/
      sandbox/  work/  logs/  trace.jsonl  manifest.json
    evidence.json  evidence.md      the round evidence
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evotrain.records.ids import candidate_id, round_dirname


@dataclass(frozen=True)
class CandidatePaths:
    root: Path
    round: int
    name: str

    @property
    def candidate_id(self) -> str:
        return candidate_id(self.round, self.name)

    @property
    def sandbox(self) -> Path:
        return self.root / "sandbox"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def checkpoints(self) -> Path:
        return self.work / "checkpoints"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def trace(self) -> Path:
        return self.root / "trace.jsonl"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def eval_dir(self) -> Path:
        return self.work / "eval"

    @property
    def predictions_dir(self) -> Path:
        return self.work / "predictions"


@dataclass(frozen=True)
class RoundPaths:
    root: Path
    number: int

    @property
    def policy_json(self) -> Path:
        return self.root / "policy.json"

    @property
    def policy_md(self) -> Path:
        return self.root / "policy.md"

    @property
    def trace(self) -> Path:
        return self.root / "round.jsonl"

    @property
    def meta_json(self) -> Path:
        return self.root / "meta.json"

    @property
    def evidence_json(self) -> Path:
        return self.root / "evidence.json"

    @property
    def evidence_md(self) -> Path:
        return self.root / "evidence.md"

    @property
    def candidates_dir(self) -> Path:
        return self.root / "candidates"

    def candidate(self, name: str) -> CandidatePaths:
        return CandidatePaths(self.candidates_dir / name, self.number, name)

    def candidates(self) -> list[CandidatePaths]:
        if not self.candidates_dir.exists():
            return []
        return [self.candidate(p.name) for p in sorted(self.candidates_dir.iterdir()) if p.is_dir()]


@dataclass(frozen=True)
class CampaignPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "campaign.toml"

    @property
    def constitution(self) -> Path:
        return self.root / "constitution.md"

    @property
    def substrate(self) -> Path:
        return self.root / "substrate"

    @property
    def substrate_hashes(self) -> Path:
        return self.root / "substrate.hashes.json"

    @property
    def rounds_dir(self) -> Path:
        return self.root / "rounds"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    def round(self, number: int) -> RoundPaths:
        return RoundPaths(self.rounds_dir / round_dirname(number), number)

    def rounds(self) -> list[RoundPaths]:
        if not self.rounds_dir.exists():
            return []
        out = []
        for p in sorted(self.rounds_dir.iterdir()):
            if p.is_dir() and p.name.startswith("r") and p.name[1:].isdigit():
                out.append(RoundPaths(p, int(p.name[1:])))
        return out
