"""The per-candidate execution trace: an append-only, fsync'd JSONL file, the source of recovery.

Every step of a trial appends one event to `<candidate>/trace.jsonl` before and after it runs, so a campaign
killed at any instant resumes from the traces: a finished step is not run again, an unfinished one restarts
(or, on a cluster, is re-attached).

Event kinds (`kind`, with `key` and the `data` payload):

| kind                 | written by   | key                                 | data                                     |
|----------------------|--------------|-------------------------------------|------------------------------------------|
| `forked`             | orchestrator | candidate id                        | sandbox facts (recipe applied, seed, …)  |
| `worker_finished`    | orchestrator | candidate id                        | `WorkerResult` JSON                      |
| `violations`         | orchestrator | candidate id                        | `{"violations": [Violation JSON, …]}`    |
| `step_started`       | harness      | step key, e.g. `r0001/c02-lr/train` | `JobRef` JSON                            |
| `step_finished`      | harness      | step key                            | `StepOutcome` JSON                       |
| `manifest_written`   | orchestrator | candidate id                        | `{"sha256": …}` or other manifest facts  |
| `external_submitted` | orchestrator | candidate id                        | `ExternalResult` JSON                    |
| `external_failed`    | orchestrator | candidate id                        | `reason`: why predict or scoring failed |

Step keys: `<candidate id>/<step>` and `<candidate id>/evaluate/<checkpoint>` (predict likewise).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from evotrain.executors.protocol import JobRef
from evotrain.fileio import append_jsonl, fsync_dir, read_jsonl

EventKind = Literal[
    "forked",
    "worker_finished",
    "violations",
    "step_started",
    "step_finished",
    "manifest_written",
    "external_submitted",
    "external_failed",
]


class TraceEvent(BaseModel):
    seq: int  # 1, 2, … in file order
    ts: float  # unix time
    kind: EventKind
    key: str | None = None
    data: dict[str, Any] = {}


class Trace:
    """One candidate's trace file. Not for concurrent writers: one trial thread owns a candidate's trace."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, kind: EventKind, key: str | None = None, /, **data: Any) -> TraceEvent:
        """Append one event; it is on disk (fsync'd) when this returns. `kind` and `key` are positional-only,
        so a payload may carry fields of those names (a JobRef has a `key`)."""
        self._drop_torn_tail()
        event = TraceEvent(seq=len(self.events()) + 1, ts=time.time(), kind=kind, key=key, data=data)
        append_jsonl(self.path, event.model_dump(mode="json"))
        return event

    def _drop_torn_tail(self) -> None:
        """Cut a last line left half-written by a crash, so the next event does not glue onto it.

        The torn event was never durable (an append returns only after fsync), so dropping it loses nothing
        the orchestrator was told had happened.
        """
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        with open(self.path, "r+b") as fh:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(self.path.parent)

    def events(self) -> list[TraceEvent]:
        return [TraceEvent.model_validate(record) for record in read_jsonl(self.path)]

    def has(self, kind: EventKind, key: str | None = None) -> bool:
        return self.last(kind, key) is not None

    def last(self, kind: EventKind, key: str | None = None) -> TraceEvent | None:
        """The latest event of `kind` (and of `key`, when given)."""
        found = None
        for event in self.events():
            if event.kind == kind and (key is None or event.key == key):
                found = event
        return found

    def finished(self, key: str) -> dict[str, Any] | None:
        """The `StepOutcome` payload of the latest `step_finished` for a step key, if that step finished."""
        event = self._latest_step_event(key)
        return event.data if event is not None and event.kind == "step_finished" else None

    def pending(self, key: str) -> JobRef | None:
        """The job of a step that was started and has not finished (the orchestrator died meanwhile)."""
        event = self._latest_step_event(key)
        return JobRef.model_validate(event.data) if event is not None and event.kind == "step_started" else None

    def started_unfinished(self) -> list[JobRef]:
        """The jobs of every step started and not finished, in start order."""
        latest: dict[str, TraceEvent] = {}
        for event in self.events():
            if event.kind in ("step_started", "step_finished") and event.key is not None:
                latest.pop(event.key, None)  # re-insert so dict order follows the latest event
                latest[event.key] = event
        return [JobRef.model_validate(e.data) for e in latest.values() if e.kind == "step_started"]

    def _latest_step_event(self, key: str) -> TraceEvent | None:
        found = None
        for event in self.events():
            if event.key == key and event.kind in ("step_started", "step_finished"):
                found = event
        return found
