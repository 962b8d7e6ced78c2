"""Marker windows end to end: the simulated PPK2's D0 driven live through its logic-input
API (`EdgeQueue`), `rig profile --monitor ppk2` against it, and the monitor options as the
command line gives them.

Injected truth: the simulated DUT (`MarkedLoad`) draws 20 mA while the marker is high and
1 mA otherwise, so every pulse carries V · 20 mA · (fall − rise), computed from the edge
times alone. Until board twins exist, the edges come from the host around each
TRAIN_STEP call (standing in for the firmware's marker GPIO, which sits inside that call):
what is checked is everything after the pin — the instrument's sampling, the PPK2 wire
protocol and decoding, window finding, labelling and the per-step figure.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig import cli
from rig.device import Device
from rig.errors import RigError
from rig.profile.monitors import create_monitor, monitor_from_options, monitor_kinds
from rig.profile.monitors.base import PowerMonitor
from rig.profile.monitors.sim.logic import EdgeQueue, MarkedLoad
from rig.profile.monitors.sim.ppk2_sim import PPK2Sim
from rig.profile.monitors.sim.waveform import training_step_waveform

V = 3.3
IDLE_A, ACTIVE_A = 0.001, 0.020


def _pulse(edges: EdgeQueue, seconds: float) -> None:
    edges.set(1)
    time.sleep(seconds)
    edges.set(0)


def test_live_edges_drive_the_simulated_d0_and_the_load():
    edges = EdgeQueue(channel=0)
    load = MarkedLoad(edges, IDLE_A, ACTIVE_A)
    with PPK2Sim(load, logic=edges) as sim, \
            create_monitor("ppk2", port=sim.port, timeout_s=1.0) as mon:
        mon.configure(V, 100_000)
        mon.start()
        for label, d in (("a", 0.03), ("b", 0.05), ("c", 0.02)):
            time.sleep(0.01)
            with mon.window(label):
                _pulse(edges, d)
        time.sleep(0.05)
        tr = mon.stop()
    res = tr.window_energy()
    truth = load.truth_j(V)
    assert [r.label for r in res] == ["a", "b", "c"] and len(truth) == 3
    for r, e in zip(res, truth, strict=True):
        assert "gpio marker D0" in r.detail
        assert r.energy_j == pytest.approx(e, rel=5e-3)


def test_ampere_mode_powers_the_dut_and_the_simulator_models_the_switch():
    """Without DeviceRunningSet 0x0C 0x01 the simulated DUT is dead (no current, no
    marker): the adapter's default must power it in ampere mode, or this fails."""
    wave = training_step_waveform(IDLE_A, 0.005, ACTIVE_A)
    with PPK2Sim(wave) as sim, create_monitor("ppk2", port=sim.port) as mon:
        mon.configure(V, 100_000)
        mon.start()  # the simulator has handled every configure byte once samples flow
        assert sim.commands[-2:] == [(0x0C, 1), (0x06,)] and mon.mode == "ampere"
        time.sleep(0.25)
        on = mon.stop()
    assert on.energy_j() > 0.5 * V * IDLE_A * on.duration_s
    assert len(on.gpio_windows(0)) == 1
    with PPK2Sim(wave) as sim, create_monitor("ppk2", port=sim.port, power_dut=False) as mon:
        mon.configure(V, 100_000)
        mon.start()
        time.sleep(0.25)
        off = mon.stop()
    assert (0x0C, 1) not in sim.commands
    assert abs(off.energy_j()) < 1e-3 * on.energy_j() and off.gpio_windows(0) == []
    assert not mon.supplies_target
    assert create_monitor("ppk2", port="x", mode="source").supplies_target


# -- monitor options as the command line gives them -------------------------------------

def test_command_line_options_are_typed_by_the_constructor():
    m = monitor_from_options("ppk2", ["port=/dev/ttyACM1", "marker_channel=None",
                                      "timeout_s=0.5", "counter_check=false"])
    assert m.marker_channel is None and m.timeout_s == 0.5 and m.counter_check is False
    assert monitor_from_options("ppk2", ["port=x", "marker_channel=3"]).marker_channel == 3
    for items, match in [
        (["port=x", "marker_channel=9"], "marker_channel must be 0..7"),
        (["port=x", "marker_channel=D0"], "marker_channel='D0': expected an integer or none"),
        (["port=x", "mode=amps"], "mode must be one of"),
        (["port=x", "colour=red"], "not an option of ppk2; known: port, mode"),
        (["port"], "expected KEY=VALUE"),
        (["port=x", "timeout_s=inf"], "timeout_s='inf': expected a number"),
    ]:
        with pytest.raises(RigError, match=match):
            monitor_from_options("ppk2", items)
    with pytest.raises(RigError, match="cannot be set from the command line"):
        monitor_from_options("joulescope", ["driver=x"])
    with pytest.raises(RigError, match="no logic inputs"):
        monitor_from_options("lpm01a", ["port=x", "marker_channel=0"])


