"""Resume after a device reset (rig.resume): a killed QEMU, a killed native process and a
protocol RESET sent behind the session's back; the run completes with one resume, agrees
with the golden model and (native) ends with the parameters of an uninterrupted run."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rig import cli
from rig.config import Board
from rig.connection import connect
from rig.errors import RigError
from rig.protocol import MsgType, StepResult
from rig.resume import ResumeBudgetSpent, Resumer
from rig.session import Inspect, RunReport, RunSpec, StepRecord, TrainingSession
from rig.targets.base import Target
from rig.targets.native import NativeTarget
from rig.targets.qemu import QemuTarget

BOARD = Board(name="mps2-an386", cpu="cortex-m4f", clock_hz=25_000_000,
              firmware="mps2-an386", qemu_machine="mps2-an386")

#: a mask strategy with momentum: replay must rebuild NEq's velocity history, the masks of
#: SELECT and the momentum buffers, or the steps after the resume disagree
NEQ = RunSpec(strategy="neq", train_samples=96, test_samples=32, val_samples=32, epochs=2,
              batch=16, momentum=0.9)
TINYPROP = RunSpec(strategy="tinyprop", train_samples=64, test_samples=32, epochs=1,
                   batch=16, momentum=0.9)

Hook = Callable[[Any, Target, StepRecord], None]


def _run(target: Target, spec: RunSpec, hook: Hook | None = None, *,
         max_resumes: int = 3, inspect: Inspect | None = None
         ) -> tuple[RunReport, list[tuple[np.ndarray, np.ndarray]]]:
    with connect(target) as conn:
        def on_step(rec: StepRecord) -> None:
            if hook is not None:
                hook(conn, target, rec)

        session = TrainingSession(conn.device, spec, inspect=inspect, on_step=on_step,
                                  resumer=Resumer(target, max_resumes))
        report = session.run()
        return report, conn.device.read_model()


def _once_after(step: int, action: Callable[[Any, Target], None]) -> Hook:
    def hook(conn: Any, target: Target, rec: StepRecord) -> None:
        if rec.index == step:
            action(conn, target)
    return hook


def _kill(conn: Any, target: Target) -> None:
    pid = getattr(target, "pid", None)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)


def _protocol_reset(conn: Any, target: Target) -> None:
    # Straight through the link: the Device object and the session do not hear of it.
    conn.device.link.request(MsgType.RESET)


def _assert_one_resume(report: RunReport, cause: str) -> None:
    assert report.ok, report.failures
    assert report.complete and not report.cause
    assert len(report.resumes) == 1, [e.summary() for e in report.resumes]
    ev = report.resumes[0]
    assert ev.cause == cause, ev.summary()
    assert ev.restored.startswith("restored exactly"), ev.summary()


def test_protocol_reset_mid_run_resumes_once_native() -> None:
    clean, clean_params = _run(NativeTarget("n", {}), NEQ)
    assert not clean.resumes
    # step 8 = epoch 1, after its SELECT and two steps
    report, params = _run(NativeTarget("n", {}), NEQ, _once_after(8, _protocol_reset))
    _assert_one_resume(report, "device lost its state (BAD_STATE after set-up)")
    ev = report.resumes[0]
    assert (ev.epoch, ev.step, ev.replayed_steps, ev.replayed_selects) == (1, 8, 8, 2)
    assert not ev.restarted_target
    assert len(report.steps) == len(clean.steps)
    # the replay rebuilt the device's whole state: the run ends where the clean one did
    for (w, b), (cw, cb) in zip(params, clean_params, strict=True):
        assert w.tobytes() == cw.tobytes() and b.tobytes() == cb.tobytes()
    assert [s.device.loss for s in report.steps] == [s.device.loss for s in clean.steps]


def test_killed_native_process_is_restarted_and_resumes_once() -> None:
    report, _ = _run(NativeTarget("n", {}), NEQ, _once_after(3, _kill))
    _assert_one_resume(report, "target exited")
    ev = report.resumes[0]
    assert ev.restarted_target and "signal 9" in ev.target_exit
    assert (ev.step, ev.replayed_steps) == (3, 3)


def test_crash_loop_ends_as_a_rig_error_with_a_partial_report() -> None:
    """A process killed after every step beyond step 2: the resume budget runs out."""
    def kill_always(conn: Any, target: Target, rec: StepRecord) -> None:
        if rec.index >= 2:
            _kill(conn, target)

    target = NativeTarget("n", {})
    with connect(target) as conn:
        session = TrainingSession(conn.device, NEQ, resumer=Resumer(target, max_resumes=2),
                                  on_step=lambda rec: kill_always(conn, target, rec))
        with pytest.raises(ResumeBudgetSpent, match="max_resumes 2") as exc:
            session.run()
    assert isinstance(exc.value, RigError)
    report = session.report
    assert report is not None and not report.complete
    assert "ResumeBudgetSpent" in report.cause
    assert len(report.resumes) == 2 and len(report.steps) >= 2


@pytest.mark.hil
def test_killed_qemu_is_restarted_and_the_run_resumes_once() -> None:
    target = QemuTarget("t", {"board": BOARD})
    report, _ = _run(target, TINYPROP, _once_after(2, _kill),
                     inspect=Inspect(params_every=1, resync=True))
    _assert_one_resume(report, "target exited")
    ev = report.resumes[0]
    assert ev.restarted_target and "killed by signal 9" in ev.target_exit
    assert (ev.step, ev.replayed_steps) == (2, 2)
    assert len(report.steps) == 4
    assert target.exit_status() is None  # closed by connect's context, not left running


# --- the CLI: summary, --json with resumes, partial report when the budget runs out -----

SMALL = ["--train-samples", "64", "--test-samples", "32", "--epochs", "1"]


def _kill_native_after(monkeypatch: pytest.MonkeyPatch, first: int, last: int) -> None:
    """SIGKILL the native firmware process after run steps first..last (`rig run` builds
    its own session, so the hook goes on TrainingSession.step)."""
    pids: list[int] = []
    start, step = NativeTarget.start, TrainingSession.step

    def started(self: NativeTarget) -> Any:
        transport = start(self)
        assert self.pid is not None
        pids.append(self.pid)
        return transport

    def stepped(self: TrainingSession, indices: np.ndarray, epoch: int = 0) -> StepRecord:
        rec = step(self, indices, epoch)
        if first <= rec.index <= last:
            os.kill(pids[-1], signal.SIGKILL)
        return rec

    monkeypatch.setattr(NativeTarget, "start", started)
    monkeypatch.setattr(TrainingSession, "step", stepped)


def test_cli_reports_the_resume(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    _kill_native_after(monkeypatch, 2, 2)
    out = tmp_path / "report.json"
    code = cli.main(["run", "--target", "native", *SMALL, "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "resumed 1 time(s)" in text and "target exited" in text
    data = json.loads(out.read_text())
    assert data["complete"] is True and data["ok"] is True and data["cause"] == ""
    assert len(data["resumes"]) == 1
    ev = data["resumes"][0]
    assert ev["cause"] == "target exited" and "signal 9" in ev["target_exit"]
    assert ev["restarted_target"] and ev["replayed_steps"] == 2


def test_cli_writes_a_partial_report_when_resumes_run_out(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    _kill_native_after(monkeypatch, 2, 10**6)
    out = tmp_path / "report.json"
    code = cli.main(["run", "--target", "native", *SMALL, "--max-resumes", "1",
                     "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 2, text
    data = json.loads(out.read_text())
    assert data["complete"] is False and data["ok"] is False
    assert data["cause"].startswith("ResumeBudgetSpent") and "max_resumes 1" in data["cause"]
    # steps 1-3 were measured (step 3 after the one resume), then the process died again
    assert [s["step"] for s in data["steps"]] == [1, 2, 3]
    assert len(data["resumes"]) == 1 and data["epochs"] == []
    assert data["link"]["requests"] > 0


def test_cli_rejects_negative_max_resumes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--target", "native", "--max-resumes", "-1"]) == 2
    assert "--max-resumes: expected an integer >= 0, got -1" in capsys.readouterr().out


@pytest.mark.hil
@pytest.mark.skipif(shutil.which("gdb-multiarch") is None, reason="gdb-multiarch missing")
def test_core_reset_of_a_running_qemu_is_noticed_by_its_banner_and_resumed() -> None:
    """A system reset through QEMU's gdbstub (the emulator keeps running, as a board whose
    reset line is pulled): the boot banner arrives mid-run and the link raises
    DeviceRebooted; the run resumes without restarting the target."""
    target = QemuTarget("t", {"board": BOARD, "flash": "gdb"})

    def core_reset(conn: Any, target: Target) -> None:
        pid = getattr(target, "pid", None)
        target.reset()  # behind the session's back
        assert getattr(target, "pid", None) == pid  # the same emulator

    report, _ = _run(target, TINYPROP, _once_after(2, core_reset))
    _assert_one_resume(report, "device rebooted")
    ev = report.resumes[0]
    assert not ev.restarted_target and not ev.target_exit
    assert "tinyrig" in ev.detail  # the banner
    assert (ev.step, ev.replayed_steps) == (2, 2)


def test_cli_ctrl_c_mid_run_writes_a_partial_report(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    step = TrainingSession.step

    def interrupted(self: TrainingSession, indices: np.ndarray, epoch: int = 0) -> StepRecord:
        rec = step(self, indices, epoch)
        if rec.index == 2:
            raise KeyboardInterrupt
        return rec

    monkeypatch.setattr(TrainingSession, "step", interrupted)
    out = tmp_path / "report.json"
    code = cli.main(["run", "--target", "native", *SMALL, "--json", str(out)])
    assert code == 130, capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["complete"] is False and data["cause"] == "KeyboardInterrupt"
    assert [s["step"] for s in data["steps"]] == [1, 2] and data["resumes"] == []


def test_a_replay_that_differs_from_the_first_run_stops_the_run() -> None:
    """The bit-for-bit check of replayed results can fail: a recorded loss is altered
    before the reset, so its replay no longer matches."""
    resumer = Resumer(None)

    def tamper_and_reset(conn: Any, target: Target) -> None:
        first = resumer._ops[0].result
        assert isinstance(first, StepResult)
        resumer._ops[0].result = dataclasses.replace(first, loss=first.loss + 1.0)
        _protocol_reset(conn, target)

    target = NativeTarget("n", {})
    with connect(target) as conn:
        hook = _once_after(2, tamper_and_reset)
        session = TrainingSession(conn.device, TINYPROP, resumer=resumer,
                                  on_step=lambda rec: hook(conn, target, rec))
        with pytest.raises(RigError, match="replayed TRAIN_STEP 1 differs"):
            session.run()
    assert session.report is not None and not session.report.complete
    assert len(session.report.resumes) == 1
