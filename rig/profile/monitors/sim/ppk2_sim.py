"""A simulated Nordic PPK2 on a pty: raw command bytes in, metadata text and 4-byte samples
out, paced in real time at 100 kS/s. Written from the protocol description (see
rig/profile/monitors/ppk2.py), as the inverse of the host-side decoding: it picks the
most sensitive range that holds the current (as the PPK2's auto-ranging does) and inverts
the calibration polynomial to an ADC code.

The DUT power switch is modelled: until the host sends DeviceRunningSet 0x0C 0x01 (and
after 0x0C 0x00) the DUT is unpowered in either mode: it draws no current and drives no
logic line. A live logic input (`logic=`, e.g. an `EdgeQueue` a board twin's marker GPIO
drives) replaces the waveform's logic bits; see `rig.profile.monitors.sim.logic`.
"""

from __future__ import annotations

import numpy as np

from rig.profile.monitors.sim.logic import LAG_S, LogicInput, MarkedLoad
from rig.profile.monitors.sim.pty_server import PtyServer
from rig.profile.monitors.sim.waveform import Waveform

RATE = 100_000
ADC_LSB_V = 1.8 / 163840  # volts per (4 x ADC code)

# A plausible, deliberately non-trivial calibration: gains and offsets differ per range so
# a host that ignored them would miss the analytic energy.
CAL = {
    "R": [1020.50, 101.10, 10.21, 0.952, 0.0441],
    "GS": [0.0, 0.002, 0.01, 0.0005, 0.0],
    "GI": [1.004, 0.997, 1.012, 0.995, 1.0],
    "O": [101.2, 84.6, 63.0, 40.5, 22.0],
    "S": [0.0, 2e-7, 1e-6, 0.0, 0.0],
    "I": [0.0, -1e-7, 3e-6, 0.0, 0.0],
    "UG": [1.0, 1.0, 0.998, 1.0, 1.0],
}


def metadata_text(cal: dict[str, list[float]] = CAL) -> str:
    lines = ["Calibrated: 0"]
    for key in ("R", "GS", "GI", "O", "S", "I", "UG"):
        lines += [f"{key}{k}: {v:.6g}" for k, v in enumerate(cal[key])]
    lines += ["HW: 9173", "mode: 2", "IA: 56", "END", ""]
    return "\n".join(lines)


def encode(current_a: np.ndarray, logic: np.ndarray, counter0: int, vdd_v: float,
           cal: dict[str, list[float]] = CAL) -> np.ndarray:
    """uint32 sample words for the given currents."""
    n = len(current_a)
    out_code = np.zeros(n, dtype=np.int64)
    out_rng = np.full(n, 4, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    for r in range(5):
        gs, gi, ug = cal["GS"][r], cal["GI"][r], cal["UG"][r]
        c = cal["S"][r] * vdd_v + cal["I"][r] - current_a / ug
        if gs == 0.0:
            x = -c / gi
        else:
            x = (-gi + np.sqrt(np.maximum(gi * gi - 4 * gs * c, 0.0))) / (2 * gs)
        code4 = x * cal["R"][r] / ADC_LSB_V + cal["O"][r]
        code = np.rint(code4 / 4.0).astype(np.int64)
        fits = (~done) & (code >= 0) & (code <= 0x3FFF)
        # Most sensitive range first, but leave headroom so ranging is stable.
        fits &= (code <= 0x3800) | (r == 4)
        out_code[fits], out_rng[fits] = code[fits], r
        done |= fits
    counter = (counter0 + np.arange(n)) & 0x3F
    return (out_code | (out_rng << 14) | (counter << 18)
            | (logic.astype(np.int64) << 24)).astype("<u4")


class PPK2Sim(PtyServer):
    """fault: None | "silent" (answers nothing) | "no_end" (metadata never ends) |
    "bad_metadata" (a non-numeric calibration value) | "stall" (no samples after
    AverageStart) | "misaligned" (one stray byte before the samples) | "drop" (loses a
    few samples in transit, as USB data loss does)."""

    name = "ppk2"

    def __init__(self, waveform: Waveform | MarkedLoad, fault: str | None = None,
                 logic: LogicInput | None = None) -> None:
        super().__init__()
        self.waveform = waveform
        self.logic = logic
        self._live = logic is not None or getattr(waveform, "absolute_time", False)
        self.fault = fault
        self.vdd_mv = 0
        self.power_mode = 0
        self.dut_on = False
        self.running = False
        self._t_start = 0.0
        self._sent = 0
        self._pending = bytearray()
        self.commands: list[tuple[int, ...]] = []

    DROP_AT = (10_000, 25_000)
    _LENGTHS = {0x06: 1, 0x07: 1, 0x0C: 2, 0x0D: 3, 0x11: 2, 0x19: 1, 0x25: 6}

    def on_bytes(self, data: bytes) -> None:
        self._pending += data
        while self._pending:
            op = self._pending[0]
            need = self._LENGTHS.get(op, 1)
            if len(self._pending) < need:
                return
            cmd = tuple(self._pending[:need])
            del self._pending[:need]
            self.commands.append(cmd)
            if self.fault == "silent":
                continue
            self._handle(cmd)

    def _handle(self, cmd: tuple[int, ...]) -> None:
        op = cmd[0]
        if op == 0x19:
            if self.fault == "no_end":
                self.send(b"Calibrated: 0\nR0: 1020.5\nR1: 101.1\n")
            elif self.fault == "bad_metadata":
                self.send(metadata_text().replace("R2: 10.21", "R2: 1O.21").encode())
            else:
                self.send(metadata_text().encode())
        elif op == 0x0D:
            self.vdd_mv = (cmd[1] << 8) | cmd[2]
        elif op == 0x11:
            self.power_mode = cmd[1]
        elif op == 0x0C:
            self.dut_on = bool(cmd[1])
        elif op == 0x06:
            self.running = True
            self._sent = 0
            self._t_start = 0.0
            if self.fault == "misaligned":
                self.send(b"\x5a")
        elif op == 0x07:
            self.running = False

    @property
    def dut_powered(self) -> bool:
        """The DUT power switch is on (and, in source mode, a voltage was set)."""
        return self.dut_on and (self.power_mode != 2 or self.vdd_mv > 0)

    def tick(self, now: float) -> None:
        if not self.running or self.fault == "stall":
            return
        if self._t_start == 0.0:
            self._t_start = now
        due = int((now - (LAG_S if self._live else 0.0) - self._t_start) * RATE)
        n = min(due - self._sent, 5000)
        if n <= 0:
            return
        t = (self._sent + np.arange(n)) / RATE
        t_wave = t + self._t_start if getattr(self.waveform, "absolute_time", False) else t
        current = self.waveform.current(t_wave)
        logic = (self.logic.levels(t + self._t_start) if self.logic is not None
                 else self.waveform.logic(t_wave))
        if not self.dut_powered:
            current, logic = np.zeros(n), np.zeros(n, dtype=np.uint8)
        words = encode(current, logic, self._sent, self.vdd_mv / 1000.0)
        if self.fault == "drop":
            # three samples lost in transit at each of these, also where a point straddles
            # two ticks' chunks (how a tick cuts the stream depends on host timing)
            lost = [i - self._sent for b in self.DROP_AT for i in range(b, b + 3)
                    if self._sent <= i < self._sent + n]
            words = np.delete(words, lost)
        self._sent += n
        self.send(words.tobytes())
