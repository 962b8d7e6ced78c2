"""Joulescope (JS110/JS220) through the official `joulescope` Python package.

The instrument is USB bulk with a native driver (pyjoulescope_driver); no serial protocol
exists for us to speak, and we do not depend on the package. The adapter therefore talks
to a *driver object* with the calls of the official package (joulescope v1 API, from its
public docs and joulescope/v1/device.py, joulescope/parameters_v1.py):

- `joulescope.scan()` → list of devices; `device.open()`, `device.close()`;
- `device.parameter_set(name, value)`: `i_range` ('auto'), `v_range` ('15V' | '5V'),
  `sampling_frequency` (2 MHz down to 10 Hz in 1-2-5 steps), `current_lsb` / `voltage_lsb`
  ('gpi0' | 'gpi1' | 'normal'): put a general-purpose input into the LSB of the current
  or voltage sample, which is how the firmware's marker GPIO reaches the trace;
- streaming: `device.stream_process_register(obj)`, `device.start()`, `device.stop()`;
  the driver calls `obj.stream_notify(stream_buffer)` on its thread and we pull
  `stream_buffer.samples_get(start_id, stop_id, fields=[...])`, whose result is
  `{'time': {...}, 'signals': {field: {'value': ndarray, 'units': str}}}`;
- one-shot: `device.read(contiguous_duration=s, out_format='samples_get', fields=[...])`
  (or the default N x 2 [current, voltage] float32 array) for `capture()`.

The real package plugs in with `JoulescopeMonitor(driver=joulescope)` (the default when it
is importable). Tests use `rig.profile.monitors.sim.joulescope_sim`, a stand-in with the
same calls, and the real package with only its USB driver (pyjoulescope_driver) faked.
On the JS220 the v1 package serves the GPI0/GPI1 inputs as the `current_lsb` /
`voltage_lsb` fields (its stream buffer maps both names to the GPI buffers), so the same
field names work for both models. Missing samples arrive as NaN; we drop them and count
them in `meta`.

Per model (`MODELS`, checked against the installed package by tests): the JS110 outputs
up to 2 MHz and has voltage ranges 15 V / 5 V; the JS220 samples at 2 MHz but outputs at
most 1 MHz (the package clamps a higher request to 1 MHz) and has ranges 15 V / 2 V. A
request above the model's maximum is clamped, and every time axis is built from the rate
the instrument reports (the stream buffer's `sampling_frequency`, else the device's
`output_sampling_frequency`), never from the request.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from rig.errors import InstrumentError, InstrumentTimeout
from rig.profile.energy import Trace
from rig.profile.monitors.base import PowerMonitor, register_monitor

SAMPLING_FREQUENCIES = (2_000_000, 1_000_000, 500_000, 200_000, 100_000, 50_000, 20_000,
                        10_000, 5000, 2000, 1000, 500, 200, 100, 50, 20, 10)


@dataclass(frozen=True)
class Model:
    max_rate_hz: int  # highest output sample rate
    v_ranges: dict[str, float]  # v_range parameter value -> full scale in V


MODELS = {
    "js110": Model(2_000_000, {"5V": 5.0, "15V": 15.0}),
    "js220": Model(1_000_000, {"2V": 2.0, "15V": 15.0}),
}
#: headroom a supply needs below a voltage range's full scale (ripple, overshoot)
V_RANGE_HEADROOM = 1.1
#: seconds of samples the package keeps (its minimum; we drain the buffer continuously)
BUFFER_DURATION_S = 15
# marker channel -> (parameter routing that GPI into an LSB, the field carrying it)
_MARKER_ROUTE = {0: ("current_lsb", "gpi0"), 1: ("voltage_lsb", "gpi1")}


class JoulescopeDevice(Protocol):
    def open(self) -> Any: ...
    def close(self) -> Any: ...
    def parameter_set(self, name: str, value: Any) -> Any: ...
    def start(self, stop_fn: Any = None, duration: float | None = None,
              contiguous_duration: float | None = None) -> Any: ...
    def stop(self) -> Any: ...
    def stream_process_register(self, obj: Any) -> Any: ...
    def stream_process_unregister(self, obj: Any) -> Any: ...
    def read(self, duration: float | None = None, contiguous_duration: float | None = None,
             out_format: str | None = None, fields: list[str] | None = None) -> Any: ...


class JoulescopeDriver(Protocol):
    def scan(self) -> list[JoulescopeDevice]: ...


def _model_of(dev: Any) -> str:
    """'js110' / 'js220' from the package's device (its `model`, else 'JS220-<serial>')."""
    model = getattr(dev, "model", None)
    if isinstance(model, str) and model:
        return model.lower()
    return str(dev).split("-")[0].lower()


