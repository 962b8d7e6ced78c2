"""ST X-NUCLEO-LPM01A (PowerShield) over its virtual COM port, plain-text protocol.

Protocol facts used (ST UM2269 as reproduced in the PowerShield firmware's own `help`
text, quoted in the MLPerf Tiny energy runner's power manager, and the command/answer
transcripts in Zephyr's power-twister-harness and other public drivers; no code copied):

- 3686400 baud 8N1. Commands are text lines: `htc` (host takes control), `hrc`
  (release), `volt <1800m..3300m>`, `freq <100k|50k|20k|10k|5k|2k|1k|500|200|100|50|20|
  10|5|2|1>`, `acqtime <0 = infinite | 100u..100>`, `format <ascii_dec|bin_hexa>`,
  `output <current|energy>`, `trigsrc <sw|d7>`, `start`, `stop`.
- Answers carry the prompt `PowerShield > `: `PowerShield > ack <command as sent>` on
  success, `PowerShield > error ...` followed by an `Error detail: ...` line on failure.
- ascii_dec data: one sample per line, 4-digit mantissa, sign, 2-digit exponent:
  `6409-07` = 6409 x 10^-7 A = 640.9 uA. ascii_dec is limited to <= 5 kHz for unlimited
  acquisition time (10 kHz for 1 s, 20 kHz for 500 ms); bin_hexa reaches 100 kHz.
- `TimeStamp ...` lines interleave with the data; after `stop` (or the end of a finite
  acqtime) the board prints `PowerShield > Acquisition completed`.

Not implemented: bin_hexa (so no rate above 5 kHz), `output energy`. Uncertain: the exact
summary text after "Acquisition completed" (we accept and keep any prompt-prefixed line),
and whether commands need CR LF or LF (we send CR LF, as a working public driver does).
One public decoder inserts a decimal point after the first digit (6409-07 -> 6.409e-7);
we follow ST's own help text (6409 x 10^-7). The LPM01A has no logic inputs for window
marking; windows come from host marks, or `trigger="d7"` starts acquisition on the
firmware's GPIO edge (D7), making t = 0 that edge.
"""

from __future__ import annotations

import re
import time

import numpy as np
import serial

from rig.errors import InstrumentError
from rig.profile.energy import Trace
from rig.profile.monitors.base import PowerMonitor, SerialReader, open_serial, register_monitor

PROMPT = "PowerShield > "
BAUD = 3686400
FREQS = {100_000: "100k", 50_000: "50k", 20_000: "20k", 10_000: "10k", 5000: "5k",
         2000: "2k", 1000: "1k", 500: "500", 200: "200", 100: "100", 50: "50", 20: "20",
         10: "10", 5: "5", 2: "2", 1: "1"}
ASCII_MAX_HZ = 5000  # ascii_dec streams without a time limit up to here
VOLT_RANGE_MV = (1800, 3300)
_SAMPLE = re.compile(r"^(\d{4})([+-])(\d{2})$")
_DONE = "Acquisition completed"


def _lines(buf: bytes | bytearray) -> list[str]:
    """Complete lines only (the last fragment may still be arriving)."""
    text = bytes(buf).decode("ascii", errors="replace")
    return [ln.strip() for ln in text.split("\n")[:-1]]


def _unprompt(line: str) -> tuple[bool, str]:
    if line.startswith(PROMPT.strip()):
        return True, line[len(PROMPT.strip()):].strip()
    return False, line


def decode_value(text: str) -> float | None:
    m = _SAMPLE.match(text)
    if not m:
        return None
    exp = int(m.group(3)) * (-1 if m.group(2) == "-" else 1)
    return int(m.group(1)) * 10.0 ** exp


