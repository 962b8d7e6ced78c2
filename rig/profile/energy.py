"""Energy: measured traces from a power monitor, and a calibrated per-board model.

Two kinds of figure leave this module and each carries its origin in `source`, so a report
can never pass a model estimate off as a measurement (docs/profiling.md, "label in every report"):

- `energy (measured)`: a `Trace` recorded by a `PowerMonitor` (rig.profile.monitors),
  integrated with the trapezoid rule over V·I between two instants or over marked windows.
- `energy (model)`: `BoardPowerModel`, E = V · I(f) · t with I = k · f_MHz + I_static and
  t = cycles / f, from datasheet-class figures per board.

Windows come from two places: host marks (`PowerMonitor.mark(label)`, host clock, a few ms
of USB latency) and a digital marker line the firmware drives (GPIO into the monitor's
logic input, sampled on the instrument's own clock: exact to one sample). When both exist,
the GPIO windows are used and take their labels from the host marks in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rig.errors import ConfigError

MEASURED = "energy (measured)"
MODELLED = "energy (model)"


@dataclass(frozen=True)
class Mark:
    """A host-side event: from `t_s` on, the device is in window `label` (None = no window)."""

    t_s: float
    label: str | None


@dataclass(frozen=True)
class Window:
    """A measurement window [t0_s, t1_s] on the trace's time axis."""

    label: str
    t0_s: float
    t1_s: float
    origin: str  # "host mark" or "gpio D<n>": how precise the edges are

    @property
    def duration_s(self) -> float:
        return self.t1_s - self.t0_s


@dataclass(frozen=True)
class EnergyResult:
    """Energy of one window or phase, with where the number came from."""

    label: str
    energy_j: float
    duration_s: float
    mean_current_a: float
    source: str  # MEASURED or MODELLED
    detail: str = ""  # e.g. "gpio D0", "cycles (DWT) @ 180 MHz"

    @property
    def mean_power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else 0.0


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    if len(x) < 2:
        return 0.0
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1])) * 0.5)