def _rate_of(res: Any) -> float | None:
    """The output sample rate a `samples_get` result states, if it states one."""
    try:
        t = res["time"]
        for key in ("sampling_frequency", "output_sampling_frequency"):
            if key in t:
                return float(t[key]["value"])
    except (KeyError, TypeError, ValueError):
        pass
    return None


def _serial_of(dev: Any) -> str:
    return str(getattr(dev, "device_serial_number", None) or getattr(dev, "serial_number",
                                                                     None) or dev)


class _Collector:
    """The stream-process object the driver calls back on its own thread."""

    def __init__(self, fields: list[str]) -> None:
        self.fields = fields
        self.driver_active = True
        self.next_id: int | None = None
        self.first_id: int | None = None
        self.chunks: dict[str, list[np.ndarray]] = {f: [] for f in fields}
        self.ids: list[np.ndarray] = []
        self.overrun = 0
        self.rate_hz: float | None = None  # as the stream buffer states it
        self.error: BaseException | None = None
        self.got_data = threading.Event()

    def stream_notify(self, stream_buffer: Any) -> bool:
        try:
            start, end = (int(x) for x in stream_buffer.sample_id_range)
            lo = start if self.next_id is None else max(self.next_id, start)
            if self.next_id is not None and start > self.next_id:
                self.overrun += start - self.next_id  # the driver's ring buffer wrapped
            if end <= lo:
                return False
            res = stream_buffer.samples_get(lo, end, fields=self.fields)
            self.rate_hz = _rate_of(res) or self.rate_hz
            sig = res["signals"]
            n = None
            for f in self.fields:
                v = np.array(sig[f]["value"], dtype=np.float64)
                n = len(v) if n is None else min(n, len(v))
                self.chunks[f].append(v)
            self.ids.append(np.arange(lo, lo + (n or 0), dtype=np.int64))
            if self.first_id is None:
                self.first_id = lo
            self.next_id = end
            self.got_data.set()
        except Exception as exc:  # reported by stop(); an exception here would only be
            self.error = exc      # logged by the driver's thread and lost
            return True
        return False