@register_monitor("lpm01a")
class LPM01AMonitor(PowerMonitor):
    """The LPM01A supplies the board (1.8..3.3 V, sourced: set, not measured) and measures
    its current. Dynamic mode (the one streaming here) measures 100 nA .. 50 mA, with
    overcurrent protection from 59 mA (ST UM2243 rev 2, "Dynamic current measurement
    principle"): `check_current` compares the board's modelled current with that."""

    current_range_a = (100e-9, 50e-3)

    def __init__(self, port: str, *, timeout_s: float = 2.0, trigger: str = "sw",
                 marker_channel: int | None = None) -> None:
        if marker_channel is not None:
            raise InstrumentError("LPM01A has no logic inputs: use host marks, or "
                                  "trigger='d7' to start on the firmware's GPIO edge")
        super().__init__(timeout_s=timeout_s, marker_channel=None)
        if not isinstance(port, str) or not port:
            raise InstrumentError(f"LPM01A port must be a device path or URL, got {port!r}")
        if trigger not in ("sw", "d7"):
            raise InstrumentError(f"LPM01A trigger must be 'sw' or 'd7', got {trigger!r}")
        self.port = port
        self.trigger = trigger
        self._ser: serial.Serial | None = None
        self._reader: SerialReader | None = None

    def describe(self) -> str:
        return f"LPM01A on {self.port}"

    @property
    def supplies_target(self) -> bool:
        return True

    @property
    def powers_target_only_while_running(self) -> bool:
        # The PowerShield switches its output to the target on with `start` (and off
        # at the end of the acquisition): the board is dead outside an acquisition.
        return True

    def _send(self, line: str) -> None:
        assert self._ser is not None
        try:
            self._ser.write(line.encode("ascii") + b"\r\n")
            self._ser.flush()
        except (serial.SerialException, OSError) as exc:
            raise InstrumentError(f"{self.describe()}: write failed: {exc}") from exc

    def command(self, cmd: str) -> list[str]:
        """Send one command, return the lines up to and including its ack. A refusal
        raises InstrumentError with the board's own error detail."""
        assert self._reader is not None
        self._reader.take()
        self._send(cmd)

        def answered(buf: bytearray) -> bool:
            for ln in _lines(buf):
                _, body = _unprompt(ln)
                if body == f"ack {cmd}" or body.startswith(f"ack {cmd} ") or \
                        body.lower().startswith("error"):
                    return True
            return False

        buf = self._reader.wait_for(answered, self.timeout_s, f"answer to {cmd!r}")
        lines = [_unprompt(ln)[1] for ln in _lines(buf)]
        err = next((ln for ln in lines if ln.lower().startswith("error")), None)
        if err is not None:
            detail = ""
            try:
                more = self._reader.wait_for(lambda b: b"Error detail" in b and
                                             bytes(b).rstrip(b" ").endswith(b"\n"),
                                             min(0.3, self.timeout_s), "error detail")
                detail = next((ln for ln in (_unprompt(x)[1] for x in _lines(more))
                               if ln.startswith("Error detail")), "")
            except InstrumentError:
                pass
            raise InstrumentError(f"{self.describe()} refused {cmd!r}: {err}"
                                  + (f" ({detail})" if detail else ""))
        # Consume only through the ack line: samples may follow it at once (start).
        at = buf.find(f"ack {cmd}".encode())
        end = buf.find(b"\n", at)
        self._reader.discard(end + 1 if at >= 0 and end >= 0 else len(buf))
        return lines

    def _do_open(self) -> None:
        self._ser = open_serial(self.port, BAUD, self.describe())
        self._reader = SerialReader(self._ser, self.describe())
        try:
            self.command("htc")
        except BaseException:
            self._do_close()
            raise

    def _do_close(self) -> None:
        if self._ser is not None:
            try:
                self._send("hrc")  # best effort: give the board back its front panel
                time.sleep(0.02)
            except InstrumentError:
                pass
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._ser is not None:
            self._ser.close()
            self._ser = None

    def _do_configure(self, voltage_v: float, sample_rate_hz: float) -> float:
        mv = round(voltage_v * 1000)
        if not VOLT_RANGE_MV[0] <= mv <= VOLT_RANGE_MV[1]:
            raise InstrumentError(f"{self.describe()}: voltage {voltage_v} V outside "
                                  f"{VOLT_RANGE_MV[0]}m..{VOLT_RANGE_MV[1]}m")
        rate = int(round(sample_rate_hz))
        if rate not in FREQS or abs(rate - sample_rate_hz) > 1e-9:
            raise InstrumentError(f"{self.describe()}: sample rate {sample_rate_hz} Hz not "
                                  f"one of {sorted(FREQS)}")
        if rate > ASCII_MAX_HZ:
            raise InstrumentError(f"{self.describe()}: {rate} Hz needs the bin_hexa format, "
                                  f"which this adapter does not speak (ascii_dec <= "
                                  f"{ASCII_MAX_HZ} Hz)")
        for cmd in (f"volt {mv}m", f"freq {FREQS[rate]}", "acqtime 0", "format ascii_dec",
                    "output current", f"trigsrc {self.trigger}"):
            self.command(cmd)
        return float(rate)

    def _do_start(self) -> None:
        self.command("start")

    def _do_stop(self) -> Trace:
        assert self._reader is not None
        self._send("stop")
        data = self._reader.wait_for(lambda b: _DONE.encode() in b, self.timeout_s,
                                     f"'{_DONE}' after stop")
        values, meta = self._parse_stream(_lines(data))
        if len(values) < 2:
            raise InstrumentError(f"{self.describe()}: only {len(values)} sample(s) recorded")
        rate = float(self.sample_rate_hz or 1.0)
        return Trace(t_s=np.arange(len(values)) / rate, current_a=np.asarray(values),
                     voltage_v=float(self.voltage_v or 0.0), instrument=self.describe(),
                     sample_rate_hz=rate, voltage_measured=False,
                     meta={**meta, "voltage": "sourced"})

    def _parse_stream(self, lines: list[str]) -> tuple[list[float], dict[str, object]]:
        values: list[float] = []
        messages: list[str] = []
        timestamps = 0
        for n, raw in enumerate(lines, start=1):
            if not raw:
                continue
            prompted, body = _unprompt(raw)
            if body.startswith(_DONE):
                break
            v = None if prompted else decode_value(body)
            if v is not None:
                values.append(v)
            elif body.startswith("TimeStamp"):
                timestamps += 1
            elif body.lower().startswith("error"):
                raise InstrumentError(f"{self.describe()} reported during acquisition "
                                      f"(after {len(values)} samples): {body}")
            elif prompted:
                messages.append(body)
            else:
                # A corrupted data line is a lost sample: the time axis would slip.
                raise InstrumentError(f"{self.describe()}: unreadable data line {n} after "
                                      f"{len(values)} samples: {raw[:60]!r}")
        return values, {"messages": messages, "timestamps": timestamps}
