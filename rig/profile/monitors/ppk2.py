"""Nordic Power Profiler Kit II over its USB CDC serial port.

Protocol facts used (from Nordic's pc-nrfconnect-ppk sources, src/constants.ts,
src/device/serialDevice.ts and abstractDevice.ts, cross-checked with the public
ppk2-api-python; no code taken from either):

- Host→device commands are raw bytes, no framing, no acknowledgement:
  GetMetadata 0x19; AverageStart 0x06; AverageStop 0x07; DeviceRunningSet 0x0C <0|1>
  (DUT power); RegulatorSet 0x0D <mV >> 8> <mV & 0xFF> (800..5000 mV); SetPowerMode 0x11
  <1 = ampere meter, 2 = source meter>. (0x11 is also listed as TriggerExtToggle, a PPK1
  leftover.)
- GetMetadata answers text lines "key: value" ending with "END". Keys (case varies, Nordic
  lower-cases them): Calibrated, R0..R4 (shunt resistors, ohm), GS0..GS4, GI0..GI4 (gain,
  quadratic and linear), O0..O4 (ADC offset), S0..S4, I0..I4 (supply-dependent and
  constant correction), UG0..UG4 (user gain), HW, mode, IA. "-nan" appears for unset
  values; Nordic then keeps its defaults, and so do we.
- After AverageStart the device streams 4-byte little-endian samples at 100 kS/s (10 us):
  bits 0-13 ADC value, 14-16 measurement range (0..4), 18-23 a 6-bit rolling counter,
  24-31 the logic port D0..D7.
- Current in A for range r: x = (4·adc − O_r) · (1.8 / 163840) / R_r;
  I = UG_r · (x · (GS_r · x + GI_r) + S_r · V_dd + I_r), V_dd in volts.

DUT power: the PPK2's DUT power switch (DeviceRunningSet 0x0C 0x01) gates the path to the
DUT in *both* modes. Nordic's app sends it in ampere mode too, and Nordic's documentation
says ampere mode turns "Enable power output" on by default; without it the board behind a
PPK2 in ampere mode is unpowered and reads ~0 A. So `power_dut=True` (default) sends it
after the mode and regulator commands in either mode. At close, source mode switches the
DUT off again (the PPK2 was its supply); ampere mode leaves the path on, so the board keeps
running from its own supply.

Uncertain, and said so where it matters below: that the counter steps once per sample
(Nordic's loss detector assumes it; we check it, `counter_check=False` turns that off);
that RegulatorSet also matters in ampere mode (we send it: Nordic's app does, and the S_r
term needs V_dd anyway); the USB baud rate is ignored by CDC (Nordic opens 115200).

Why a driver of our own and not PyPI `ppk2-api` (0.9.2, read for this decision): it opens
its own `serial.Serial(port)` (no socket:// or rfc2217:// URLs, so no remote bench); it
ignores the rolling counter (lost USB data silently shortens the time axis), maps range
codes 5..7 to range 4, drops a sample it cannot convert after printing "Measurement
outside of range!", and returns None from a metadata parse that failed; it decodes in a
Python loop per sample and always applies the spike filter. Ours checks all of that and
says so (see decode_samples). The command bytes and decoding agree with it (issue 19:
all 4,201 voltage settings byte-identical, currents within 2e-15 relative).

Spike filter: Nordic's app (and ppk2-api) smooth the few samples after each shunt-range
switch, where the analogue front end settles. Decision: not applied. The filter replaces
measured samples by a moving average whose effect on a window's charge depends on the
unknown transient; we integrate the calibrated samples as measured and report the number
of range switches per trace (`meta["range_switches"]`), which bounds the exposure
(each switch touches ~3 samples = 30 us at 100 kS/s).
"""

from __future__ import annotations

import re
import time

import numpy as np
import serial

from rig.errors import InstrumentError
from rig.profile.energy import Trace
from rig.profile.monitors.base import PowerMonitor, SerialReader, open_serial, register_monitor

