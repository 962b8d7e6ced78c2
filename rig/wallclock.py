"""Where a run's wall time went: named phases measured with `time.perf_counter`.

`rig run` prints the split and writes it to `--json` (`time_split_s`); the session fills
the phases it runs (upload, training, golden, readback, compare), the CLI the ones around
it (startup, target start, close). `benchmarks/run_breakdown.py` reads the same figures.
Start-up counts from the process start (`rig` as a command: interpreter start, imports,
config); called in-process (tests) it includes whatever the process did before.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator

#: phases in the order they happen; `other` is what no phase claimed (host bookkeeping)
PHASES: tuple[str, ...] = ("startup", "target_start", "upload", "training", "golden",
                           "readback", "compare", "close")
LABELS = {"startup": "start-up", "target_start": "target start", "upload": "uploads",
          "training": "device training", "golden": "golden model", "readback": "read-back",
          "compare": "compare", "close": "close", "other": "other"}


class TimeSplit:
    """Accumulated seconds per phase. Phases nest: time spent in an inner phase (e.g. the
    golden model built during the upload) counts for the inner one only."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self._inner: list[float] = []  # per open phase: seconds its inner phases took

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if name not in self.seconds:
            raise KeyError(f"unknown phase {name!r} (one of {', '.join(PHASES)})")
        t0 = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            took = time.perf_counter() - t0
            self.add(name, took - self._inner.pop())
            if self._inner:
                self._inner[-1] += took

    def add(self, name: str, seconds: float) -> None:
        if name not in self.seconds:
            raise KeyError(f"unknown phase {name!r} (one of {', '.join(PHASES)})")
        self.seconds[name] += seconds

    def merge(self, other: TimeSplit) -> None:
        for name, s in other.seconds.items():
            self.add(name, s)

    def as_dict(self, total: float | None = None) -> dict[str, float]:
        """The phases (and `other` and `total` when the total wall time is given)."""
        out = {k: round(v, 4) for k, v in self.seconds.items()}
        if total is not None:
            out["other"] = round(max(0.0, total - sum(self.seconds.values())), 4)
            out["total"] = round(total, 4)
        return out

    def summary(self, total: float | None = None) -> str:
        d = self.as_dict(total)
        parts = [f"{LABELS.get(k, k)} {v:.2f}" for k, v in d.items()
                 if k != "total" and (v >= 0.005 or k in ("upload", "training"))]
        head = f"wall time {d['total']:.2f} s: " if "total" in d else "time: "
        return head + ", ".join(parts) + " (s)"


def since_process_start() -> float | None:
    """Seconds since this process started (interpreter start-up included), from
    /proc/self/stat on Linux; None where that is not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 (starttime), after pid and comm
        hz = os.sysconf("SC_CLK_TCK")
        return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / hz
    except (OSError, ValueError, IndexError, AttributeError):
        return None
