"""`rig profile`: train with several strategies on one target and record what each phase
costs: predicted MACs (golden model), instructions (QEMU plugin), the device's own
counters, and, with a power monitor, measured energy per step. The data model and
the analysis are in `rig.profile.report`, the rendering in `rig.profile.render`; this module
drives the device.

    run = profile_target(target, lab, ["full", "tinyprop"], spec, out_dir)
    summary = summarize(run)            # rig.profile.report
    write_report(run, summary, out_dir) # rig.profile.render: JSON + HTML + PNG

One QEMU process runs every strategy in turn (RESET between them); the plugin's records
are matched to TRAIN_STEPs one by one (`InstructionCounter.take_step`). The golden model
runs alongside as in `rig run` and its verdicts are kept, so a profile of a device that
trains wrongly says so. Within an epoch the golden model runs free; at each epoch end it is
re-synced to the device (as the strategy experiment does), so its MAC prediction keeps
following the device's trajectory.

This module sits at the session layer (it imports `rig.session`), like `rig.experiment`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from rig import strategies
from rig.config import Board, LabConfig
from rig.connection import Connection, connect
from rig.device import Device
from rig.errors import LinkError, RigError
from rig.fit import fit_spec
from rig.golden.macs import select_macs
from rig.link.link import Link
from rig.profile.energy import PRESETS, BoardPowerModel, MarkerMismatch
from rig.profile.icount import InstructionCounter, StepCounts
from rig.profile.report import ProfileRun, SelectProfile, StepProfile, StrategyRun
from rig.profile.unicorn_ref import UnicornError, UnicornFirmware
from rig.protocol import PHASES
from rig.session import EpochRecord, Inspect, RunSpec, StepRecord, TrainingSession
from rig.targets.base import Target

DEFAULT_STRATEGIES = ("full", "tinyprop")
#: seconds a power monitor keeps sampling after the last step of a strategy
MONITOR_TAIL_S = 0.2


# ------------------------------------------------------------------ configuration


def power_model(board: Board | None, board_name: str, clock_hz: float) -> BoardPowerModel:
    """The energy model at the board's clock: lab_config `boards.<b>.power` (voltage_v,
    current_ma_per_mhz) when present; else the preset of the board's chip (rig.profile.energy
    PRESETS, matched by board name, pyocd target or QEMU machine: nucleo-f429zi's
    stm32f429xi -> stm32f429); else a generic Cortex-M figure, marked as an assumption."""
    power = getattr(board, "power", None) if board is not None else None
    if power is not None:
        return BoardPowerModel(board_name, float(power.voltage_v),
                               float(power.current_ma_per_mhz), float(clock_hz),
                               float(getattr(power, "static_current_ma", 0.0)),
                               f"lab_config boards.{board_name}.power")
    names = [n for n in (board_name, getattr(board, "pyocd_target", None),
                         getattr(board, "qemu_machine", None)) if n]
    keys = sorted((k for k in PRESETS if any(n.startswith(k) for n in names)), key=len)
    if keys:
        preset = PRESETS[keys[-1]]
        return replace(preset, clock_hz=float(clock_hz)) if clock_hz else preset
    return BoardPowerModel(board_name, 3.3, 0.1, float(clock_hz or 25e6), 0.0,
                           "ASSUMPTION: no power: section and no preset; generic Cortex-M "
                           "0.1 mA/MHz at 3.3 V")


# ------------------------------------------------------------------ the run


class _MarkingDevice:
    """The device client, with a power-monitor mark around every TRAIN_STEP."""

    def __init__(self, device: Device, monitor: Any, label: Callable[[], str]) -> None:
        self._device = device
        self._monitor = monitor
        self._label = label

    def train_step(self, *a: Any, **kw: Any) -> Any:
        self._monitor.mark(self._label())
        try:
            return self._device.train_step(*a, **kw)
        finally:
            self._monitor.mark(None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._device, name)


ProgressHook = Callable[[str, StepProfile], None]


def profile_session(conn: Connection, counter: InstructionCounter | None, strategy: str,
                    spec: RunSpec, *, monitor: Any = None,
                    on_step: ProgressHook | None = None) -> StrategyRun:
    """Train one strategy on a connected device through `TrainingSession.run` (the same
    epoch loop as `rig run`), recording every step's plugin record and counters."""
    spec = replace(spec, strategy=strategy)
    run = StrategyRun(strategy, {f.name: getattr(spec, f.name) for f in fields(spec)})
    current: dict[str, Any] = {"label": "", "epoch": 0}
    device: Any = conn.device
    if monitor is not None:
        device = _MarkingDevice(conn.device, monitor, lambda: current["label"])
    select_macs_each = select_macs(spec.dims, spec.val_samples,
                                   velocity=strategies.get(strategy).velocity).selection

    def take_records() -> StepCounts | None:
        if counter is None:
            return None
        step = None
        for r in counter.new_records():
            if r.kind == "select_msg":
                run.selects.append(SelectProfile(strategy, current["epoch"],
                                                 select_macs_each, r))
            elif step is None:
                step = r
            else:
                raise RigError(f"{counter.out_file}: two step records for one TRAIN_STEP")
        if step is None:
            raise RigError(f"{counter.out_file}: no step record for TRAIN_STEP "
                           f"{len(run.steps) + 1} of {strategy} (did the target restart?)")
        return step

    def step_hook(rec: StepRecord) -> None:
        current["epoch"] = rec.epoch
        dev = rec.device
        sp = StepProfile(
            strategy=strategy, epoch=rec.epoch, index=len(run.steps) + 1,
            skipped=bool(dev.skipped), k=[int(v) for v in dev.k],
            golden_k=[int(v) for v in rec.golden.k], counters=dict(dev.phase_counters),
            macs=dict(zip(PHASES, rec.golden.macs.as_tuple(), strict=True)),
            icount=take_records(), wall_s=rec.wall_s, ok=rec.verdict.ok)
        run.steps.append(sp)
        current["label"] = f"{strategy} step {len(run.steps) + 1}"
        if on_step is not None:
            on_step(strategy, sp)

    def epoch_hook(rec: EpochRecord) -> None:
        current["epoch"] = rec.epoch + 1
        run.epochs.append({"epoch": rec.epoch, "steps": rec.steps, "skipped": rec.skipped,
                           "device_acc": rec.device_acc, "golden_acc": rec.golden_acc,
                           "device_loss": rec.device_loss, "ok": rec.ok})

    session = TrainingSession(device, spec, inspect=Inspect(resync=True), on_step=step_hook,
                              on_epoch=epoch_hook)
    session.prepare()
    if counter is not None:
        counter.new_records()  # nothing of this strategy ran yet
    current["label"] = f"{strategy} step 1"
    t0 = time.perf_counter()
    report = session.run()
    if counter is not None:
        take_tail = [r for r in counter.new_records() if r.kind == "select_msg"]
        run.selects += [SelectProfile(strategy, current["epoch"], select_macs_each, r)
                        for r in take_tail]
    run.wall_s = time.perf_counter() - t0
    run.ok = report.ok
    run.failures = report.failures
    return run