_VALUES = st.one_of(st.sampled_from(["None", "none", "0", "1", "7", "8", "-1", "0x1", "2.5",
                                     "nan", "inf", "-inf", "true", "False", "", " ",
                                     "D0", "source", "ampere", "sw", "d7", "1e309"]),
                    st.text(max_size=12))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["ppk2", "joulescope", "lpm01a"]),
       pairs=st.lists(st.tuples(st.sampled_from(["port", "mode", "timeout_s",
                                                 "marker_channel", "counter_check",
                                                 "power_dut", "serial_number", "driver",
                                                 "trigger", "bogus", ""]), _VALUES),
                      max_size=5))
def test_any_option_value_gives_a_monitor_or_one_rig_error(kind, pairs):
    items = [f"{k}={v}" for k, v in pairs]
    try:
        mon = monitor_from_options(kind, items)
    except RigError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and "Traceback" not in msg
    else:
        assert isinstance(mon, PowerMonitor) and mon.state == "closed"


def test_every_registered_kind_parses_its_own_defaults():
    assert {"ppk2", "joulescope", "lpm01a"} <= set(monitor_kinds())


# -- rig profile --monitor ppk2, end to end ------------------------------------------------

def _need_qemu() -> None:
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not installed")


def _wire_marker(monkeypatch: pytest.MonkeyPatch, edges: EdgeQueue,
                 pulses_per_step: int = 1) -> None:
    """Stand-in for the firmware's marker GPIO: high around each TRAIN_STEP."""
    real = Device.train_step
    lock = threading.Lock()

    def train_step(self, *a, **kw):  # type: ignore[no-untyped-def]
        with lock:
            for _ in range(pulses_per_step - 1):  # a stray pulse, then a gap
                _pulse(edges, 0.002)
                time.sleep(0.002)
            if pulses_per_step:
                edges.set(1)
            try:
                return real(self, *a, **kw)
            finally:
                if pulses_per_step:
                    edges.set(0)

    monkeypatch.setattr(Device, "train_step", train_step)


def _profile(tmp_path: Path, port: str, *extra: str) -> int:
    return cli.main(["profile", "--target", "qemu", "--only", "--strategy", "full",
                     "--steps", "6", "--test-samples", "16", "--no-icount", "--no-charts",
                     "--out", str(tmp_path),
                     "--monitor", "ppk2", "--monitor-opt", f"port={port}",
                     "--monitor-voltage", str(V), *extra])


@pytest.mark.hil
@pytest.mark.slow
def test_rig_profile_ppk2_with_marker_measures_the_injected_energy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    _need_qemu()
    edges = EdgeQueue(channel=0)
    load = MarkedLoad(edges, IDLE_A, ACTIVE_A)
    _wire_marker(monkeypatch, edges)
    with PPK2Sim(load, logic=edges) as sim:
        code = _profile(tmp_path, sim.port)
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads((tmp_path / "profile.json").read_text())
    strategy = summary["summary"]["strategies"]["full"] if "summary" in summary else \
        summary["strategies"]["full"]
    em = strategy["energy_measured"]
    truth = load.truth_j(V)
    assert em["windows"] == len(truth) == 6
    assert "gpio marker D0" in em["detail"] and "voltage assumed 3.3 V" in em["detail"]
    assert "--monitor-voltage" in em["detail"]
    rel = em["per_step_j"] / float(np.mean(truth)) - 1
    assert abs(rel) < 0.01, (em, truth)
    assert "gpio marker D0" in out


@pytest.mark.hil
@pytest.mark.slow
@pytest.mark.parametrize("pulses, seen", [(0, 0), (2, 12)])
def test_rig_profile_exits_2_naming_both_counts_when_the_marker_is_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        pulses: int, seen: int):
    _need_qemu()
    edges = EdgeQueue(channel=0)
    _wire_marker(monkeypatch, edges, pulses_per_step=pulses)
    with PPK2Sim(MarkedLoad(edges, IDLE_A, ACTIVE_A), logic=edges) as sim:
        code = _profile(tmp_path, sim.port)
    out = capsys.readouterr().out.replace("\n", " ")
    assert code == 2, out
    assert f"{seen} marker pulse(s) on D0 for 6 marked step(s)" in out
    # What was measured is still written, with the error and without a measured figure.
    summary = json.loads((tmp_path / "profile.json").read_text())
    summary = summary.get("summary", summary)
    assert any("marker pulse(s) on D0" in e for e in summary["measurement_errors"])
    assert "energy_measured" not in summary["strategies"]["full"]
    assert "measurement error" in (tmp_path / "report.html").read_text()


