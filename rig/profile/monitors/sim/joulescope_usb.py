"""A fake of the one layer below the `joulescope` package: pyjoulescope_driver's `Driver`
(the native USB driver). With it patched in, the package's own code runs unchanged: its
device classes (JS220 parameter handling, rate clamping, range topics), its stream buffer
and sample buffers (decimation bookkeeping, sample ids) — so a test measures what the
adapter does with the real package, and only the USB transfers are invented here.

    with fake_usb(waveform, model="js220") as usb:      # patches joulescope.v1.driver
        with create_monitor("joulescope", driver=joulescope) as mon: ...
    usb.published  # every (topic, value) the package sent to the "instrument"

Message shapes follow what the package's v1 code consumes (joulescope/v1/device.py
`_on_stream`, stream_buffer.py `insert`, sample_buffer.py `add`): one message per signal
topic `<device>/s/<signal>/!data` with `field_id`, `index`, `sample_id` (in samples at the
instrument's 2 MHz input rate), `data` (float32; u1 logic bits packed little-endian; the
current range one uint8 per sample), `sample_rate` (2 MHz) and `decimate_factor` (2 MHz /
the host rate `h/fs` the package published). The instrument streams at `h/fs`, in real
time. Physics as in `joulescope_sim`: V = voltage_v − burden_ohm · I; GPI0/1 follow the
waveform's logic bits 0/1 (or a live `logic=` input).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from rig.profile.monitors.sim.logic import LAG_S, LogicInput
from rig.profile.monitors.sim.waveform import Waveform

INPUT_RATE = 2_000_000
#: signal topic (under the device path) -> (field_id, index), as the package's buffers
SIGNALS = {"s/i/": (1, 0), "s/v/": (2, 0), "s/p/": (3, 0), "s/i/range/": (4, 0),
           "s/gpi/0/": (5, 0), "s/gpi/1/": (5, 1)}


class FakeUsbDriver:
    """Stands in for `pyjoulescope_driver.Driver` with one instrument attached."""

    def __init__(self, waveform: Waveform, *, model: str = "js220", serial: str = "004321",
                 voltage_v: float = 3.3, burden_ohm: float = 2.0,
                 logic: LogicInput | None = None) -> None:
        self.waveform = waveform
        self.logic = logic
        self.voltage_v = voltage_v
        self.burden_ohm = burden_ohm
        self.path = f"u/{model}/{serial}"
        self.log_level = "INFO"
        self.published: list[tuple[str, Any]] = []
        self._subs: list[tuple[str, Callable[[str, Any], Any]]] = []
        self._lock = threading.Lock()
        self._active: set[str] = set()
        self._fs = INPUT_RATE
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.is_open = False

    # -- the Driver API the package calls ------------------------------------------------

    def device_paths(self) -> list[str]:
        return [self.path]

    def subscribe(self, topic: str, flags: Any, fn: Callable[[str, Any], Any],
                  timeout: float | None = None) -> None:
        with self._lock:
            self._subs.append((topic, fn))

    def unsubscribe(self, topic: Any, fn: Any = None, timeout: float | None = None) -> None:
        with self._lock:
            if callable(topic):  # unsubscribe(fn, timeout): from every topic
                self._subs = [(t, f) for t, f in self._subs if f != topic]
            else:
                self._subs = [(t, f) for t, f in self._subs if not (t == topic and f == fn)]

    def open(self, path: str, mode: Any = None, timeout: float | None = None) -> int:
        if path != self.path:
            raise RuntimeError(f"no device {path}")
        self.is_open = True
        return 0

    def close(self, path: str, timeout: float | None = None) -> int:
        self._halt()
        self.is_open = False
        return 0

    def query(self, topic: str, timeout: float | None = None) -> Any:
        return 0

    def publish(self, topic: str, value: Any, timeout: float | None = None) -> int:
        self.published.append((topic, value))
        rel = topic[len(self.path) + 1:] if topic.startswith(self.path + "/") else topic
        if rel == "h/fs":
            self._fs = int(value)
        elif rel.endswith("ctrl") and rel[:-4] in SIGNALS:
            with self._lock:
                (self._active.add if value else self._active.discard)(rel[:-4])
            if self._active and self._thread is None:
                self._start()
            elif not self._active:
                self._halt()
        return 0

    def finalize(self) -> None:
        self._halt()

    # -- the instrument --------------------------------------------------------------------

    def _start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._stream, name="fake-usb-js", daemon=True)
        self._thread.start()

    def _halt(self) -> None:
        self._stop.set()
        th, self._thread = self._thread, None
        if th is not None and th is not threading.current_thread():
            th.join(timeout=2.0)

    def _stream(self) -> None:
        fs = self._fs
        decimate = INPUT_RATE // fs
        live = self.logic is not None or getattr(self.waveform, "absolute_time", False)
        t0 = time.monotonic()
        sent = 0
        while not self._stop.is_set():
            time.sleep(0.005)
            due = int((time.monotonic() - (LAG_S if live else 0.0) - t0) * fs) // 8 * 8
            if due <= sent:
                continue
            n = due - sent
            t = (sent + np.arange(n)) / fs
            wave_t = t + t0 if getattr(self.waveform, "absolute_time", False) else t
            i = np.asarray(self.waveform.current(wave_t), dtype=np.float64)
            v = self.voltage_v - self.burden_ohm * i
            bits = (self.logic.levels(t + t0) if self.logic is not None
                    else self.waveform.logic(wave_t))
            data = {"s/i/": i.astype(np.float32), "s/v/": v.astype(np.float32),
                    "s/p/": (i * v).astype(np.float32),
                    "s/i/range/": np.full(n, 2, dtype=np.uint8),
                    "s/gpi/0/": np.packbits(bits & 1, bitorder="little"),
                    "s/gpi/1/": np.packbits((bits >> 1) & 1, bitorder="little")}
            with self._lock:
                active = set(self._active)
                subs = list(self._subs)
            for sig in SIGNALS:
                if sig not in active:
                    continue
                topic = f"{self.path}/{sig}!data"
                fid, idx = SIGNALS[sig]
                msg = {"field_id": fid, "index": idx, "sample_id": sent * decimate,
                       "data": data[sig], "sample_rate": INPUT_RATE,
                       "decimate_factor": decimate}
                for t_sub, fn in subs:
                    if t_sub == topic:
                        fn(topic, msg)
            sent = due


@contextlib.contextmanager
def fake_usb(waveform: Waveform, **kw: Any) -> Iterator[FakeUsbDriver]:
    """Patch the `joulescope` package's v1 backend to use a `FakeUsbDriver` (the package's
    driver wrapper is a singleton: it is reset on entry and exit)."""
    from joulescope.v1 import driver as v1driver

    usb = FakeUsbDriver(waveform, **kw)
    saved = v1driver.Driver
    v1driver.DriverWrapper.__singleton__ = None
    v1driver.Driver = lambda: usb
    try:
        yield usb
    finally:
        wrapper = v1driver.DriverWrapper.__singleton__
        if wrapper is not None:
            for dev in list(wrapper.devices.values()):
                with contextlib.suppress(Exception):
                    dev.close()
        v1driver.DriverWrapper.__singleton__ = None
        v1driver.Driver = saved
        usb.finalize()