CMD_AVERAGE_START = 0x06
CMD_AVERAGE_STOP = 0x07
CMD_DEVICE_RUNNING_SET = 0x0C
CMD_REGULATOR_SET = 0x0D
CMD_SET_POWER_MODE = 0x11
CMD_GET_METADATA = 0x19

POWER_MODE = {"ampere": 1, "source": 2}
NATIVE_RATE_HZ = 100_000.0
ADC_MULT = 1.8 / 163840
N_RANGES = 5
VDD_RANGE_MV = (800, 5000)

# Nordic's defaults, used where metadata leaves a value unset ("-nan") or absent.
DEFAULTS: dict[str, list[float]] = {
    "r": [1031.64, 101.65, 10.15, 0.94, 0.043],
    "gs": [1.0] * N_RANGES,
    "gi": [1.0] * N_RANGES,
    "o": [0.0] * N_RANGES,
    "s": [0.0] * N_RANGES,
    "i": [0.0] * N_RANGES,
    "ug": [1.0] * N_RANGES,
}
_KEY = re.compile(r"^(r|gs|gi|o|s|i|ug)([0-4])$")
_LINE = re.compile(r"^([A-Za-z_]+[0-9]*):\s*(\S+)$")
# A corrupt stream (misaligned, or not a PPK2 at all) shows as counter steps != 1; a few
# are USB data loss, more than this fraction means we cannot trust the time axis.
MAX_BAD_STEP_FRACTION = 0.001


