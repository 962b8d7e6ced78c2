"""A piecewise-constant DUT current profile with logic lines, and its exact energy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segment:
    duration_s: float
    current_a: float
    logic: int = 0  # bit n = logic input Dn (the firmware's marker GPIO)


class Waveform:
    """Segments played once from t = 0, then the last segment's level forever."""

    def __init__(self, segments: list[Segment]) -> None:
        if not segments:
            raise ValueError("a waveform needs at least one segment")
        self.segments = list(segments)
        self._ends = np.cumsum([s.duration_s for s in segments])
        self._current = np.array([s.current_a for s in segments] + [segments[-1].current_a])
        self._logic = np.array([s.logic for s in segments] + [segments[-1].logic],
                               dtype=np.uint8)

    def _seg(self, t: np.ndarray) -> np.ndarray:
        return np.searchsorted(self._ends, t, side="right")

    def current(self, t: np.ndarray) -> np.ndarray:
        return self._current[self._seg(np.asarray(t, dtype=np.float64))]

    def logic(self, t: np.ndarray) -> np.ndarray:
        return self._logic[self._seg(np.asarray(t, dtype=np.float64))]

    def energy_j(self, voltage_v: float, logic_mask: int) -> float:
        """Exact energy of the segments whose logic has any bit of `logic_mask` set."""
        return voltage_v * sum(s.current_a * s.duration_s for s in self.segments
                               if s.logic & logic_mask)

    @property
    def length_s(self) -> float:
        return float(self._ends[-1])


def training_step_waveform(idle_a: float, a_a: float, b_a: float, marker: int = 1,
                           lead_s: float = 0.02, a_s: float = 0.1, b_s: float = 0.05
                           ) -> Waveform:
    """Idle, then a marked window of a_a for a_s followed by b_a for b_s, then idle:
    the shape of one training step (forward then a heavier backward)."""
    return Waveform([Segment(lead_s, idle_a), Segment(a_s, a_a, marker),
                     Segment(b_s, b_a, marker), Segment(0.02, idle_a)])
