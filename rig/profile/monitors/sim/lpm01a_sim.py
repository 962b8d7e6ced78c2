"""A simulated ST X-NUCLEO-LPM01A (PowerShield) on a pty: text commands in, prompt-prefixed
acks/errors and ascii_dec sample lines out, paced in real time at the configured rate.
Implements the subset described in rig/profile/monitors/lpm01a.py. The wording of error
details is ours (the real firmware's exact texts are not reproduced).
"""

from __future__ import annotations

import math
from typing import Any

from rig.profile.monitors.sim.pty_server import PtyServer
from rig.profile.monitors.sim.waveform import Waveform

P = "PowerShield > "
_FREQ = {"100k": 100_000, "50k": 50_000, "20k": 20_000, "10k": 10_000, "5k": 5000,
         "2k": 2000, "1k": 1000, "500": 500, "200": 200, "100": 100, "50": 50, "20": 20,
         "10": 10, "5": 5, "2": 2, "1": 1}


def encode_ascii_dec(current_a: float) -> str:
    """4-digit mantissa x 10^(sign exponent): 6.409e-4 A -> '6409-07'."""
    if current_a <= 0:
        return "0000-00"
    e = 3 - math.floor(math.log10(current_a))  # mantissa in [1000, 9999]
    m = round(current_a * 10.0 ** e)
    if m >= 10000:
        m, e = round(m / 10), e - 1
    return f"{m:04d}{'-' if e >= 0 else '+'}{abs(e):02d}"


class LPM01ASim(PtyServer):
    """fault: None | "silent" | "garbage" (a corrupt data line mid-stream) | "error"
    (an error report mid-stream) | "no_done" (never confirms the end of acquisition)."""

    name = "lpm01a"

    def __init__(self, waveform: Waveform, fault: str | None = None) -> None:
        super().__init__()
        self.waveform = waveform
        self.fault = fault
        self.host_control = False
        self.settings: dict[str, Any] = {"volt": 3300, "freq": 100, "acqtime": 10.0,
                                         "format": "ascii_dec", "output": "current",
                                         "trigsrc": "sw"}
        self.running = False
        self._t_start = 0.0
        self._sent = 0
        self._line = bytearray()
        self.commands: list[str] = []

    def _say(self, text: str) -> None:
        self.send(f"\r\n{P}{text}\r\n\r\n".encode())

    def _refuse(self, cmd: str, detail: str) -> None:
        self.send(f"\r\n{P}error {cmd}\r\n{P}Error detail: {detail}\r\n".encode())

    def on_bytes(self, data: bytes) -> None:
        self._line += data
        while b"\n" in self._line:
            raw, _, rest = bytes(self._line).partition(b"\n")
            self._line = bytearray(rest)
            cmd = raw.decode("ascii", errors="replace").strip()
            if cmd:
                self.commands.append(cmd)
                if self.fault != "silent":
                    self._handle(cmd)

    def _handle(self, cmd: str) -> None:
        word, _, arg = cmd.partition(" ")
        if word == "htc":
            self.host_control = True
            return self._say("ack htc")
        if word == "hrc":
            self.host_control = False
            return self._say("ack hrc")
        if not self.host_control:
            return self._refuse(cmd, "host does not have control, send 'htc' first")
        if word == "stop":
            if self.running:
                self.running = False
                if self.fault != "no_done":
                    self.send(f"{P}Acquisition completed\r\n".encode())
            return
        if self.running:
            return self._refuse(cmd, "acquisition in progress")
        if word == "volt":
            mv = _millivolts(arg)
            if mv is None or not 1800 <= mv <= 3300:
                return self._refuse(cmd, "voltage out of range [1800m; 3300m]")
            self.settings["volt"] = mv
        elif word == "freq":
            if arg not in _FREQ:
                return self._refuse(cmd, "frequency not in list")
            self.settings["freq"] = _FREQ[arg]
        elif word == "acqtime":
            self.settings["acqtime"] = 0.0 if arg in ("0", "inf") else float(arg)
        elif word == "format":
            if arg != "ascii_dec":
                return self._refuse(cmd, "simulator speaks ascii_dec only")
            self.settings["format"] = arg
        elif word in ("output", "trigsrc", "acqmode", "funcmode", "pwr", "pwrend", "lcd"):
            self.settings[word] = arg
        elif word == "start":
            self._say("ack start")
            self.running = True
            self._t_start = 0.0
            self._sent = 0
            return
        else:
            return self._refuse(cmd, "command not recognized")
        self._say(f"ack {cmd}")

    def tick(self, now: float) -> None:
        if not self.running:
            return
        if self._t_start == 0.0:
            self._t_start = now
            self.send(b"TimeStamp: 000s 000ms, buff 00%\r\n")
        rate = self.settings["freq"]
        due = int((now - self._t_start) * rate)
        if due <= self._sent:
            return
        lines = []
        for k in range(self._sent, due):
            t = k / rate
            lines.append(encode_ascii_dec(float(self.waveform.current(t))))
            if self.fault == "garbage" and k == rate // 10:
                lines.append("64?9-0#")
            if self.fault == "error" and k == rate // 10:
                lines.append(f"{P}error: overcurrent on target supply")
        self._sent = due
        self.send(("\r\n".join(lines) + "\r\n").encode())


def _millivolts(arg: str) -> int | None:
    try:
        if arg.endswith("m"):
            return int(round(float(arg[:-1])))
        return int(round(float(arg) * 1000))
    except ValueError:
        return None
