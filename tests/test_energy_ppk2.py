"""PPK2 adapter against the simulated PPK2 over a real pty (pyserial on the slave side).

Analytic reference: the simulator plays idle 1 mA, then a window with logic D0 high of
5 mA for 100 ms and 20 mA for 50 ms, then idle; E = 3.3 V·(5 mA·0.1 s + 20 mA·0.05 s)
= 4.95 mJ. Tolerance 0.5 %: ADC quantisation is ~1e-4 relative on these ranges and the
GPIO edges are exact to one 10 us sample.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from rig.errors import InstrumentError, InstrumentTimeout
from rig.profile.energy import MEASURED
from rig.profile.monitors import create_monitor
from rig.profile.monitors.ppk2 import DEFAULTS, decode_samples, parse_metadata
from rig.profile.monitors.sim.ppk2_sim import CAL, PPK2Sim, encode, metadata_text
from rig.profile.monitors.sim.waveform import Segment, Waveform, training_step_waveform

V = 3.3
WAVE = training_step_waveform(0.001, 0.005, 0.020)
EXPECTED_J = V * (0.005 * 0.1 + 0.020 * 0.05)
TOL = 5e-3


def _run(sim, seconds=0.3, rate=100_000, **kw):
    with create_monitor("ppk2", port=sim.port, timeout_s=1.0, **kw) as mon:
        mon.configure(voltage_v=V, sample_rate_hz=rate)
        mon.start()
        time.sleep(seconds)
        return mon.stop()


def test_gpio_window_energy_matches_the_analytic_waveform():
    assert WAVE.energy_j(V, 1) == pytest.approx(EXPECTED_J)
    with PPK2Sim(WAVE) as sim:
        tr = _run(sim)
        cmds = list(sim.commands)
    (w,) = tr.window_energy()
    assert w.energy_j == pytest.approx(EXPECTED_J, rel=TOL)
    assert w.duration_s == pytest.approx(0.15, abs=2e-5)
    assert w.mean_current_a == pytest.approx((0.005 * 0.1 + 0.02 * 0.05) / 0.15, rel=TOL)
    assert w.source == MEASURED and "gpio marker D0" in w.detail
    assert "voltage assumed 3.3 V" in w.detail
    assert tr.sample_rate_hz == 100_000 and tr.meta["missing_samples"] == 0
    # Bytes on the wire: stop, metadata, ampere mode, 3300 mV big-endian, DUT power on
    # (ampere mode too, as Nordic's app), start, stop.
    assert cmds[:5] == [(0x07,), (0x19,), (0x11, 1), (0x0D, 0x0C, 0xE4), (0x0C, 1)]
    assert cmds[-2:] == [(0x06,), (0x07,)]


def test_decimated_trace_keeps_the_window_energy():
    with PPK2Sim(WAVE) as sim:
        tr = _run(sim, rate=1000)
    assert tr.sample_rate_hz == 1000 and tr.meta["decimation"] == 100
    assert np.median(np.diff(tr.t_s)) == pytest.approx(1e-3)
    (w,) = tr.window_energy()
    assert w.energy_j == pytest.approx(EXPECTED_J, rel=2e-2)  # 1 ms edges on 150 ms


def test_host_marks_label_gpio_windows_and_work_alone():
    flat = Waveform([Segment(10.0, 0.010)])
    with PPK2Sim(WAVE) as sim, create_monitor("ppk2", port=sim.port) as mon:
        mon.configure(V, 100_000)
        mon.start()
        with mon.window("train_step"):
            time.sleep(0.25)
        tr = mon.stop()
    (w,) = tr.windows
    assert w.label == "train_step" and w.origin == "gpio marker D0"
    with PPK2Sim(flat) as sim, create_monitor("ppk2", port=sim.port,
                                              marker_channel=None) as mon:
        mon.configure(V, 100_000)
        mon.start()
        time.sleep(0.05)
        mon.mark("forward")
        time.sleep(0.1)
        mon.mark("backward")
        time.sleep(0.05)
        mon.mark(None)
        time.sleep(0.02)
        tr = mon.stop()
    res = tr.window_energy()
    assert [r.label for r in res] == ["forward", "backward"]
    for r in res:  # constant 10 mA: energy = V·I·(host window), whatever the host jitter
        assert "protocol events (host clock)" in r.detail
        assert r.energy_j == pytest.approx(V * 0.010 * r.duration_s, rel=2e-3)


def test_source_mode_powers_the_dut():
    with PPK2Sim(WAVE) as sim:
        with create_monitor("ppk2", port=sim.port, mode="source") as mon:
            mon.configure(1.8, 100_000)
        deadline = time.monotonic() + 1
        while (0x0C, 0) not in sim.commands and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (0x11, 2) in sim.commands and (0x0D, 0x07, 0x08) in sim.commands
        assert (0x0C, 1) in sim.commands and sim.commands[-1] == (0x0C, 0)


def test_lost_samples_are_counted_and_bridged():
    with PPK2Sim(WAVE, fault="drop") as sim:
        tr = _run(sim)
    assert tr.meta["missing_samples"] == 6
    (w,) = tr.window_energy()
    assert w.energy_j == pytest.approx(EXPECTED_J, rel=TOL)


@pytest.mark.parametrize("fault, error, match", [
    ("silent", InstrumentTimeout, "no metadata .* nothing received"),
    ("no_end", InstrumentTimeout, "no metadata .*R1: 101.1"),
    ("bad_metadata", InstrumentError, "R2 = '1O.21' is not a number"),
])
def test_broken_metadata_fails_fast_and_clearly(fault, error, match):
    with PPK2Sim(WAVE, fault=fault) as sim:
        t0 = time.monotonic()
        mon = create_monitor("ppk2", port=sim.port, timeout_s=0.3)
        with pytest.raises(error, match=match):
            mon.open()
        assert time.monotonic() - t0 < 2.0
        assert mon.state == "closed"


def test_no_samples_after_start_is_a_timeout():
    with PPK2Sim(WAVE, fault="stall") as sim, \
            create_monitor("ppk2", port=sim.port, timeout_s=0.3) as mon:
        mon.configure(V, 100_000)
        with pytest.raises(InstrumentTimeout, match="samples after AverageStart"):
            mon.start()


def test_misaligned_stream_is_reported_not_silently_decoded():
    with PPK2Sim(WAVE, fault="misaligned") as sim, \
            pytest.raises(InstrumentError, match="sample stream corrupt"):
        _run(sim, seconds=0.1)


def test_bad_configuration_is_refused_before_any_byte():
    with PPK2Sim(WAVE) as sim, create_monitor("ppk2", port=sim.port) as mon:
        with pytest.raises(InstrumentError, match="outside 800..5000 mV"):
            mon.configure(6.0, 100_000)
        with pytest.raises(InstrumentError, match="must divide"):
            mon.configure(3.3, 30_000)
    with pytest.raises(InstrumentError, match="cannot open"):
        create_monitor("ppk2", port="/dev/does-not-exist").open()


def test_metadata_parser_and_decoder_units():
    cal = parse_metadata(metadata_text())
    assert cal["r"][2] == pytest.approx(CAL["R"][2]) and cal["o"][1] == pytest.approx(84.6)
    # "-nan" keeps Nordic's default; case of keys does not matter.
    cal2 = parse_metadata("r0: 1000\nGI3: -nan\nEND")
    assert cal2["gi"][3] == DEFAULTS["gi"][3] and cal2["r"][0] == 1000
    with pytest.raises(InstrumentError, match="no shunt calibration"):
        parse_metadata("HW: 1\nEND")
    with pytest.raises(InstrumentError, match="not positive"):
        parse_metadata("R1: 0\nEND")
    with pytest.raises(InstrumentError, match="line 2 is not 'key: value'"):
        parse_metadata("R0: 1000\n\x00\x17garbage\nEND")
    # encode (simulator) and decode (adapter) are each other's inverse to ADC resolution.
    amps = np.array([2e-6, 3e-4, 5e-3, 0.02, 0.4, 0.9])
    words = encode(amps, np.array([0, 1, 2, 4, 8, 255], np.uint8), 60, 3.0)
    idx, cur, logic, stats = decode_samples(words.tobytes() + b"\x01", cal, 3.0)
    assert np.allclose(cur, amps, rtol=2e-3, atol=5e-8)  # atol: 1 LSB of range 0
    assert list(idx) == [0, 1, 2, 3, 4, 5] and list(logic) == [0, 1, 2, 4, 8, 255]
    assert stats["trailing_bytes"] == 1
