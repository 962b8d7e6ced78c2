"""Logic inputs and marker-driven loads for the simulated instruments.

A simulated instrument samples its logic inputs (PPK2 D0..D7, Joulescope GPI0/1) from a
`LogicInput`: anything with `levels(t_abs) -> uint8 array` (bit n = input Dn) at instants
on the host's monotonic clock. `EdgeQueue` is the one to wire a marker pin to: whatever
drives the pin — a board twin's GPIO write hook, a test standing in for the firmware —
calls `set(level)` (stamped now) or `push(t, level)` on every edge, from any thread:

    edges = EdgeQueue(channel=0)
    load = MarkedLoad(edges, idle_a=1e-3, active_a=20e-3)   # DUT current follows the pin
    with PPK2Sim(load, logic=edges) as sim: ...              # D0 = the marker pin
    twin_target.wire_marker(edges)                           # a board twin drives D0

`MarkedLoad` is a DUT whose current follows its marker: `active_a` while the pin is high,
`idle_a` otherwise, so the injected truth of every pulse is V · active_a · (fall − rise),
computed from the edge times alone (`truth_j`), independently of any sampling.

Instruments emit samples up to `now - LAG_S` when a live input is attached, so an edge
stamped just before a sample instant has been pushed before that sample is formed.

`MarkerPin` turns a board catalogue marker pin (lab_config `boards.<b>.marker`) into the
GPIO registers the firmware stores to; `MarkerPin.follow(edges)` is a board twin's pin
listener (the twin's GPIO model reports driven-level changes, `rig.twin.machine.PinEdge`)
and `MarkerPin.wire(edges)` gives per-address write hooks for an emulator without GPIO
models (it calls `hooks[address](value)` on every store to one of those addresses).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

#: how far behind the host clock a simulator with a live logic input emits samples
LAG_S = 0.005


class PinChange(Protocol):
    """What a board twin reports when a driven GPIO pin changes (rig.twin.machine.PinEdge)."""

    @property
    def port_base(self) -> int: ...
    @property
    def pin(self) -> int: ...
    @property
    def level(self) -> int: ...


class LogicInput(Protocol):
    def levels(self, t_abs: np.ndarray) -> np.ndarray:
        """uint8 bitmask (bit n = input Dn) at each host-monotonic instant."""
        ...


class EdgeQueue:
    """Edges of one logic line on the host monotonic clock; thread-safe, time-ordered."""

    def __init__(self, channel: int = 0, *, initial: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= channel <= 7:
            raise ValueError("channel must be 0..7")
        self.channel = channel
        self.clock = clock
        self._lock = threading.Lock()
        self._t: list[float] = []
        self._level: list[int] = []
        self._initial = 1 if initial else 0

    def set(self, level: int | bool) -> None:
        """The line goes to `level` now."""
        with self._lock:  # stamp under the lock: edges stay in time order across threads
            self._append(self.clock(), level)

    def push(self, t_abs: float, level: int | bool) -> None:
        """The line went to `level` at `t_abs` (not before the last edge)."""
        with self._lock:
            self._append(float(t_abs), level)

    def _append(self, t: float, level: int | bool) -> None:
        if self._t and t < self._t[-1]:
            raise ValueError(f"edge at {t} s precedes the last one at {self._t[-1]} s")
        self._t.append(t)
        self._level.append(1 if level else 0)

    @property
    def edges(self) -> list[tuple[float, int]]:
        with self._lock:
            return list(zip(self._t, self._level, strict=True))

    def level(self, t_abs: np.ndarray) -> np.ndarray:
        """0/1 level of the line at each instant."""
        with self._lock:
            t = np.asarray(self._t)
            lv = np.asarray([self._initial, *self._level], dtype=np.uint8)
        return lv[np.searchsorted(t, np.asarray(t_abs, dtype=np.float64), side="right")]

    def levels(self, t_abs: np.ndarray) -> np.ndarray:
        return (self.level(t_abs) << self.channel).astype(np.uint8)

    def pulses(self) -> list[tuple[float, float]]:
        """(rise, fall) of every complete high pulse."""
        out, rise, prev = [], None, self._initial
        for t, lv in self.edges:
            if lv and not prev:
                rise = t
            elif prev and not lv and rise is not None:
                out.append((rise, t))
                rise = None
            prev = lv
        return out


class MarkedLoad:
    """A DUT drawing `active_a` while its marker line is high, `idle_a` otherwise. Use as
    a simulator's waveform (it reads the live line, so times are host-absolute)."""

    absolute_time = True  # simulators pass host-monotonic instants, not trace-relative

    def __init__(self, edges: EdgeQueue, idle_a: float, active_a: float) -> None:
        self.edges = edges
        self.idle_a = idle_a
        self.active_a = active_a

    def current(self, t: np.ndarray) -> np.ndarray:
        high = self.edges.level(np.atleast_1d(t)).astype(bool)
        return np.where(high, self.active_a, self.idle_a)

    def logic(self, t: np.ndarray) -> np.ndarray:
        return self.edges.levels(np.atleast_1d(t))

    def truth_j(self, voltage_v: float) -> list[float]:
        """Injected energy of every complete marker pulse: V · active_a · duration."""
        return [voltage_v * self.active_a * (b - a) for a, b in self.edges.pulses()]