@dataclass
class Trace:
    """Samples from one `start()`..`stop()` of a power monitor.

    `t_s` starts at 0 at the first sample and is strictly increasing (gaps are allowed:
    missing samples are dropped, not invented, and the trapezoid bridges them linearly;
    `meta["missing_samples"]` says how many). `voltage_v` is either an array (measured
    per sample) or one float (the supply the instrument was told to provide/expect).
    `digital` holds the instrument's logic inputs, bit n = channel Dn, if it has any.
    """

    t_s: np.ndarray
    current_a: np.ndarray
    voltage_v: np.ndarray | float
    instrument: str
    sample_rate_hz: float
    digital: np.ndarray | None = None
    marks: list[Mark] = field(default_factory=list)
    marker_channel: int | None = None
    voltage_measured: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = MEASURED

    def __post_init__(self) -> None:
        self.t_s = np.asarray(self.t_s, dtype=np.float64)
        self.current_a = np.asarray(self.current_a, dtype=np.float64)
        if not isinstance(self.voltage_v, float | int):
            self.voltage_v = np.asarray(self.voltage_v, dtype=np.float64)
            if self.voltage_v.shape != self.t_s.shape:
                raise ValueError("voltage array does not match the time axis")
        else:
            self.voltage_v = float(self.voltage_v)
        if self.current_a.shape != self.t_s.shape:
            raise ValueError("current array does not match the time axis")
        if self.digital is not None:
            self.digital = np.asarray(self.digital, dtype=np.uint8)
            if self.digital.shape != self.t_s.shape:
                raise ValueError("digital array does not match the time axis")
        if len(self.t_s) > 1 and not np.all(np.diff(self.t_s) > 0):
            raise ValueError("trace time axis must be strictly increasing")

    # -- basic quantities ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.t_s)

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1] - self.t_s[0]) if len(self.t_s) else 0.0

    @property
    def power_w(self) -> np.ndarray:
        return self.current_a * self.voltage_v

    def _span(self, t0: float | None, t1: float | None) -> tuple[float, float]:
        if not len(self.t_s):
            raise ValueError("empty trace")
        lo, hi = float(self.t_s[0]), float(self.t_s[-1])
        a = lo if t0 is None else max(lo, float(t0))
        b = hi if t1 is None else min(hi, float(t1))
        if b < a:
            raise ValueError(f"window [{t0}, {t1}] s lies outside the trace [{lo}, {hi}] s")
        return a, b

    def _integrate(self, y: np.ndarray, t0: float | None, t1: float | None) -> float:
        # Exact integral of the piecewise-linear interpolant: interpolate at the window
        # edges so a window need not fall on sample instants.
        a, b = self._span(t0, t1)
        if b == a:
            return 0.0
        inside = (self.t_s > a) & (self.t_s < b)
        x = np.concatenate(([a], self.t_s[inside], [b]))
        yy = np.concatenate(([np.interp(a, self.t_s, y)], y[inside], [np.interp(b, self.t_s, y)]))
        return _trapezoid(yy, x)

    def energy_j(self, t0: float | None = None, t1: float | None = None) -> float:
        """∫ V·I dt over [t0, t1] (default: the whole trace), trapezoid rule."""
        return self._integrate(self.power_w, t0, t1)

    def charge_c(self, t0: float | None = None, t1: float | None = None) -> float:
        return self._integrate(self.current_a, t0, t1)

    def mean_current_a(self, t0: float | None = None, t1: float | None = None) -> float:
        """Time-weighted mean current over [t0, t1] (charge / duration)."""
        a, b = self._span(t0, t1)
        if b == a:
            return float(np.interp(a, self.t_s, self.current_a))
        return self.charge_c(a, b) / (b - a)

    # -- windows ------------------------------------------------------------------------

    def host_windows(self) -> list[Window]:
        """Windows from host marks: each mark opens a window that the next mark closes."""
        out: list[Window] = []
        end = float(self.t_s[-1]) if len(self.t_s) else 0.0
        for i, m in enumerate(self.marks):
            if m.label is None:
                continue
            t1 = self.marks[i + 1].t_s if i + 1 < len(self.marks) else end
            out.append(Window(m.label, m.t_s, t1, "host mark"))
        return out

    def gpio_windows(self, channel: int) -> list[Window]:
        """Windows where logic input D<channel> is high. An edge lies between two samples;
        taking the first high and the first low sample shifts both edges by the same
        half-sample on average, so durations stay unbiased."""
        if self.digital is None:
            raise ValueError(f"{self.instrument} recorded no digital inputs")
        high = ((self.digital >> channel) & 1).astype(np.int8)
        edges = np.diff(np.concatenate(([0], high, [0])))
        rises = np.flatnonzero(edges == 1)
        falls = np.flatnonzero(edges == -1)
        last = len(self.t_s) - 1
        return [Window(f"D{channel}#{k}", float(self.t_s[r]), float(self.t_s[min(int(f), last)]),
                       f"gpio D{channel}")
                for k, (r, f) in enumerate(zip(rises, falls, strict=True))]

    @property
    def windows(self) -> list[Window]:
        """GPIO windows when a marker channel was configured and recorded (labelled from
        the host marks when the counts agree), else the host-mark windows."""
        host = self.host_windows()
        if self.marker_channel is None or self.digital is None:
            return host
        gpio = self.gpio_windows(self.marker_channel)
        if host and len(host) == len(gpio):
            return [Window(h.label, g.t0_s, g.t1_s, g.origin) for h, g in zip(host, gpio,
                                                                              strict=True)]
        return gpio

    def window_energy(self, windows: Iterable[Window] | None = None) -> list[EnergyResult]:
        """Energy per window (default: `self.windows`)."""
        out = []
        for w in self.windows if windows is None else windows:
            a, b = self._span(w.t0_s, w.t1_s)
            out.append(EnergyResult(w.label, self.energy_j(a, b), b - a,
                                    self.mean_current_a(a, b), self.source,
                                    f"{self.instrument}, {w.origin}"))
        return out


# -- the model --------------------------------------------------------------------------


