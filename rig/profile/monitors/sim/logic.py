"""Logic inputs and marker-driven loads for the simulated instruments.

A simulated instrument samples its logic inputs (PPK2 D0..D7, Joulescope GPI0/1) from a
`LogicInput`: anything with `levels(t_abs) -> uint8 array` (bit n = input Dn) at instants
on the host's monotonic clock. `EdgeQueue` is the one to wire a marker pin to: whatever
drives the pin — a board twin's GPIO write hook, a test standing in for the firmware —
calls `set(level)` (stamped now) or `push(t, level)` on every edge, from any thread:

    edges = EdgeQueue(channel=0)
    load = MarkedLoad(edges, idle_a=1e-3, active_a=20e-3)   # DUT current follows the pin
    with PPK2Sim(load, logic=edges) as sim: ...              # D0 = the marker pin
    twin.on_gpio_write(pin, lambda level: edges.set(level))  # (a twin, later)

`MarkedLoad` is a DUT whose current follows its marker: `active_a` while the pin is high,
`idle_a` otherwise, so the injected truth of every pulse is V · active_a · (fall − rise),
computed from the edge times alone (`truth_j`), independently of any sampling.

Instruments emit samples up to `now - LAG_S` when a live input is attached, so an edge
stamped just before a sample instant has been pushed before that sample is formed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

#: how far behind the host clock a simulator with a live logic input emits samples
LAG_S = 0.005


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