@dataclass(frozen=True)
class MarkerPin:
    """A marker pin's GPIO registers. STM32F4 (RM0090 §8.4): port x at 0x40020000 +
    0x400·x; ODR +0x14; BSRR +0x18, bit n sets pin n, bit n+16 resets it, set wins if both.
    nRF52 (nRF52840 PS §6.9): port p at 0x50000000 + 0x300·p; OUT +0x504, OUTSET +0x508,
    OUTCLR +0x50C (write 1 to a bit to set / clear that pin)."""

    name: str
    family: str  # "stm32" | "nrf"
    port_base: int
    pin: int

    @classmethod
    def parse(cls, pin: str) -> MarkerPin:
        m = re.fullmatch(r"P([A-K])(\d{1,2})", pin)
        if m and int(m.group(2)) < 16:
            return cls(pin, "stm32", 0x4002_0000 + 0x400 * (ord(m.group(1)) - ord("A")),
                       int(m.group(2)))
        m = re.fullmatch(r"P([01])\.(\d{2})", pin)
        if m and int(m.group(2)) < 32:
            return cls(pin, "nrf", 0x5000_0000 + 0x300 * int(m.group(1)), int(m.group(2)))
        raise ValueError(f"marker pin {pin!r}: expected PXn (STM32, e.g. PF13) or Pp.nn "
                         "(nRF52, e.g. P1.08)")

    @property
    def set_write(self) -> tuple[int, int]:
        """(address, value) of the one store that drives the pin high."""
        if self.family == "stm32":
            return self.port_base + 0x18, 1 << self.pin
        return self.port_base + 0x508, 1 << self.pin

    @property
    def clear_write(self) -> tuple[int, int]:
        """(address, value) of the one store that drives the pin low."""
        if self.family == "stm32":
            return self.port_base + 0x18, 1 << (self.pin + 16)
        return self.port_base + 0x50C, 1 << self.pin

    def level_after(self, address: int, value: int) -> int | None:
        """The pin's level after a 32-bit store of `value` to `address`, or None if the
        store does not touch it."""
        bit = 1 << self.pin
        if self.family == "stm32":
            if address == self.port_base + 0x18:
                if value & bit:
                    return 1
                return 0 if value & (bit << 16) else None
            if address == self.port_base + 0x14:
                return 1 if value & bit else 0
            return None
        if address == self.port_base + 0x504:
            return 1 if value & bit else 0
        if address == self.port_base + 0x508 and value & bit:
            return 1
        if address == self.port_base + 0x50C and value & bit:
            return 0
        return None

    def follow(self, edges: EdgeQueue) -> Callable[[PinChange], None]:
        """A pin listener for a board twin (`TwinMachine.pin_listeners`): drives `edges`
        when this pin's driven level changes (the twin's GPIO model resolves the register
        semantics: output mode / DIR, set/clear registers), stamped on the host clock now."""
        def on_change(change: PinChange) -> None:
            if change.port_base == self.port_base and change.pin == self.pin:
                edges.set(change.level)
        return on_change

    def wire(self, edges: EdgeQueue) -> dict[int, Callable[[int], None]]:
        """Write hooks (address -> on_store(value)) that drive `edges` from the stores."""
        state = {"level": 0}

        def on_store(address: int) -> Callable[[int], None]:
            def hook(value: int) -> None:
                level = self.level_after(address, value)
                if level is not None and level != state["level"]:
                    state["level"] = level
                    edges.set(level)
            return hook

        addrs = ({self.port_base + 0x14, self.port_base + 0x18} if self.family == "stm32"
                 else {self.port_base + 0x504, self.port_base + 0x508, self.port_base + 0x50C})
        return {a: on_store(a) for a in sorted(addrs)}
