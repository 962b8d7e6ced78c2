"""A stand-in for the official `joulescope` package at its Python API boundary (no USB can
exist in CI). It offers the calls JoulescopeMonitor uses: scan(), open/close,
parameter_set with the v1 parameter names and values (unknown name → KeyError, bad value
→ ValueError, as the package raises), start/stop streaming with stream-process callbacks
from a driver thread, a stream buffer with sample_id_range and samples_get, and
read(contiguous_duration=..., out_format=..., fields=...).

Physics: the DUT current follows a `Waveform`; the measured voltage sags by
`burden_ohm · I` (so a host that ignored the measured voltage would be caught); an LSB not
routed to a GPI carries ADC noise (random bits), as on the real instrument. `model`
"js220" behaves as the package's JS220: voltage ranges 15V / 2V, output rate clamped to
1 MHz. A live `logic=` input (`rig.profile.monitors.sim.logic`) drives GPI0/GPI1.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from rig.profile.monitors.sim.logic import LAG_S, LogicInput
from rig.profile.monitors.sim.waveform import Waveform

_PARAMS: dict[str, tuple[Any, ...]] = {
    "sensor_power": ("off", "on"),
    "source": ("off", "raw", "on"),
    "i_range": ("auto", "10 A", "2 A", "180 mA", "18 mA", "1.8 mA", "180 µA", "18 µA", "off"),
    "v_range": ("15V", "5V"),
    "current_lsb": ("normal", "gpi0", "gpi1"),
    "voltage_lsb": ("normal", "gpi0", "gpi1"),
    "sampling_frequency": (2_000_000, 1_000_000, 500_000, 200_000, 100_000, 50_000, 20_000,
                           10_000, 5000, 2000, 1000, 500, 200, 100, 50, 20, 10),
}


class SimStreamBuffer:
    def __init__(self, rate_hz: float = 0.0) -> None:
        self.rate_hz = rate_hz
        self._lock = threading.Lock()
        self._cols: dict[str, list[np.ndarray]] = {}
        self.sample_id_range = (0, 0)

    def reset(self) -> None:
        with self._lock:
            self._cols = {}
            self.sample_id_range = (0, 0)

    def append(self, cols: dict[str, np.ndarray]) -> None:
        with self._lock:
            for k, v in cols.items():
                self._cols.setdefault(k, []).append(v)
            n = len(next(iter(cols.values())))
            self.sample_id_range = (0, self.sample_id_range[1] + n)

    def samples_get(self, start: int, stop: int, fields: list[str] | None = None
                    ) -> dict[str, Any]:
        fields = fields or ["current", "voltage"]
        with self._lock:
            flat = {k: np.concatenate(v) for k, v in self._cols.items()}
        units = {"current": "A", "voltage": "V", "current_lsb": "", "voltage_lsb": ""}
        return {"time": {"sample_id_range": {"value": [start, stop], "units": "samples"},
                         "sampling_frequency": {"value": self.rate_hz, "units": "Hz"}},
                "signals": {f: {"value": flat[f][start:stop], "units": units[f]}
                            for f in fields}}


class SimJoulescopeDevice:
    def __init__(self, driver: SimJoulescopeDriver, serial: str) -> None:
        self.driver = driver
        self.model = driver.model
        self.device_serial_number = serial
        self.params: dict[str, Any] = {"i_range": "off", "v_range": "15V",
                                       "current_lsb": "normal", "voltage_lsb": "normal",
                                       "sampling_frequency": 2_000_000}
        self.is_open = False
        self.stream_buffer = SimStreamBuffer()
        self._objs: list[Any] = []
        self._run = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = np.random.default_rng(1)
        self.param_log: list[tuple[str, Any]] = []

    def __str__(self) -> str:
        return f"SimJoulescope:{self.device_serial_number}"

    def open(self) -> None:
        if self.driver.fault == "open_fails":
            raise OSError("LIBUSB_ERROR_ACCESS (simulated)")
        self.is_open = True

    def close(self) -> None:
        self.stop()
        self.is_open = False

    def parameter_set(self, name: str, value: Any) -> None:
        if not self.is_open:
            raise RuntimeError("device not open")
        if name not in _PARAMS:
            raise KeyError(name)
        allowed = _PARAMS[name]
        if name == "v_range" and self.model == "js220":
            allowed = ("15V", "2V")
        if value not in allowed:
            raise ValueError(f"{name}: {value!r} not allowed")
        if name == "sampling_frequency" and self.model == "js220":
            value = min(int(value), 1_000_000)  # as the package's JS220 does
        self.params[name] = value
        self.param_log.append((name, value))

    @property
    def output_sampling_frequency(self) -> int:
        return int(self.params["sampling_frequency"])

    # -- sample generation ---------------------------------------------------------------

    def _generate(self, first: int, n: int, t0_abs: float = 0.0) -> dict[str, np.ndarray]:
        rate = float(self.params["sampling_frequency"])
        t = (first + np.arange(n)) / rate
        wave = self.driver.waveform
        t_wave = t + t0_abs if getattr(wave, "absolute_time", False) else t
        if self.params["i_range"] == "off":
            i = np.zeros(n)
        else:
            i = wave.current(t_wave).astype(np.float64)
        v = self.driver.voltage_v - self.driver.burden_ohm * i
        logic = (self.driver.logic.levels(t + t0_abs) if self.driver.logic is not None
                 else wave.logic(t_wave))
        cols: dict[str, np.ndarray] = {"current": i.astype(np.float32),
                                       "voltage": v.astype(np.float32)}
        for field in ("current_lsb", "voltage_lsb"):
            route = self.params[field]
            if route == "normal":
                cols[field] = self._rng.integers(0, 2, n).astype(np.uint8)
            else:
                cols[field] = (logic >> int(route[-1])) & 1
        if self.driver.fault == "nan" and first <= 5000 < first + n:
            k = 5000 - first
            cols["current"][k:k + 20] = np.nan
        return cols

    def _stream(self) -> None:
        rate = float(self.params["sampling_frequency"])
        self.stream_buffer.rate_hz = rate
        live = self.driver.logic is not None or getattr(self.driver.waveform,
                                                         "absolute_time", False)
        t0 = time.monotonic()
        sent = 0
        while self._run.is_set():
            time.sleep(0.005)
            due = int((time.monotonic() - (LAG_S if live else 0.0) - t0) * rate)
            if due <= sent or self.driver.fault == "stall":
                continue
            self.stream_buffer.append(self._generate(sent, due - sent, t0))
            sent = due
            for obj in list(self._objs):
                if getattr(obj, "driver_active", True) and obj.stream_notify(self.stream_buffer):
                    self._run.clear()

    def stream_process_register(self, obj: Any) -> None:
        obj.driver_active = True
        self._objs.append(obj)

    def stream_process_unregister(self, obj: Any) -> None:
        obj.driver_active = False
        if obj in self._objs:
            self._objs.remove(obj)

    def start(self, stop_fn: Any = None, duration: float | None = None,
              contiguous_duration: float | None = None) -> None:
        if not self.is_open:
            raise RuntimeError("device not open")
        self.stop()
        self.stream_buffer.reset()
        self._run.set()
        self._thread = threading.Thread(target=self._stream, name="sim-js", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._run.clear()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    def read(self, duration: float | None = None, contiguous_duration: float | None = None,
             out_format: str | None = None, fields: list[str] | None = None) -> Any:
        if not self.is_open:
            raise RuntimeError("device not open")
        if self.driver.fault == "stall":
            self.driver.unstall.wait(3600)  # wedged, like a stuck USB transfer
        d = contiguous_duration if contiguous_duration is not None else duration
        n = int(round(float(d or 0) * float(self.params["sampling_frequency"])))
        cols = self._generate(0, n)
        if out_format in (None, "calibrated"):
            return np.stack([cols["current"], cols["voltage"]], axis=1)
        buf = SimStreamBuffer(float(self.params["sampling_frequency"]))
        buf.append(cols)
        return buf.samples_get(0, n, fields)


class SimJoulescopeDriver:
    """Module-like object: `scan()` as in `import joulescope; joulescope.scan()`.
    fault: None | "no_device" | "open_fails" | "stall" (streams nothing; read() blocks)
    | "nan" (20 missing samples, reported as NaN)."""

    def __init__(self, waveform: Waveform, voltage_v: float = 3.3, burden_ohm: float = 2.0,
                 fault: str | None = None, serials: tuple[str, ...] = ("000415",),
                 model: str = "js110", logic: LogicInput | None = None) -> None:
        self.waveform = waveform
        self.model = model
        self.logic = logic
        self.voltage_v = voltage_v
        self.burden_ohm = burden_ohm
        self.fault = fault
        self.devices = [SimJoulescopeDevice(self, s) for s in serials]
        self.unstall = threading.Event()  # set by a test's teardown to free a wedged read

    def scan(self) -> list[SimJoulescopeDevice]:
        return [] if self.fault == "no_device" else list(self.devices)