def test_rig_profile_rejects_a_bad_monitor_option_before_any_target(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    code = cli.main(["profile", "--target", "qemu", "--out", str(tmp_path),
                     "--monitor", "ppk2", "--monitor-opt", "port=x",
                     "--monitor-opt", "marker_channel=None9"])
    out = capsys.readouterr().out
    assert code == 2 and "marker_channel='None9'" in out and "Traceback" not in out
    assert not (tmp_path / "profile.json").exists()


# -- power sequencing and limits ---------------------------------------------------------

class _Recording(PowerMonitor):
    """A monitor that logs its calls into `events` and returns a flat 10 mA trace."""

    kind = "recording"

    def __init__(self, events: list[str], *, supplies: bool = False,
                 only_while_running: bool = False) -> None:
        super().__init__(marker_channel=None)
        self.events = events
        self._supplies = supplies
        self._only_running = only_while_running
        self._t_start = 0.0

    @property
    def supplies_target(self) -> bool:
        return self._supplies

    @property
    def powers_target_only_while_running(self) -> bool:
        return self._only_running

    def _do_open(self) -> None: ...
    def _do_close(self) -> None: ...

    def _do_configure(self, voltage_v: float, sample_rate_hz: float) -> None:
        self.events.append("monitor.configure")

    def _do_start(self) -> None:
        self.events.append("monitor.start")
        self._t_start = time.monotonic()

    def _do_stop(self):  # type: ignore[no-untyped-def]
        from rig.profile.energy import Trace

        self.events.append("monitor.stop")
        t = np.arange(0.0, time.monotonic() - self._t_start + 0.05, 1e-3)
        return Trace(t, np.full_like(t, 0.01), 3.3, "recording", 1000.0)


@pytest.mark.parametrize("supplies, only_running", [(False, False), (True, False),
                                                    (True, True)])
def test_a_supplying_monitor_is_powered_before_the_target_starts(
        tmp_path: Path, supplies: bool, only_running: bool):
    from rig.config import load_config
    from rig.profiling import profile_target
    from rig.session import RunSpec
    from rig.targets import resolve_target

    lab = load_config(None)
    target = resolve_target(lab, "native")
    events: list[str] = []
    real_start = target.start

    def start():  # type: ignore[no-untyped-def]
        events.append("target.start")
        return real_start()

    target.start = start  # type: ignore[method-assign]
    mon = _Recording(events, supplies=supplies, only_while_running=only_running)
    with mon:
        run = profile_target(target, lab, ["full", "tinyprop"],
                             RunSpec.from_training(lab.training), tmp_path,
                             icount=False, max_steps=3, monitor=mon)
    assert events.index("monitor.configure") < events.index("target.start")
    if only_running:  # one acquisition over the whole run, started before the target
        assert events.count("monitor.start") == 1
        assert events.index("monitor.start") < events.index("target.start")
    else:
        assert events.count("monitor.start") == 2
    for sr in run.runs:  # each strategy gets exactly its own step windows
        assert [m.label for m in sr.measured] == [f"{sr.strategy} step {i}"
                                                  for i in range(1, 4)]
        assert all("protocol events" in m.detail for m in sr.measured)
        assert all(m.energy_j == pytest.approx(3.3 * 0.01 * m.duration_s, rel=1e-6)
                   for m in sr.measured)


def test_lpm01a_range_is_checked_against_the_board_model():
    from rig.config import load_config
    from rig.profiling import power_model

    lab = load_config(None)
    board = lab.boards["nucleo-f429zi"]
    model = power_model(board, board.name, float(board.clock_hz or 0))
    assert model.current_a == pytest.approx(0.26e-3 * 168, rel=1e-9)  # 43.7 mA
    mon = create_monitor("lpm01a", port="x")
    warning = mon.check_current(model.current_a)
    assert warning and "43.7 mA" in warning and "50 mA" in warning
    with pytest.raises(RigError, match="above the 50 mA this instrument measures"):
        mon.check_current(0.06)
    assert mon.check_current(0.005) is None
    assert create_monitor("ppk2", port="x").check_current(model.current_a) is None


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(["ppk2", "lpm01a"]),
       pairs=st.lists(st.tuples(st.sampled_from(["mode", "timeout_s", "marker_channel",
                                                 "counter_check", "power_dut", "trigger",
                                                 "bogus"]),
                                st.one_of(_VALUES, st.sampled_from(["[/]", "[red]x", "]["]))),
                      max_size=4))