@dataclass(frozen=True)
class BoardPowerModel:
    """E = V · I(f) · t, I = current_ma_per_mhz · f_MHz + static_current_ma, t = cycles / f.

    The dynamic part of the energy per cycle is V · k (independent of f); only the static
    part grows with run time, which is why the clock still matters.
    """

    board: str
    voltage_v: float
    current_ma_per_mhz: float
    clock_hz: float
    static_current_ma: float = 0.0
    basis: str = ""  # where the figures come from, shown in reports

    def __post_init__(self) -> None:
        for name in ("voltage_v", "current_ma_per_mhz", "clock_hz"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"power model for {self.board!r}: {name} must be > 0, "
                                  f"got {getattr(self, name)!r}")
        if self.static_current_ma < 0:
            raise ConfigError(f"power model for {self.board!r}: static_current_ma must be >= 0")

    @classmethod
    def from_config(cls, board: str, values: Mapping[str, Any]) -> BoardPowerModel:
        """From a lab_config board entry's `power_model` mapping; missing keys fall back to
        the preset for `board` (if any), unknown keys are an error (typos must not pass)."""
        known = {"voltage_v", "current_ma_per_mhz", "clock_hz", "static_current_ma", "basis"}
        extra = set(values) - known
        if extra:
            raise ConfigError(f"power model for {board!r}: unknown key(s) {sorted(extra)}; "
                              f"expected {sorted(known)}")
        base = PRESETS.get(board)
        merged: dict[str, Any] = {} if base is None else {
            k: getattr(base, k) for k in known}
        merged.update(values)
        overridden = sorted(set(values) - {"basis"})
        if "basis" not in values:  # say which figures the lab changed, not only the preset's
            merged["basis"] = ("lab_config" if base is None else
                               f"lab_config {overridden} over preset: {base.basis}"
                               if overridden else base.basis)
        missing = {"voltage_v", "current_ma_per_mhz", "clock_hz"} - set(merged)
        if missing:
            raise ConfigError(f"power model for {board!r}: missing {sorted(missing)} and no "
                              f"preset for this board (presets: {sorted(PRESETS)})")
        try:
            return cls(board=board, voltage_v=float(merged["voltage_v"]),
                       current_ma_per_mhz=float(merged["current_ma_per_mhz"]),
                       clock_hz=float(merged["clock_hz"]),
                       static_current_ma=float(merged.get("static_current_ma", 0.0)),
                       basis=str(merged["basis"]))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"power model for {board!r}: {exc}") from exc

    @property
    def current_a(self) -> float:
        return (self.current_ma_per_mhz * self.clock_hz / 1e6 + self.static_current_ma) * 1e-3

    @property
    def energy_per_cycle_j(self) -> float:
        return self.voltage_v * self.current_a / self.clock_hz

    def phase(self, label: str, work: PhaseWork | int | float) -> EnergyResult:
        w = work if isinstance(work, PhaseWork) else PhaseWork(cycles=float(work))
        t = w.cycles_estimate / self.clock_hz
        return EnergyResult(label, self.voltage_v * self.current_a * t, t, self.current_a,
                            MODELLED, f"{w.describe()} @ {self.clock_hz / 1e6:g} MHz, "
                                      f"{self.board}: {self.basis}")

    def estimate(self, phases: Mapping[str, PhaseWork | int | float],
                 steps: int = 1) -> ModelEstimate:
        """Energy per phase of one training step, the step total, and `steps` steps."""
        if steps < 0:
            raise ValueError("steps must be >= 0")
        per_phase = {name: self.phase(name, w) for name, w in phases.items()}
        step_j = sum(r.energy_j for r in per_phase.values())
        return ModelEstimate(self, per_phase, step_j, step_j * steps, steps)

    def estimate_steps(self, steps: Sequence[Mapping[str, PhaseWork | int | float]]
                       ) -> list[ModelEstimate]:
        """One estimate per recorded step (sparse strategies vary step to step)."""
        return [self.estimate(s) for s in steps]


@dataclass(frozen=True)
class PhaseWork:
    """Work done in one phase: measured cycles, or instructions times an assumed CPI.

    `origin` is the label of the count (docs/profiling.md: `cycles (DWT)`, `instructions (QEMU)`,
    `cycles (model)`) and is carried into the result's detail.
    """

    cycles: float | None = None
    instructions: float | None = None
    cpi: float | None = None
    origin: str = ""

    def __post_init__(self) -> None:
        if (self.cycles is None) == (self.instructions is None):
            raise ValueError("give either cycles or instructions (with cpi), not both/neither")
        if self.instructions is not None and (self.cpi is None or self.cpi <= 0):
            raise ValueError("instructions need a cpi > 0")
        n = self.cycles if self.cycles is not None else self.instructions
        if n is None or n < 0:
            raise ValueError("work must be >= 0")

    @property
    def cycles_estimate(self) -> float:
        if self.cycles is not None:
            return float(self.cycles)
        assert self.instructions is not None and self.cpi is not None
        return float(self.instructions) * float(self.cpi)

    def describe(self) -> str:
        if self.cycles is not None:
            return f"{self.cycles:.0f} {self.origin or 'cycles'}"
        return f"{self.instructions:.0f} {self.origin or 'instructions'} x CPI {self.cpi:g}"