@register_monitor("joulescope")
class JoulescopeMonitor(PowerMonitor):
    def __init__(self, *, serial_number: str | None = None, driver: Any = None,
                 timeout_s: float = 2.0, marker_channel: int | None = 0) -> None:
        super().__init__(timeout_s=timeout_s, marker_channel=marker_channel)
        if marker_channel is not None and marker_channel not in _MARKER_ROUTE:
            raise InstrumentError("Joulescope marker_channel must be 0 (GPI0), 1 (GPI1) or "
                                  f"none, got {marker_channel!r}")
        if serial_number is not None and not isinstance(serial_number, str):
            raise InstrumentError(f"Joulescope serial_number must be text, got "
                                  f"{serial_number!r}")
        self.model: Model | None = None
        self.model_name = ""
        self.serial_number = serial_number
        self._driver = driver
        self._dev: Any = None
        self._collector: _Collector | None = None

    def describe(self) -> str:
        return f"Joulescope {self.serial_number or ''}".strip()

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InstrumentError:
            raise
        except Exception as exc:  # the driver raises IOError/RuntimeError/KeyError/...
            raise InstrumentError(f"{self.describe()}: {what} failed: "
                                  f"{type(exc).__name__}: {exc}") from exc

    def _do_open(self) -> None:
        driver = self._driver
        if driver is None:
            try:
                driver = importlib.import_module("joulescope")
            except ImportError:
                raise InstrumentError("the `joulescope` package is not installed "
                                      "(pip install joulescope), or pass driver=...") from None
        devices = list(self._call("scan", driver.scan))
        if self.serial_number is not None:
            devices = [d for d in devices if _serial_of(d) == self.serial_number]
        if not devices:
            raise InstrumentError("no Joulescope found"
                                  + (f" with serial {self.serial_number}"
                                     if self.serial_number else ""))
        if len(devices) > 1:
            raise InstrumentError("several Joulescopes found ("
                                  + ", ".join(_serial_of(d) for d in devices)
                                  + "): give serial_number=")
        self._dev = devices[0]
        self.serial_number = _serial_of(self._dev)
        self.model_name = _model_of(self._dev)
        if self.model_name not in MODELS:
            raise InstrumentError(f"{self.describe()}: unknown Joulescope model "
                                  f"{self.model_name!r}; known: {', '.join(MODELS)}")
        self.model = MODELS[self.model_name]
        if hasattr(self._dev, "buffer_duration"):  # the package: before open allocates it
            self._call("parameter_set('buffer_duration')", self._dev.parameter_set,
                       "buffer_duration", BUFFER_DURATION_S)
        self._call("open", self._dev.open)

    def _do_close(self) -> None:
        if self._dev is not None:
            dev, self._dev = self._dev, None
            self._call("close", dev.close)

    def _fields(self) -> list[str]:
        fields = ["current", "voltage"]
        if self.marker_channel is not None:
            fields.append(_MARKER_ROUTE[self.marker_channel][0])
        return fields

    def _do_configure(self, voltage_v: float, sample_rate_hz: float) -> float:
        assert self.model is not None
        rate = int(round(sample_rate_hz))
        if rate not in SAMPLING_FREQUENCIES or abs(rate - sample_rate_hz) > 1e-9:
            raise InstrumentError(f"{self.describe()}: sample rate {sample_rate_hz} Hz not one"
                                  f" of {list(SAMPLING_FREQUENCIES)}")
        rate = min(rate, self.model.max_rate_hz)  # what this model outputs at most
        fits = sorted((full, name) for name, full in self.model.v_ranges.items()
                      if voltage_v * V_RANGE_HEADROOM <= full)
        if not voltage_v > 0 or not fits:
            raise InstrumentError(f"{self.describe()}: {voltage_v} V outside the "
                                  f"{self.model_name.upper()}'s voltage ranges "
                                  f"{sorted(self.model.v_ranges)}")
        settings: list[tuple[str, Any]] = [
            ("i_range", "auto"),
            ("v_range", fits[0][1]),  # the finest range that holds the supply
            ("sampling_frequency", rate),
        ]
        if self.marker_channel is not None:
            settings.append(_MARKER_ROUTE[self.marker_channel])
        for name, value in settings:
            self._call(f"parameter_set({name!r}, {value!r})", self._dev.parameter_set,
                       name, value)
        # The instrument's word on its output rate wins over our arithmetic.
        told = getattr(self._dev, "output_sampling_frequency", None)
        return float(told) if isinstance(told, int | float) and told > 0 else float(rate)

    def _do_start(self) -> None:
        self._collector = _Collector(self._fields())
        self._call("stream_process_register", self._dev.stream_process_register,
                   self._collector)
        self._call("start", self._dev.start)
        if not self._collector.got_data.wait(self.timeout_s):
            self._call("stop", self._dev.stop)
            raise InstrumentTimeout(f"{self.describe()}: no samples within "
                                    f"{self.timeout_s:g} s of start()")

    def _received_s(self) -> float | None:
        col = self._collector
        if col is None or col.next_id is None or col.first_id is None:
            return None
        rate = col.rate_hz or self.sample_rate_hz
        return (col.next_id - col.first_id) / rate if rate else None

    def _do_stop(self) -> Trace:
        assert self._collector is not None
        col = self._collector
        self._call("stop", self._dev.stop)
        self._call("stream_process_unregister", self._dev.stream_process_unregister, col)
        if col.error is not None:
            raise InstrumentError(f"{self.describe()}: reading the stream failed: "
                                  f"{type(col.error).__name__}: {col.error}")
        if not col.ids:
            raise InstrumentError(f"{self.describe()}: no samples recorded")
        cols = {f: np.concatenate(col.chunks[f]) for f in col.fields}
        ids = np.concatenate(col.ids)
        n = min(len(ids), *(len(v) for v in cols.values()))
        return self._trace(ids[:n], {f: v[:n] for f, v in cols.items()},
                           {"driver_overrun_samples": col.overrun}, col.rate_hz)

    def _trace(self, ids: np.ndarray, cols: dict[str, np.ndarray],
               meta: dict[str, Any], stated_rate_hz: float | None = None) -> Trace:
        rate = float(stated_rate_hz or self.sample_rate_hz or 1.0)
        if stated_rate_hz and self.sample_rate_hz and stated_rate_hz != self.sample_rate_hz:
            meta = {**meta, "configured_rate_hz": self.sample_rate_hz}
        meta = {**meta, "model": self.model_name}
        ok = np.isfinite(cols["current"]) & np.isfinite(cols["voltage"])
        meta = {**meta, "missing_samples": int(np.count_nonzero(~ok)),
                "nominal_voltage_v": self.voltage_v}
        ids = ids[ok]
        if len(ids) < 2:
            raise InstrumentError(f"{self.describe()}: fewer than 2 valid samples")
        digital = None
        if self.marker_channel is not None:
            bit = np.rint(cols[_MARKER_ROUTE[self.marker_channel][0]][ok]).astype(np.uint8)
            digital = (bit & 1) << self.marker_channel
        return Trace(t_s=(ids - ids[0]) / rate, current_a=cols["current"][ok],
                     voltage_v=cols["voltage"][ok], instrument=self.describe(),
                     sample_rate_hz=rate, digital=digital, voltage_measured=True,
                     meta=meta)

    def capture(self, duration_s: float) -> Trace:
        """A fixed-length capture with `read(contiguous_duration=...)`: simpler than
        start/stop and guaranteed gap-free by the driver, but host marks are not available
        (the call blocks); use the GPIO marker for windows."""
        self._require("ready", action="capture()")
        box: dict[str, Any] = {}

        def run() -> None:  # on a thread, so a wedged driver cannot hang the caller
            try:
                box["res"] = self._dev.read(contiguous_duration=duration_s,
                                            out_format="samples_get", fields=self._fields())
            except Exception as exc:
                box["err"] = exc

        th = threading.Thread(target=run, name="joulescope-read", daemon=True)
        th.start()
        th.join(duration_s + self.timeout_s)
        if th.is_alive():
            raise InstrumentTimeout(f"{self.describe()}: read(contiguous_duration="
                                    f"{duration_s:g}) did not return within "
                                    f"{duration_s + self.timeout_s:g} s")
        if "err" in box:
            err = box["err"]
            raise InstrumentError(f"{self.describe()}: read failed: "
                                  f"{type(err).__name__}: {err}") from err
        res = box["res"]
        try:
            cols = {f: np.asarray(res["signals"][f]["value"], dtype=np.float64)
                    for f in self._fields()}
        except (KeyError, TypeError) as exc:
            raise InstrumentError(f"{self.describe()}: read() returned no {exc} signal"
                                  ) from exc
        n = min(len(v) for v in cols.values())
        trace = self._trace(np.arange(n), {f: v[:n] for f, v in cols.items()}, {},
                            _rate_of(res))
        trace.marker_channel = self.marker_channel
        return trace