def parse_metadata(text: str, who: str = "PPK2") -> dict[str, np.ndarray]:
    """Calibration arrays (one entry per range) from GetMetadata text. Raises
    InstrumentError naming the offending line on anything that is not 'key: number'."""
    if "END" not in text:
        raise InstrumentError(f"{who}: metadata has no END marker: {text[-80:]!r}")
    body = text[: text.index("END")]
    cal = {k: list(v) for k, v in DEFAULTS.items()}
    seen_r = 0
    for n, raw in enumerate(body.replace("\r", "").split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        m = _LINE.match(line)
        if not m:
            raise InstrumentError(f"{who}: metadata line {n} is not 'key: value': {line!r}")
        shown, value = m.group(1), m.group(2)
        key = shown.lower()
        km = _KEY.match(key)
        if value.lower() in ("-nan", "nan"):
            continue  # unset on this unit: keep the default, as Nordic's app does
        try:
            number = float(value)
        except ValueError:
            raise InstrumentError(f"{who}: metadata line {n}: {shown} = {value!r} is not a "
                                  "number") from None
        if km:
            name, idx = km.group(1), int(km.group(2))
            if name == "r":
                if not number > 0:
                    raise InstrumentError(f"{who}: metadata line {n}: shunt {shown} "
                                          f"= {number} ohm is not positive")
                seen_r += 1
            cal[name][idx] = number
    if seen_r == 0:
        raise InstrumentError(f"{who}: metadata has no shunt calibration (R0..R4); "
                              f"is this a PPK2? got {body[:80]!r}")
    return {k: np.asarray(v, dtype=np.float64) for k, v in cal.items()}


def decode_samples(data: bytes, cal: dict[str, np.ndarray], vdd_v: float, *,
                   counter_check: bool = True, who: str = "PPK2"
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """(sample index, current A, logic byte, stats) from the raw stream."""
    n = len(data) // 4
    raw = np.frombuffer(data[: n * 4], dtype="<u4")
    stats = {"trailing_bytes": len(data) - n * 4, "missing_samples": 0, "bad_range": 0,
             "range_switches": 0}
    if n == 0:
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, empty.astype(np.uint8), stats
    adc = (raw & 0x3FFF).astype(np.float64) * 4.0
    rng = ((raw >> 14) & 0x7).astype(np.int64)
    counter = ((raw >> 18) & 0x3F).astype(np.int64)
    logic = (raw >> 24).astype(np.uint8)

    if counter_check and n > 1:
        steps = (np.diff(counter)) & 0x3F
        bad = int(np.count_nonzero(steps != 1))
        if bad > max(2, MAX_BAD_STEP_FRACTION * n):
            raise InstrumentError(
                f"{who}: sample stream corrupt: {bad} of {n - 1} counter steps are not +1 "
                f"(stream misaligned, data loss or not a PPK2); first words: "
                f"{' '.join(f'{w:08x}' for w in raw[:4])}")
        steps[steps == 0] = 64  # a full wrap: 63 samples lost
        index = np.concatenate(([0], np.cumsum(steps)))
        stats["missing_samples"] = int(index[-1] - (n - 1))
    else:
        index = np.arange(n, dtype=np.int64)

    ok = rng < N_RANGES
    stats["bad_range"] = int(np.count_nonzero(~ok))
    if stats["bad_range"] > max(2, MAX_BAD_STEP_FRACTION * n):
        raise InstrumentError(f"{who}: {stats['bad_range']} of {n} samples carry range "
                              "5..7, which a PPK2 does not have: stream corrupt")
    adc, rng, index, logic = adc[ok], rng[ok], index[ok], logic[ok]
    stats["range_switches"] = int(np.count_nonzero(np.diff(rng))) if len(rng) > 1 else 0
    x = (adc - cal["o"][rng]) * (ADC_MULT / cal["r"][rng])
    current = cal["ug"][rng] * (x * (cal["gs"][rng] * x + cal["gi"][rng])
                                + cal["s"][rng] * vdd_v + cal["i"][rng])
    return index, current, logic, stats


def decimate(index: np.ndarray, current: np.ndarray, logic: np.ndarray, factor: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average blocks of `factor` native samples (energy-preserving); logic bits by
    majority. Blocks left empty by lost samples are dropped, not invented."""
    if factor == 1:
        return index.astype(np.float64), current, logic
    b = index // factor
    count = np.bincount(b)
    keep = count > 0
    mean_i = np.bincount(b, weights=current)[keep] / count[keep]
    centre = np.bincount(b, weights=index.astype(np.float64))[keep] / count[keep]
    bits = np.zeros(int(keep.sum()), dtype=np.uint8)
    for k in range(8):
        high = np.bincount(b, weights=((logic >> k) & 1).astype(np.float64))[keep]
        bits |= ((2 * high >= count[keep]).astype(np.uint8) << k)
    return centre, mean_i, bits


@register_monitor("ppk2")
class PPK2Monitor(PowerMonitor):
    """`mode="ampere"`: PPK2 in series with the board's own supply (voltage_v is the
    board's supply voltage, *assumed*: used for energy and the S_r term, not measured).
    `mode="source"`: the PPK2 powers the DUT at voltage_v (sourced, not measured)."""

    #: PPK2 measurement range (Nordic: 200 nA .. 1 A)
    current_range_a = (200e-9, 1.0)

    def __init__(self, port: str, *, mode: str = "ampere", timeout_s: float = 2.0,
                 marker_channel: int | None = 0, counter_check: bool = True,
                 power_dut: bool = True) -> None:
        super().__init__(timeout_s=timeout_s, marker_channel=marker_channel)
        if not isinstance(port, str) or not port:
            raise InstrumentError(f"PPK2 port must be a device path or URL, got {port!r}")
        if mode not in POWER_MODE:
            raise InstrumentError(f"PPK2 mode must be one of {sorted(POWER_MODE)}, got {mode!r}")
        if marker_channel is not None and not 0 <= marker_channel <= 7:
            raise InstrumentError("PPK2 marker_channel must be 0..7 (logic port D0..D7) or "
                                  f"none, got {marker_channel!r}")
        for name, flag in (("counter_check", counter_check), ("power_dut", power_dut)):
            if not isinstance(flag, bool):
                raise InstrumentError(f"PPK2 {name} must be true or false, got {flag!r}")
        self.port = port
        self.mode = mode
        self.counter_check = counter_check
        self.power_dut = power_dut
        self.calibration: dict[str, np.ndarray] | None = None
        self.metadata_text = ""
        self._ser: serial.Serial | None = None
        self._reader: SerialReader | None = None
        self._factor = 1

    def describe(self) -> str:
        return f"PPK2 on {self.port}"

    @property
    def supplies_target(self) -> bool:
        return self.mode == "source" and self.power_dut

    def _write(self, *cmd: int) -> None:
        assert self._ser is not None
        try:
            self._ser.write(bytes(cmd))
            self._ser.flush()
        except (serial.SerialException, OSError) as exc:
            raise InstrumentError(f"{self.describe()}: write failed: {exc}") from exc

    def _do_open(self) -> None:
        self._ser = open_serial(self.port, 115200, self.describe())
        try:
            # A PPK2 left streaming by a crashed run would bury the metadata in samples.
            self._write(CMD_AVERAGE_STOP)
            time.sleep(0.05)
            self._ser.reset_input_buffer()
            self._reader = SerialReader(self._ser, self.describe())
            self._write(CMD_GET_METADATA)
            text = self._reader.wait_for(lambda b: b"END" in b, self.timeout_s,
                                         "metadata (GetMetadata 0x19 → text ending in END)")
            self._reader.take()
            self.metadata_text = text.decode("ascii", errors="replace")
            self.calibration = parse_metadata(self.metadata_text, self.describe())
        except BaseException:
            self._do_close()
            raise

    def _do_close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._ser is not None:
            try:
                if self.mode == "source" and self.power_dut:
                    self._write(CMD_DEVICE_RUNNING_SET, 0)
            except InstrumentError:
                pass
            self._ser.close()
            self._ser = None

    def _do_configure(self, voltage_v: float, sample_rate_hz: float) -> float:
        mv = round(voltage_v * 1000)
        if not VDD_RANGE_MV[0] <= mv <= VDD_RANGE_MV[1]:
            raise InstrumentError(f"{self.describe()}: voltage {voltage_v} V outside "
                                  f"{VDD_RANGE_MV[0]}..{VDD_RANGE_MV[1]} mV")
        factor = NATIVE_RATE_HZ / sample_rate_hz if sample_rate_hz > 0 else 0
        if factor < 1 or abs(factor - round(factor)) > 1e-9:
            raise InstrumentError(f"{self.describe()}: sample rate {sample_rate_hz} Hz must "
                                  f"divide the fixed {NATIVE_RATE_HZ:.0f} S/s (we average "
                                  "blocks of native samples)")
        self._factor = int(round(factor))
        self._write(CMD_SET_POWER_MODE, POWER_MODE[self.mode])
        self._write(CMD_REGULATOR_SET, mv >> 8, mv & 0xFF)
        if self.power_dut:  # both modes: the switch gates the DUT path (module docstring)
            self._write(CMD_DEVICE_RUNNING_SET, 1)
        return NATIVE_RATE_HZ / self._factor

    def _do_start(self) -> None:
        assert self._reader is not None
        self._reader.take()
        self._write(CMD_AVERAGE_START)
        # Fail now, not at stop(), if nothing streams: the usual cause is a wrong port.
        self._reader.wait_for(lambda b: len(b) >= 4, self.timeout_s,
                              "samples after AverageStart (0x06)")

    def _received_s(self) -> float | None:
        if self._reader is None:
            return None
        return self._reader.size() / 4 / NATIVE_RATE_HZ

    def _do_stop(self) -> Trace:
        assert self._reader is not None and self.calibration is not None
        self._write(CMD_AVERAGE_STOP)
        self._reader.wait_quiet(0.05, self.timeout_s)
        data = self._reader.take()
        vdd = float(self.voltage_v or 0.0)
        index, current, logic, stats = decode_samples(
            data, self.calibration, vdd, counter_check=self.counter_check, who=self.describe())
        if len(index) < 2:
            raise InstrumentError(f"{self.describe()}: only {len(index)} sample(s) recorded")
        pos, cur, bits = decimate(index, current, logic, self._factor)
        t = (pos - pos[0]) / NATIVE_RATE_HZ
        return Trace(t_s=t, current_a=cur, voltage_v=vdd, instrument=self.describe(),
                     sample_rate_hz=NATIVE_RATE_HZ / self._factor, digital=bits,
                     voltage_measured=False,
                     meta={**stats, "native_samples": int(len(index)), "mode": self.mode,
                           "decimation": self._factor,
                           "voltage": "sourced" if self.mode == "source" else "assumed"})
