"""What every power monitor promises, the registry of kinds, and a threaded serial reader.

State machine (checked here, once, so adapters cannot drift apart):

    closed --open()--> idle --configure()--> ready --start()--> running --stop()--> ready

`stop()` returns a `Trace`. `mark(label)` is only meaningful while running; it records the
host time since `start()` so windows exist even on instruments without logic inputs.
Every wait is bounded by `timeout_s`: an instrument that stops answering raises
`InstrumentTimeout`, never hangs.
"""

from __future__ import annotations

import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

import serial

from rig.errors import InstrumentError, InstrumentTimeout
from rig.profile.energy import Mark, Trace

_REGISTRY: dict[str, type[PowerMonitor]] = {}


def register_monitor(kind: str) -> Callable[[type[PowerMonitor]], type[PowerMonitor]]:
    """Class decorator: make a monitor available as `create_monitor(kind, ...)`. Third-party
    instruments register the same way; nothing dispatches on kind with if/elif."""

    def deco(cls: type[PowerMonitor]) -> type[PowerMonitor]:
        if kind in _REGISTRY and _REGISTRY[kind] is not cls:
            raise ValueError(f"power monitor kind {kind!r} already registered by "
                             f"{_REGISTRY[kind].__qualname__}")
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return deco


def monitor_kinds() -> list[str]:
    return sorted(_REGISTRY)


def monitor_class(kind: str) -> type[PowerMonitor]:
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise InstrumentError(f"unknown power monitor kind {kind!r}; known: "
                              f"{', '.join(monitor_kinds()) or 'none'}") from None


class PowerMonitor(ABC):
    """One instrument that samples the DUT supply current (and maybe voltage)."""

    kind: ClassVar[str] = ""
    #: (low, high) current in A the instrument measures as configured; None = not stated
    current_range_a: tuple[float, float] | None = None

    def __init__(self, *, timeout_s: float = 2.0, marker_channel: int | None = None) -> None:
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) \
                or not timeout_s > 0:
            raise InstrumentError(f"{self.kind or 'monitor'}: timeout_s must be a number > 0,"
                                  f" got {timeout_s!r}")
        if marker_channel is not None and (isinstance(marker_channel, bool)
                                           or not isinstance(marker_channel, int)):
            raise InstrumentError(f"{self.kind or 'monitor'}: marker_channel must be a "
                                  f"channel number or none, got {marker_channel!r}")
        self.timeout_s = float(timeout_s)
        self.marker_channel = marker_channel
        self.voltage_v: float | None = None
        #: where the energy voltage comes from when the instrument does not measure it
        self.voltage_basis = ""
        self.sample_rate_hz: float | None = None
        self._state = "closed"
        self._t0 = 0.0
        self._marks: list[Mark] = []

    # -- public API: state checks here, instrument work in the _do_* hooks ---------------

    def open(self) -> None:
        if self._state != "closed":
            return
        self._do_open()
        self._state = "idle"

    def close(self) -> None:
        if self._state == "closed":
            return
        try:
            if self._state == "running":
                with contextlib.suppress(InstrumentError):  # closing anyway
                    self._do_stop()
            self._do_close()
        finally:
            self._state = "closed"

    def configure(self, voltage_v: float, sample_rate_hz: float) -> None:
        """Supply voltage (sourced, or expected in ammeter mode) and sample rate."""
        self._require("idle", "ready", action="configure()")
        actual = self._do_configure(float(voltage_v), float(sample_rate_hz))
        self.voltage_v = float(voltage_v)
        # The instrument's own output rate (an adapter returns it where it may differ
        # from the request): every time axis is built from this, never from the request.
        self.sample_rate_hz = float(actual if actual is not None else sample_rate_hz)
        self._state = "ready"

    @property
    def supplies_target(self) -> bool:
        """True when this monitor (as configured) is the board's power supply: then the
        monitor must be configured, and the supply on, before the target is started."""
        return False

    @property
    def powers_target_only_while_running(self) -> bool:
        """True when the board has power only between start() and stop() (the LPM01A
        switches its output on with the acquisition): then one acquisition spans the
        whole run and starts before the target."""
        return False

    def check_current(self, expected_a: float) -> str | None:
        """Compare a current the board is expected to draw (e.g. the power model's) with
        what the instrument measures as configured: raise InstrumentError if it lies above
        the range (the figures would be clipped), return a warning if it lies near or
        below its edges, else None."""
        if self.current_range_a is None or not expected_a > 0:
            return None
        lo, hi = self.current_range_a
        if expected_a > hi:
            raise InstrumentError(
                f"{self.describe()}: the board is expected to draw {expected_a * 1e3:.3g} mA "
                f"(power model), above the {hi * 1e3:g} mA this instrument measures as "
                "configured; the measured energy would be clipped")
        if expected_a > 0.8 * hi:
            return (f"{self.describe()}: expected {expected_a * 1e3:.3g} mA is within 20 % of "
                    f"the {hi * 1e3:g} mA range limit; peaks may clip")
        if expected_a < lo:
            return (f"{self.describe()}: expected {expected_a * 1e3:.3g} mA is below the "
                    f"{lo * 1e3:g} mA the instrument resolves")
        return None

    def start(self) -> None:
        self._require("ready", action="start()")
        self._marks = []
        self._t0 = time.monotonic()
        self._do_start()
        self._state = "running"

    def stop(self) -> Trace:
        self._require("running", action="stop()")
        t_stop = time.monotonic() - self._t0
        self._await_coverage(self._marks[-1].t_s if self._marks else 0.0)
        try:
            trace = self._do_stop()
        finally:
            self._state = "ready"
        # A window still open at stop() ends at stop().
        if self._marks and self._marks[-1].label is not None:
            self._marks.append(Mark(t_stop, None))
        trace.marks = list(self._marks)
        trace.marker_channel = self.marker_channel
        if self.voltage_basis and not trace.voltage_measured:
            trace.meta.setdefault("voltage_basis", self.voltage_basis)
        return trace

    def _await_coverage(self, t_s: float) -> None:
        """Wait (at most timeout_s) until the instrument has delivered samples up to
        `t_s` after start(): a stream lagging the host (USB, a loaded host) would
        otherwise end before the last marked window."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            got = self._received_s()
            if got is None or got >= t_s + 0.01:
                return
            time.sleep(0.01)

    def _received_s(self) -> float | None:
        """Seconds of samples received since start() (None: the adapter cannot tell)."""
        return None

    def mark(self, label: str | None) -> None:
        """From now on the device is in window `label` (closing the previous one);
        `mark(None)` closes the open window. Host clock: expect a few ms of skew against
        the instrument; use a GPIO marker line where edges must be exact."""
        self._require("running", action="mark()")
        self._marks.append(Mark(time.monotonic() - self._t0, label))

    @contextmanager
    def window(self, label: str) -> Iterator[None]:
        self.mark(label)
        try:
            yield
        finally:
            self.mark(None)

    def __enter__(self) -> PowerMonitor:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def state(self) -> str:
        return self._state

    def _require(self, *states: str, action: str) -> None:
        if self._state not in states:
            raise InstrumentError(f"{self.describe()}: {action} needs state "
                                  f"{' or '.join(states)}, monitor is {self._state}")

    def describe(self) -> str:
        return self.kind or type(self).__name__

    # -- what an adapter implements ------------------------------------------------------

    @abstractmethod
    def _do_open(self) -> None: ...

    @abstractmethod
    def _do_close(self) -> None: ...

    @abstractmethod
    def _do_configure(self, voltage_v: float, sample_rate_hz: float) -> float | None:
        """Apply the settings; return the sample rate the instrument will deliver if it
        can differ from the request (None: exactly the request)."""

    @abstractmethod
    def _do_start(self) -> None: ...

    @abstractmethod
    def _do_stop(self) -> Trace: ...


def open_serial(url: str, baudrate: int, who: str) -> serial.Serial:
    """A pyserial port for any URL pyserial knows (device path, socket://, rfc2217://)."""
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=0.05, write_timeout=2.0)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise InstrumentError(f"{who}: cannot open {url}: {exc}") from exc


