"""Stopping an orchestrator (Ctrl-C, SIGTERM) cancels its jobs without recording them as the steps' outcomes.

`StoppableExecutor` wraps the executor a campaign runs on. `stop()` first makes every later `poll` and `submit`
raise `CampaignStopped`, so no trial thread writes "cancelled" into a trace or a manifest, and only then closes
the inner executor, which cancels the jobs in flight. The traces keep those steps as started-and-unfinished:
`evotrain run` resumes them (the local executor finds nothing left to kill; the SLURM one sees its own cancel
mark and submits the step again).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

from evotrain.errors import EvotrainError
from evotrain.executors.protocol import Executor, JobRef, StepOutcome, StepRequest


class CampaignStopped(EvotrainError):
    """The orchestrator is stopping; the step's job was (or is being) cancelled."""


class StoppableExecutor:
    def __init__(
        self,
        inner: Executor,
        *,
        abandon_foreign: Callable[[JobRef], object] | None = None,
        submit_wait_s: float = 30.0,
    ) -> None:
        self.inner = inner
        self.abandon_foreign = abandon_foreign
        self.name = inner.name
        self.submit_wait_s = submit_wait_s
        self._stopped = threading.Event()
        self._guard = threading.Condition()
        self._submitting = 0

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def _refuse(self, key: str) -> CampaignStopped:
        return CampaignStopped(f"step {key!r}: the campaign is stopping", fix="run `evotrain run` again to resume")

    def submit(self, request: StepRequest) -> JobRef:
        if self.stopped:
            raise self._refuse(request.key)
        with self._guard:
            self._submitting += 1
        try:
            ref = self.inner.submit(request)  # may block on free slots while stop() runs
            if self.stopped:  # started after close() swept the jobs: cancel it here
                self.inner.cancel(ref)
                raise self._refuse(request.key)
            return ref
        finally:
            with self._guard:
                self._submitting -= 1
                self._guard.notify_all()

    def poll(self, job: JobRef) -> StepOutcome | None:
        if self.stopped:
            raise self._refuse(job.key)
        outcome = self.inner.poll(job)
        if self.stopped:  # the outcome may be the stop's own cancel
            raise self._refuse(job.key)
        return outcome

    def cancel(self, job: JobRef) -> None:
        self.inner.cancel(job)

    def recover(self, job: JobRef) -> JobRef | None:
        if self.stopped:
            raise self._refuse(job.key)
        if job.executor != self.name and self.abandon_foreign is not None:
            # Started on another executor (the campaign switched): stop it there, then the step runs here.
            self.abandon_foreign(job)
            return None
        return self.inner.recover(job)

    def stop(self) -> None:
        """Refuse further work, cancel every job in flight, and wait for submissions under way to be undone."""
        self._stopped.set()
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
        deadline = time.monotonic() + self.submit_wait_s
        with self._guard:
            self._guard.wait_for(lambda: self._submitting == 0, timeout=max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


@contextlib.contextmanager
def stop_on_signals(executor: StoppableExecutor, say: Callable[[str], None] = print) -> Iterator[None]:
    """While inside: SIGINT or SIGTERM cancels the executor's jobs and raises KeyboardInterrupt in the main
    thread, which unwinds the campaign; a second signal exits at once. Outside the main thread: no handlers."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if executor.stopped:
            os._exit(128 + signum)
        say(f"{signal.Signals(signum).name}: cancelling the running steps (again to exit at once)")
        executor.stop()
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
