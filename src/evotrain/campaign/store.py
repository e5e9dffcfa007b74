"""The campaign store: the one reader and writer of a campaign folder's round files.

It holds the lock that lets one orchestrator drive a campaign (a second is refused with `CampaignBusy`), the
policy of every round (JSON and its Markdown rendering), the typed round events of `round.jsonl`, the evidence
files, the meta agent's records, and reads the manifests back. Loop, audit, status, report and cancel go through
it; the harness writes each candidate's own trace and manifest.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from pydantic import ValidationError

from evotrain.errors import ConfigError, EvotrainError, IntegrityError
from evotrain.evidence.render import render_evidence_markdown
from evotrain.fileio import append_jsonl, atomic_write_json, atomic_write_text, hash_file, read_jsonl
from evotrain.policy.render import render_policy_markdown
from evotrain.records.events import ROUND_EVENT, EvidenceWritten, Planned, RoundClosed, RoundEvent
from evotrain.records.evidence import Evidence
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import Manifest, read_manifest
from evotrain.records.meta import MetaRecord
from evotrain.records.policy import Policy


class CampaignBusy(EvotrainError):
    """Another `evotrain run` holds the campaign's lock."""


class CampaignStore:
    def __init__(self, paths: CampaignPaths) -> None:
        self.paths = paths

    # ---- the lock --------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One orchestrator per campaign: a second `evotrain run` on the same folder is refused, not interleaved."""
        fd = os.open(self.paths.lock, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CampaignBusy(
                    "another `evotrain run` is driving this campaign",
                    path=self.paths.root,
                    fix="wait for it to finish, or stop it before resuming",
                ) from None
            yield
        finally:
            os.close(fd)

    # ---- policies --------------------------------------------------------------------------------------------
    def read_policy(self, round_no: int) -> Policy:
        """The round's policy; raises FileNotFoundError or ValidationError (for readers that report problems)."""
        return Policy.model_validate_json(self.paths.round(round_no).policy_json.read_text())

    def policy(self, round_no: int) -> Policy:
        """The policy a round runs under; ConfigError when the previous round never closed."""
        path = self.paths.round(round_no).policy_json
        if not path.exists():
            raise ConfigError(
                "no policy for this round",
                path=path,
                fix="the previous round did not close; run `evotrain run` to resume it",
            )
        try:
            return self.read_policy(round_no)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise IntegrityError(
                f"not a valid policy ({detail})",
                path=path,
                fix=self._policy_fix(round_no),
            ) from None

    def _policy_fix(self, round_no: int) -> str:
        if round_no == 1:
            return "restore the file (init wrote it from the substrate); `evotrain audit RUN` lists what else changed"
        return (
            f"restore the file: its sha256 is the policy_written event of round {round_no - 1}'s round.jsonl; "
            "`evotrain audit RUN` lists what else changed"
        )

    def policy_or_none(self, round_no: int) -> Policy | None:
        """The round's policy, or None where it is missing or unreadable (for status views)."""
        try:
            return self.read_policy(round_no)
        except (OSError, ValueError):
            return None

    def write_policy(self, round_no: int, policy: Policy) -> None:
        round_paths = self.paths.round(round_no)
        round_paths.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(round_paths.policy_json, policy)
        atomic_write_text(round_paths.policy_md, render_policy_markdown(policy))

    # ---- round events ----------------------------------------------------------------------------------------
    def events(self, round_no: int) -> list[RoundEvent]:
        return [ROUND_EVENT.validate_python(e) for e in read_jsonl(self.paths.round(round_no).trace)]

    def append_event(self, round_no: int, event: RoundEvent) -> None:
        append_jsonl(self.paths.round(round_no).trace, event.model_dump(mode="json"))

    def planned(self, round_no: int) -> Planned | None:
        return next((e for e in self.events(round_no) if isinstance(e, Planned)), None)

    def closed(self, round_no: int) -> RoundClosed | None:
        return next((e for e in self.events(round_no) if isinstance(e, RoundClosed)), None)

    # ---- evidence --------------------------------------------------------------------------------------------
    def write_evidence(self, evidence: Evidence) -> None:
        """evidence.json and evidence.md, then the `evidence_written` event holding the JSON's hash."""
        round_paths = self.paths.round(evidence.round)
        atomic_write_json(round_paths.evidence_json, evidence)
        atomic_write_text(round_paths.evidence_md, render_evidence_markdown(evidence))
        self.append_event(evidence.round, EvidenceWritten(sha256=hash_file(round_paths.evidence_json)))

    def read_evidence(self, round_no: int) -> Evidence:
        """Raises FileNotFoundError or ValidationError."""
        return Evidence.model_validate_json(self.paths.round(round_no).evidence_json.read_text())

    # ---- meta records ----------------------------------------------------------------------------------------
    def write_meta_record(self, record: MetaRecord) -> None:
        atomic_write_json(self.paths.round(record.round).meta_json, record)

    # ---- manifests -------------------------------------------------------------------------------------------
    def manifests(self, *, up_to_round: int) -> list[Manifest]:
        """Every manifest written so far in rounds 1..`up_to_round`, in round and candidate order."""
        out = []
        for round_paths in self.paths.rounds():
            if round_paths.number > up_to_round:
                continue
            for cp in round_paths.candidates():
                if cp.manifest.exists():
                    out.append(read_manifest(cp.manifest))
        return out