class SerialReader:
    """Drains a port on a thread into one buffer, so a 400 KB/s stream never overruns the
    OS buffer while the caller sleeps; read errors are kept and re-raised to the caller."""

    def __init__(self, port: serial.Serial, who: str) -> None:
        self._port = port
        self._who = who
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._new = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.last_rx = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"rx-{who}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._port.read(max(1, min(self._port.in_waiting, 1 << 16)))
            except (serial.SerialException, OSError, TypeError) as exc:
                with self._lock:
                    self._error = exc
                    self._new.notify_all()
                return
            if data:
                with self._lock:
                    self._buf += data
                    self.last_rx = time.monotonic()
                    self._new.notify_all()

    def _check(self) -> None:
        if self._error is not None:
            raise InstrumentError(f"{self._who}: port read failed: {self._error}")

    def take(self) -> bytes:
        """Everything received so far (and forget it)."""
        with self._lock:
            self._check()
            out = bytes(self._buf)
            self._buf.clear()
            return out

    def discard(self, n: int) -> None:
        """Forget the first n bytes (a parsed answer), keep what followed it."""
        with self._lock:
            del self._buf[:n]

    def size(self) -> int:
        with self._lock:
            return len(self._buf)

    def wait_for(self, predicate: Callable[[bytearray], bool], timeout_s: float,
                 what: str) -> bytes:
        """Block until predicate(buffer) holds; return (and keep) the buffer contents."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                self._check()
                if predicate(self._buf):
                    return bytes(self._buf)
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = bytes(self._buf[-64:])
                    raise InstrumentTimeout(
                        f"{self._who}: no {what} within {timeout_s:g} s; "
                        + (f"last bytes seen ({len(self._buf)} total): {tail!r}"
                           if self._buf else "nothing received"))
                self._new.wait(min(left, 0.05))

    def wait_quiet(self, quiet_s: float, timeout_s: float) -> None:
        """Wait until nothing has arrived for quiet_s (the instrument drained its stream)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check()
            if time.monotonic() - self.last_rx >= quiet_s:
                return
            time.sleep(min(quiet_s / 4, 0.01))
        raise InstrumentTimeout(f"{self._who}: stream did not stop within {timeout_s:g} s "
                                "after the stop command")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