def profile_target(target: Target, lab: LabConfig, strategies: Sequence[str], spec: RunSpec,
                   out_dir: Path, *, overrides: dict[str, Any] | None = None,
                   icount: bool = True, max_steps: int | None = None,
                   monitor: Any = None, monitor_voltage_v: float | None = None,
                   monitor_rate_hz: float = 100_000.0,
                   on_step: ProgressHook | None = None) -> ProfileRun:
    """Start `target` (with the instruction-count plugin if it is QEMU and `icount`), train
    every strategy in turn, and return everything measured. `spec` is the lab's run; the
    board's `training:` overrides, then `overrides` (None values ignored), then the device's
    max_batch shape the run actually done (`ProfileRun.notes` says what changed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    board = target.board
    counter = None
    if icount and hasattr(target, "set_plugin"):
        qemu: Any = target  # a QEMU target (it takes a plugin): it boots a known ELF
        counter = InstructionCounter(qemu.firmware_path(), out_dir / "icount.jsonl")
        counter.attach(target)
    d = lab.defaults
    monitor_notes = []
    # A monitor that supplies the board is configured (supply on) before the target
    # starts; one that powers it only while acquiring (LPM01A) records one trace over the
    # whole run, started before the target, split per strategy afterwards.
    continuous = monitor is not None and monitor.powers_target_only_while_running
    if monitor is not None:
        monitor_notes = configure_monitor(monitor, board, monitor_voltage_v, monitor_rate_hz)
    if continuous:
        monitor.start()
    with connect(target, timeout=d.timeout_s, retries=d.retries) as conn:
        hello = conn.hello
        spec, notes = fit_spec(spec, hello, board.training if board is not None else None,
                               {k: v for k, v in (overrides or {}).items() if v is not None})
        if max_steps is not None:  # one epoch over just enough samples
            n = max_steps * spec.batch
            if spec.epochs != 1 or spec.train_samples == 0 or spec.train_samples > n:
                notes.append(f"--steps {max_steps}: 1 epoch over {n} training samples")
                spec = replace(spec, epochs=1, train_samples=n)
        board_name = board.name if board is not None else hello.board
        clock = float(board.clock_hz if board is not None and board.clock_hz else
                      hello.clock_hz or 0)
        run = ProfileRun(board=board_name, cpu=board.cpu if board is not None else "unknown",
                         clock_hz=clock, target=target.describe(), hello=hello,
                         counter_label=target.counter_label,
                         power=power_model(board, board_name, clock), icount=counter is not None,
                         monitor=monitor.describe() if monitor is not None else None,
                         notes=notes + monitor_notes)
        missing = [s for s in strategies if not hello.supports(s)]
        if missing:
            raise RigError(f"firmware on {hello.board} does not implement "
                           f"{', '.join(missing)}; it has {', '.join(hello.strategy_names)}")
        per_strategy = monitor is not None and not continuous
        for strategy in strategies:
            if per_strategy:
                monitor.start()
            try:
                sr = profile_session(conn, counter, strategy, spec, monitor=monitor,
                                     on_step=on_step)
            finally:
                if per_strategy:
                    time.sleep(MONITOR_TAIL_S)  # let the stream cover the last window
                trace = monitor.stop() if per_strategy else None
            if trace is not None:
                _take_measured(run, [sr], trace)
            run.runs.append(sr)
        if continuous:
            time.sleep(MONITOR_TAIL_S)
            _take_measured(run, run.runs, monitor.stop())
    return run


def _take_measured(run: ProfileRun, runs: Sequence[StrategyRun], trace: Any) -> None:
    """Measured step energies of `trace` into each strategy's run (by window label: the
    marks say `<strategy> step <n>`); a marker mismatch is recorded, not a figure."""
    who = ", ".join(r.strategy for r in runs)
    try:
        measured, dropped = measured_steps(trace)
    except MarkerMismatch as exc:  # no figure; the rest is still reported
        run.measurement_errors.append(f"{who}: {exc}")
        return
    if dropped:  # the figures of the covered steps stay, but the run is not complete
        run.measurement_errors.append(
            f"{who}: {dropped} of {dropped + len(measured)} step window(s) lie past the end"
            f" of the {trace.instrument} trace ({trace.duration_s:.3f} s): its stream "
            "lagged the host")
    for sr in runs:
        mine = [m for m in measured if len(runs) == 1 or
                m.label.startswith(f"{sr.strategy} step ")]
        sr.measured, sr.measured_dropped = mine, dropped if len(runs) == 1 else 0


def configure_monitor(monitor: Any, board: Board | None, voltage_v: float | None,
                      rate_hz: float) -> list[str]:
    """Configure (and, for a monitor that supplies the board, power) the monitor before
    the target starts, and check the board's modelled current against its range (an
    InstrumentError if it would clip). Returns notes for the report."""
    name = board.name if board is not None else "target"
    model = power_model(board, name, float(board.clock_hz or 0) if board is not None else 0.0)
    monitor.voltage_basis = ("--monitor-voltage" if voltage_v else
                             f"power model of {name}: {model.basis}")
    notes = []
    warning = monitor.check_current(model.current_a)
    if warning:
        notes.append(warning)
    monitor.configure(voltage_v=voltage_v or model.voltage_v, sample_rate_hz=rate_hz)
    if monitor.sample_rate_hz != rate_hz:
        notes.append(f"{monitor.describe()}: {monitor.sample_rate_hz:g} samples/s delivered "
                     f"for {rate_hz:g} requested")
    return notes


def measured_steps(trace: Any) -> tuple[list[Any], int]:
    """Energy of every marked TRAIN_STEP window that the trace covers; windows past its
    end (the instrument's stream lagged the host clock when it stopped) are dropped and
    counted, never extrapolated."""
    t_end = float(trace.t_s[-1]) if len(trace.t_s) else 0.0
    windows = trace.windows
    inside = [w for w in windows if w.t1_s <= t_end]
    return trace.window_energy(inside), len(windows) - len(inside)




def run_on_unicorn(elf: str | Path, body: Callable[[Device, UnicornFirmware], None], *,
                   timeout: float = 2.0, **kw: Any) -> UnicornFirmware:
    """Boot `elf` on unicorn (the independent emulator), connect the rig's own device client
    to it, and run `body(device, firmware)`; the firmware object holds the window records."""
    fw = UnicornFirmware(elf, **kw)
    try:
        body(Device(Link(fw, timeout=timeout, retries=0)), fw)
    except LinkError as exc:
        raise UnicornError(f"{fw.name}: link error: {exc}") from exc
    return fw