@dataclass(frozen=True)
class ModelEstimate:
    model: BoardPowerModel
    per_phase: dict[str, EnergyResult]
    per_step_j: float
    total_j: float
    steps: int
    source: str = MODELLED


# Per-board presets. Figures are datasheet-class "CPU running from flash" numbers; they
# ignore peripherals, memory-bound stalls and regulator efficiency, so treat the model as
# an order-of-magnitude guide and calibrate `current_ma_per_mhz` against a measured trace
# (`calibrate_from_trace`) where a monitor exists.
PRESETS: dict[str, BoardPowerModel] = {
    # nRF52840 Product Specification, "CPU running CoreMark from flash, DC/DC, 3 V":
    # 3.3 mA at 64 MHz => ~52 uA/MHz (Nordic's headline figure). With the LDO it is about
    # twice that; boards without the DC/DC inductor should override.
    "nrf52840": BoardPowerModel("nrf52840", 3.0, 0.052, 64e6, 0.0,
                                "nRF52840 PS: CoreMark from flash, DC/DC, 3 V (~52 uA/MHz)"),
    # STM32F429: ST quotes Run-mode dynamic current for the F427/429 line of roughly
    # 260 uA/MHz (180 MHz, code from flash with ART, peripherals off). Recalled from ST's
    # product material, NOT re-verified against datasheet DS9405 here: check before
    # relying on it. (~100 uA/MHz is the STM32F411 "dynamic efficiency" class, not F429.)
    "stm32f429": BoardPowerModel("stm32f429", 3.3, 0.26, 180e6, 0.0,
                                 "ST F427/429 Run mode ~260 uA/MHz (unverified, see code)"),
    # nRF51822 (microbit in QEMU): PS v3 "CPU running from flash, 16 MHz" ~4.4 mA with the
    # LDO => ~275 uA/MHz. Recalled, not re-verified: an ASSUMPTION for the emulated target.
    "nrf51": BoardPowerModel("nrf51", 3.0, 0.275, 16e6, 0.0,
                             "ASSUMPTION: nRF51 ~4.4 mA @ 16 MHz from flash (unverified)"),
    # mps2-an386 is an FPGA/emulated Cortex-M4 with no silicon to measure: an explicit
    # ASSUMPTION of a generic 40 nm-class Cortex-M4 at 0.1 mA/MHz, 3.3 V, 25 MHz
    # (the MPS2 reference clock), so emulated runs still produce comparable numbers.
    "mps2-an386": BoardPowerModel("mps2-an386", 3.3, 0.1, 25e6, 0.0,
                                  "ASSUMPTION: generic Cortex-M4, 0.1 mA/MHz (emulated)"),
}
PRESETS["microbit"] = PRESETS["nrf51"]


def calibrate_from_trace(model: BoardPowerModel, result: EnergyResult,
                         cycles: float) -> BoardPowerModel:
    """A copy of `model` whose dynamic current makes `model.phase(cycles)` reproduce one
    measured window in which the core ran `cycles` cycles at `model.clock_hz` (static
    current kept). Run time is taken from the cycles, not the window, so host-mark slack
    around the window does not dilute the figure."""
    if result.source != MEASURED:
        raise ValueError("calibrate against a measured window, not a model figure")
    if cycles <= 0:
        raise ValueError("need cycles > 0")
    run_s = cycles / model.clock_hz
    mean_i_ma = result.energy_j / (model.voltage_v * run_s) * 1e3
    k = (mean_i_ma - model.static_current_ma) / (model.clock_hz / 1e6)
    return BoardPowerModel(model.board, model.voltage_v, k, model.clock_hz,
                           model.static_current_ma,
                           f"calibrated from {result.detail or 'a measured window'}")