def test_rig_profile_answers_any_monitor_option_with_one_line_and_exit_2(
        tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
        kind: str, pairs: list[tuple[str, str]]):
    """The port never exists, so whatever the options, no target starts: either an
    option is refused or the monitor cannot open its port; both are one line, exit 2."""
    out_dir = tmp_path_factory.mktemp("p")
    opts = [a for k, v in pairs for a in ("--monitor-opt", f"{k}={v}")]
    code = cli.main(["profile", "--target", "qemu", "--out", str(out_dir), "--monitor", kind,
                     "--monitor-opt", "port=/nonexistent/tty", *opts])
    out = capsys.readouterr().out
    assert code == 2, out
    assert "Traceback" not in out
    err = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and ("--monitor-opt" in err[0] or "cannot open" in err[0]
                              or kind in err[0].lower() or "LPM01A" in err[0]), out
    assert not (out_dir / "profile.json").exists()


def test_marker_pin_registers_and_store_semantics():
    from rig.profile.monitors.sim.logic import MarkerPin

    f13 = MarkerPin.parse("PF13")
    assert (f13.port_base, f13.set_write, f13.clear_write) == (
        0x4002_1400, (0x4002_1418, 1 << 13), (0x4002_1418, 1 << 29))
    assert f13.level_after(0x4002_1418, (1 << 13) | (1 << 29)) == 1  # BS wins (RM0090)
    assert f13.level_after(0x4002_1418, 1 << 12) is None
    assert f13.level_after(0x4002_1414, 1 << 13) == 1  # ODR
    assert f13.level_after(0x4002_1014, 1 << 13) is None  # GPIOE, not F
    p108 = MarkerPin.parse("P1.08")
    assert (p108.set_write, p108.clear_write) == ((0x5000_0808, 1 << 8), (0x5000_080C, 1 << 8))
    assert p108.level_after(0x5000_0808, 1 << 7) is None
    assert p108.level_after(0x5000_0804, 0) == 0  # OUT
    edges = EdgeQueue()
    hooks = p108.wire(edges)
    for addr, value in (p108.set_write, p108.set_write, p108.clear_write, (0x5000_0508, 1 << 8)):
        if addr in hooks:
            hooks[addr](value)
    assert [lv for _t, lv in edges.edges] == [1, 0]  # repeated set: one edge; P0 ignored
    for bad in ("PF16", "P2.01", "D7", "PF"):
        with pytest.raises(ValueError, match="marker pin"):
            MarkerPin.parse(bad)


@pytest.mark.hil
@pytest.mark.slow
def test_rig_profile_joulescope_js220_through_the_package_with_marker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """The same end to end through the real `joulescope` package (USB faked) on a JS220.
    At 50 kS/s: the package's Python stream path cannot keep 1 MHz real time on this
    shared 2-core machine while QEMU and the golden model run (the 2 MHz -> 1 MHz clamp
    is checked in test_energy_joulescope.py)."""
    _need_qemu()
    pytest.importorskip("joulescope")
    from rig.profile.monitors.sim.joulescope_usb import fake_usb

    edges = EdgeQueue(channel=0)
    load = MarkedLoad(edges, IDLE_A, ACTIVE_A)
    _wire_marker(monkeypatch, edges)
    with fake_usb(load, model="js220", logic=edges, burden_ohm=0.0):
        code = cli.main(["profile", "--target", "qemu", "--only", "--strategy", "full",
                         "--steps", "4", "--test-samples", "16", "--no-icount", "--no-charts",
                         "--out", str(tmp_path), "--monitor", "joulescope",
                         "--monitor-rate", "50000", "--monitor-voltage", str(V)])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads((tmp_path / "profile.json").read_text())
    summary = summary.get("summary", summary)
    em = summary["strategies"]["full"]["energy_measured"]
    truth = load.truth_j(V)
    assert em["windows"] == len(truth) == 4
    assert "gpio marker D0" in em["detail"] and "voltage measured" in em["detail"]
    assert abs(em["per_step_j"] / float(np.mean(truth)) - 1) < 0.01, (em, truth)


def test_windows_past_the_trace_end_are_a_measurement_error_not_silence():
    from rig.profile.energy import Mark, Trace
    from rig.profile.report import ProfileRun, StrategyRun
    from rig.profiling import _take_measured

    t = np.arange(0, 1.0, 1e-3)
    tr = Trace(t, np.full_like(t, 0.01), 3.3, "lagging", 1000.0,
               marks=[Mark(0.1, "full step 1"), Mark(0.2, None), Mark(0.95, "full step 2"),
                      Mark(1.5, None)])
    run = ProfileRun("b", "cortex-m4f", 1.0, "t", None, "", None, False)  # type: ignore[arg-type]
    sr = StrategyRun("full", {})
    _take_measured(run, [sr], tr)
    assert [m.label for m in sr.measured] == ["full step 1"] and sr.measured_dropped == 1
    assert run.measurement_errors == [
        "full: 1 of 2 step window(s) lie past the end of the lagging trace (0.999 s): its "
        "stream lagged the host"]
