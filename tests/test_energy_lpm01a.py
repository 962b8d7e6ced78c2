"""LPM01A (PowerShield) adapter against the simulated board over a real pty.

Waveform: idle 0.5 mA, then 2 mA for 100 ms and 8 mA for 50 ms (kept under the 10 mA of
the board's dynamic mode), then idle. At 5 kHz (200 us) the trapezoid over [20 ms, 170 ms]
differs from the analytic 3.3 V·(2 mA·0.1 s + 8 mA·0.05 s) = 1.98 mJ by the linear ramp it
draws across each current step (at most half a sample times the step: ~0.23 % here) and
the 4-digit mantissa; tolerance 0.5 %.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.errors import InstrumentError, InstrumentTimeout
from rig.profile.energy import MEASURED
from rig.profile.monitors import create_monitor
from rig.profile.monitors.lpm01a import decode_value
from rig.profile.monitors.sim.lpm01a_sim import LPM01ASim, encode_ascii_dec
from rig.profile.monitors.sim.waveform import Segment, Waveform, training_step_waveform

V = 3.3
WAVE = training_step_waveform(0.0005, 0.002, 0.008)
EXPECTED_J = V * (0.002 * 0.1 + 0.008 * 0.05)


def _capture(sim, seconds=0.25, rate=5000, **kw):
    with create_monitor("lpm01a", port=sim.port, timeout_s=1.0, **kw) as mon:
        mon.configure(voltage_v=V, sample_rate_hz=rate)
        mon.start()
        time.sleep(seconds)
        return mon.stop()


def test_window_energy_matches_the_analytic_waveform():
    with LPM01ASim(WAVE) as sim:
        tr = _capture(sim)
        cmds = list(sim.commands)
    assert cmds[:7] == ["htc", "volt 3300m", "freq 5k", "acqtime 0", "format ascii_dec",
                        "output current", "trigsrc sw"]
    assert cmds[-3:] == ["start", "stop", "hrc"]
    assert tr.sample_rate_hz == 5000 and tr.meta["timestamps"] == 1
    assert tr.energy_j(0.02, 0.17) == pytest.approx(EXPECTED_J, rel=5e-3)
    assert tr.mean_current_a(0.02, 0.12) == pytest.approx(0.002, rel=5e-3)
    assert tr.source == MEASURED and tr.digital is None


def test_host_mark_windows_on_a_flat_load():
    flat = Waveform([Segment(10.0, 0.004)])
    with LPM01ASim(flat) as sim, create_monitor("lpm01a", port=sim.port) as mon:
        mon.configure(V, 2000)
        mon.start()
        time.sleep(0.03)
        with mon.window("update"):
            time.sleep(0.1)
        time.sleep(0.03)
        tr = mon.stop()
    (r,) = tr.window_energy()
    assert r.label == "update" and "protocol events" in r.detail
    assert r.duration_s == pytest.approx(0.1, abs=0.03)
    assert r.energy_j == pytest.approx(V * 0.004 * r.duration_s, rel=2e-3)


def test_board_refusal_carries_its_error_detail():
    with LPM01ASim(WAVE) as sim, create_monitor("lpm01a", port=sim.port) as mon:
        with pytest.raises(InstrumentError, match=r"refused 'volt 9000m'.*out of range"):
            mon.command("volt 9000m")
        with pytest.raises(InstrumentError, match="outside 1800m..3300m"):
            mon.configure(5.0, 1000)
        with pytest.raises(InstrumentError, match="bin_hexa"):
            mon.configure(3.3, 50_000)
        mon.configure(1.8, 1000)  # still usable after refusals
        assert "volt 1800m" in sim.commands


def test_silent_board_times_out_on_open():
    with LPM01ASim(WAVE, fault="silent") as sim:
        mon = create_monitor("lpm01a", port=sim.port, timeout_s=0.3)
        t0 = time.monotonic()
        with pytest.raises(InstrumentTimeout, match="no answer to 'htc'.*nothing received"):
            mon.open()
        assert time.monotonic() - t0 < 2.0 and mon.state == "closed"


@pytest.mark.parametrize("fault, error, match", [
    ("garbage", InstrumentError, "unreadable data line .*64\\?9-0#"),
    ("error", InstrumentError, "reported during acquisition .*overcurrent"),
    ("no_done", InstrumentTimeout, "'Acquisition completed' after stop"),
])
def test_bad_acquisition_output_is_an_error_not_a_shifted_trace(fault, error, match):
    with LPM01ASim(WAVE, fault=fault) as sim:
        t0 = time.monotonic()
        with pytest.raises(error, match=match):
            _capture(sim, seconds=0.15, rate=1000)
        assert time.monotonic() - t0 < 4.0


def test_no_marker_channel_and_trigger_option():
    with pytest.raises(InstrumentError, match="no logic inputs"):
        create_monitor("lpm01a", port="x", marker_channel=0)
    with LPM01ASim(WAVE) as sim:
        _capture(sim, seconds=0.05, rate=100, trigger="d7")
        assert "trigsrc d7" in sim.commands


@given(st.floats(1e-9, 0.3))
def test_ascii_dec_round_trip_keeps_four_digits(amps):
    text = encode_ascii_dec(amps)
    assert len(text) == 7
    assert decode_value(text) == pytest.approx(amps, rel=6e-4)


def test_ascii_dec_follows_st_help_text():
    assert decode_value("6409-07") == pytest.approx(640.9e-6)  # ST: 6409 x 10^-7 A
    assert decode_value("1200+00") == 1200.0
    assert decode_value("64O9-07") is None
