"""Resume a training run after the device lost its state (issue 17, item 3).

A device can reset in the middle of a run (watchdog, power, a reset line, a protocol RESET
from elsewhere) and an emulator can die (QEMU killed). `Resumer` notices it — the link's
`DeviceRebooted` (boot banner after HELLO), a BAD_STATE NAK once the session had set the
device up, or a broken link while the target's process has exited — restarts a dead
target through `Target.reset()`, and restores the device from the host's copy:

- model (BACKBONE_INIT/WRITE, MODEL_INIT + the run's initial parameters), optimiser and
  strategy configuration (TRAIN_CONFIG) and the data set (DATA_CONFIG/WRITE), exactly as
  `TrainingSession.load_device` sent them at the start;
- then every state-changing request of the run so far (SELECT, TRAIN_STEP with the same
  batches), in order. The firmware is deterministic, so this rebuilds *all* device state
  exactly: parameters, momentum buffers, TinyProp's Y_max, NEq's velocity history, the
  random-budget generator, the masks. Each replayed result is checked bit for bit
  against the one recorded the first time; a difference stops the run (RigError).

Then the interrupted request runs again. The golden model is never touched: it already
holds the state after the last agreed step. The protocol has no message to write momentum
or strategy state, so a restore from the last parameters alone could not be exact; replay
costs device time proportional to the steps done so far (no comparisons, no read-backs).

Resumes per run are bounded (`max_resumes`): a crash loop ends as a RigError naming each
cause.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from rig.errors import DeviceNak, LinkError, LinkTimeout, RigError
from rig.link.errors import DeviceRebooted
from rig.link.link import TrafficEvent
from rig.protocol import NakReason, SelectResult, StepResult

if TYPE_CHECKING:
    from rig.session import TrainingSession
    from rig.targets.base import Target

T = TypeVar("T")

DEFAULT_MAX_RESUMES = 3
_EXIT_WAIT_S = 0.5  # a killed emulator closes its socket a moment before it is reaped


class ResumeBudgetSpent(RigError):
    """The device lost its state more often than the run allows (a crash loop)."""


@dataclass
class ResumeEvent:
    """One resume: why, where in the run, and what it took."""

    cause: str  # "device rebooted", "target exited", "device lost its state (BAD_STATE)"
    detail: str  # the error that showed it
    epoch: int
    step: int  # steps completed when it happened (the next one, or its read-back, reruns)
    target_exit: str = ""  # how the target's process ended (QEMU's exit status), if it did
    restarted_target: bool = False
    replayed_steps: int = 0
    replayed_selects: int = 0
    restored: str = ""  # what was restored and how exactly
    wall_s: float = 0.0

    def summary(self) -> str:
        exit_ = f" ({self.target_exit})" if self.target_exit else ""
        restart = "target restarted, " if self.restarted_target else ""
        return (f"epoch {self.epoch} after step {self.step}: {self.cause}{exit_}; "
                f"{restart}{self.restored}, {self.wall_s:.2f} s")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Op:
    kind: str  # "step" | "select"
    indices: np.ndarray | None
    result: StepResult | SelectResult


@dataclass
class Resumer:
    """Watches a session's device requests and resumes after a reset (module doc).

    `target`: restarted when its process exited (None: a reboot is still resumed, a dead
    target is not). `max_resumes`: per run; 0 turns resuming off. `notify`: called with
    each event as it starts (the CLI prints it)."""

    target: Target | None = None
    max_resumes: int = DEFAULT_MAX_RESUMES
    notify: Callable[[ResumeEvent], None] | None = None
    events: list[ResumeEvent] = field(default_factory=list)
    _ops: list[_Op] = field(default_factory=list)
    _replaying: bool = False

    # -- the session's hooks -------------------------------------------------------------

    def call(self, session: TrainingSession, fn: Callable[[], T], epoch: int = 0) -> T:
        """Run the device phase `fn`; when the device lost its state meanwhile, restore it
        and run `fn` again."""
        while True:
            try:
                return fn()
            except Exception as exc:
                if self._replaying or not session._prepared:
                    raise
                cause = self.cause_of(exc)
                if cause is None:
                    raise
                self._recover(session, exc, cause, epoch)

    def record_step(self, indices: np.ndarray, result: StepResult) -> None:
        if not self._replaying:
            self._ops.append(_Op("step", np.array(indices, copy=True), result))

    def record_select(self, result: SelectResult) -> None:
        if not self._replaying:
            self._ops.append(_Op("select", None, result))

    # -- diagnosis -----------------------------------------------------------------------

    def cause_of(self, exc: BaseException) -> str | None:
        """Why `exc` means the device lost its state, or None when it does not."""
        if isinstance(exc, DeviceRebooted):
            return "device rebooted"
        if isinstance(exc, DeviceNak) and exc.reason == NakReason.BAD_STATE:
            return "device lost its state (BAD_STATE after set-up)"
        if isinstance(exc, LinkError) and self._target_exit(wait=not isinstance(
                exc, LinkTimeout)):
            return "target exited"
        return None

    def _target_exit(self, wait: bool = False) -> str:
        if self.target is None:
            return ""
        deadline = time.monotonic() + (_EXIT_WAIT_S if wait else 0.0)
        while True:
            status = self.target.exit_status()
            if status is not None or time.monotonic() >= deadline:
                return status or ""
            time.sleep(0.01)

    # -- recovery ------------------------------------------------------------------------

    def _recover(self, session: TrainingSession, exc: Exception, cause: str,
                 epoch: int) -> None:
        while True:
            if len(self.events) >= self.max_resumes:
                causes = "; ".join(e.summary() for e in self.events) or "none allowed"
                raise ResumeBudgetSpent(
                    f"the device lost its state again ({cause}: {exc}) after "
                    f"{len(self.events)} resume(s) (max_resumes {self.max_resumes}): "
                    f"{causes}") from exc
            t0 = time.perf_counter()
            ev = ResumeEvent(cause, _first_line(exc), epoch, session._step_index)
            if cause == "target exited":
                ev.target_exit = self._target_exit()
            self.events.append(ev)
            if session.report is not None:
                session.report.resumes.append(ev)
            link = session.device.link
            if link.log is not None:  # the traffic log says why the device starts over
                exit_ = f" ({ev.target_exit})" if ev.target_exit else ""
                link.log(TrafficEvent(time.time(), "info", note=(
                    f"resume {len(self.events)}/{self.max_resumes}: {cause}{exit_}:"
                    f" {ev.detail}")))
            if self.notify is not None:
                self.notify(ev)
            try:
                if ev.target_exit:
                    self._restart(session)
                    ev.restarted_target = True
                self._restore(session, ev)
                ev.wall_s = time.perf_counter() - t0
                return
            except Exception as again:
                ev.wall_s = time.perf_counter() - t0
                ev.restored = f"restore failed: {again}"
                next_cause = self.cause_of(again)
                if next_cause is None:
                    raise
                exc, cause = again, next_cause

    def _restart(self, session: TrainingSession) -> None:
        """A new emulator/process; the link goes on over its transport."""
        from rig.link.faults import FaultyTransport

        assert self.target is not None
        link = session.device.link
        old = link.transport
        transport = self.target.reset()
        if isinstance(old, FaultyTransport):  # keep injecting the same faults
            transport = FaultyTransport(transport, old.spec)
        link.reattach(transport)

    def _restore(self, session: TrainingSession, ev: ResumeEvent) -> None:
        self._replaying = True
        try:
            hello = session.device.hello()
            assert session.report is not None
            first = session.report.hello
            if (hello.board, hello.build_hash) != (first.board, first.build_hash):
                raise RigError(f"after the reset the device answers as {hello.board} build "
                               f"{hello.build_hash[:12]}, not {first.board} build "
                               f"{first.build_hash[:12]}: cannot resume")
            session.load_device()
            for op in self._ops:
                if op.kind == "select":
                    got_sel = session._select_on_device()
                    _same("SELECT", op.result, got_sel)
                    ev.replayed_selects += 1
                else:
                    assert op.indices is not None
                    got_step = session._train_on_device(op.indices)
                    _same(f"TRAIN_STEP {ev.replayed_steps + 1}", op.result, got_step)
                    ev.replayed_steps += 1
        finally:
            self._replaying = False
        ev.restored = (f"restored exactly: model, data, TRAIN_CONFIG, then {ev.replayed_steps}"
                       f" step(s) and {ev.replayed_selects} SELECT(s) replayed, each result"
                       " identical to the first run")


def _first_line(exc: BaseException) -> str:
    """The error's first line without the hex dump of the last bytes."""
    text = str(exc).splitlines()[0] if str(exc) else repr(exc)
    return text.split("; last bytes:")[0]


def _same(what: str, first: StepResult | SelectResult, again: StepResult | SelectResult
          ) -> None:
    """The replayed result must equal the recorded one bit for bit (counters aside: they
    are timings)."""
    def key(r: StepResult | SelectResult) -> tuple[Any, ...]:
        if isinstance(r, StepResult):
            return (np.float32(r.loss).tobytes(), r.correct, r.skipped, tuple(r.k))
        return (tuple(r.k), r.trainable_params)

    if key(first) != key(again):
        raise RigError(f"resume: replayed {what} differs from the first run ({again} vs "
                       f"{first}): the device is not deterministic, cannot resume exactly")


__all__ = ["DEFAULT_MAX_RESUMES", "ResumeBudgetSpent", "ResumeEvent", "Resumer"]
