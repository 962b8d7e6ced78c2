"""Joulescope adapter against a simulated driver at the official package's API boundary
(no USB exists here; the real `joulescope` module plugs in as `driver=`).

The simulated instrument measures V = 3.3 V − 2 Ω·I, so the analytic window energy is
Σ (3.3 − 2·I)·I·t = 3.29·5 mA·0.1 s + 3.26·20 mA·0.05 s = 4.905 mJ; a host that used the
nominal 3.3 V instead of the measured voltage would be off by 0.9 %. Tolerance 0.3 %.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from rig.errors import InstrumentError, InstrumentTimeout
from rig.profile.energy import MEASURED
from rig.profile.monitors import create_monitor
from rig.profile.monitors.sim.joulescope_sim import SimJoulescopeDriver
from rig.profile.monitors.sim.waveform import training_step_waveform

WAVE = training_step_waveform(0.001, 0.005, 0.020)
EXPECTED_J = (3.3 - 2 * 0.005) * 0.005 * 0.1 + (3.3 - 2 * 0.020) * 0.020 * 0.05
TOL = 3e-3


def test_streamed_window_energy_uses_measured_voltage():
    drv = SimJoulescopeDriver(WAVE)
    with create_monitor("joulescope", driver=drv, timeout_s=1.0) as mon:
        mon.configure(voltage_v=3.3, sample_rate_hz=100_000)
        mon.start()
        with mon.window("train_step"):
            time.sleep(0.25)
        tr = mon.stop()
    dev = drv.devices[0]
    assert dict(dev.param_log) == {"i_range": "auto", "v_range": "5V",
                                   "sampling_frequency": 100_000, "current_lsb": "gpi0"}
    assert tr.voltage_measured and isinstance(tr.voltage_v, np.ndarray)
    (w,) = tr.window_energy()
    assert w.label == "train_step" and "gpio marker D0" in w.detail and w.source == MEASURED
    assert w.energy_j == pytest.approx(EXPECTED_J, rel=TOL)
    assert abs(w.energy_j - WAVE.energy_j(3.3, 1)) > 2 * TOL * EXPECTED_J
    assert mon.serial_number == "000415" and not dev.is_open


def test_marker_on_gpi1_and_one_shot_capture_via_read():
    drv = SimJoulescopeDriver(training_step_waveform(0.001, 0.005, 0.020, marker=2))
    with create_monitor("joulescope", driver=drv, marker_channel=1) as mon:
        mon.configure(3.3, 50_000)
        tr = mon.capture(0.3)
    assert ("voltage_lsb", "gpi1") in drv.devices[0].param_log
    (w,) = tr.window_energy()
    assert w.label == "D1#0"
    assert w.energy_j == pytest.approx(EXPECTED_J, rel=TOL)


def test_without_marker_routing_the_lsb_is_noise_and_not_used():
    drv = SimJoulescopeDriver(WAVE)
    with create_monitor("joulescope", driver=drv, marker_channel=None) as mon:
        mon.configure(3.3, 10_000)
        tr = mon.capture(0.2)
    assert tr.digital is None and tr.windows == []
    assert tr.energy_j(0.02, 0.17) == pytest.approx(EXPECTED_J, rel=TOL)


def test_missing_samples_are_dropped_and_counted():
    drv = SimJoulescopeDriver(WAVE, fault="nan")
    with create_monitor("joulescope", driver=drv) as mon:
        mon.configure(3.3, 100_000)
        tr = mon.capture(0.2)
    assert tr.meta["missing_samples"] == 20
    assert tr.window_energy()[0].energy_j == pytest.approx(EXPECTED_J, rel=TOL)


@pytest.mark.parametrize("fault, match", [
    ("no_device", "no Joulescope found"),
    ("open_fails", "open failed: OSError: LIBUSB_ERROR_ACCESS"),
])
def test_driver_failures_become_instrument_errors(fault, match):
    mon = create_monitor("joulescope", driver=SimJoulescopeDriver(WAVE, fault=fault))
    with pytest.raises(InstrumentError, match=match):
        mon.open()


def test_device_selection_by_serial():
    drv = SimJoulescopeDriver(WAVE, serials=("A1", "B2"))
    with pytest.raises(InstrumentError, match="several Joulescopes found \\(A1, B2\\)"):
        create_monitor("joulescope", driver=drv).open()
    with create_monitor("joulescope", driver=drv, serial_number="B2") as mon:
        assert drv.devices[1].is_open and not drv.devices[0].is_open
        assert mon.describe() == "Joulescope B2"


def test_stalled_device_times_out_instead_of_hanging():
    drv = SimJoulescopeDriver(WAVE, fault="stall")
    try:
        with create_monitor("joulescope", driver=drv, timeout_s=0.3) as mon:
            mon.configure(3.3, 1000)
            t0 = time.monotonic()
            with pytest.raises(InstrumentTimeout, match="no samples within"):
                mon.start()
            with pytest.raises(InstrumentTimeout, match="did not return within"):
                mon.capture(0.1)
            assert time.monotonic() - t0 < 2.0
    finally:
        drv.unstall.set()


def test_bad_settings_are_refused():
    drv = SimJoulescopeDriver(WAVE)
    with create_monitor("joulescope", driver=drv) as mon, \
            pytest.raises(InstrumentError, match="not one of"):
        mon.configure(3.3, 3000)
    with pytest.raises(InstrumentError, match="marker_channel"):
        create_monitor("joulescope", driver=drv, marker_channel=3)


def test_missing_package_is_explained(monkeypatch: pytest.MonkeyPatch):
    import sys

    monkeypatch.setitem(sys.modules, "joulescope", None)  # import now raises ImportError
    with pytest.raises(InstrumentError, match="pip install joulescope"):
        create_monitor("joulescope").open()


# -- the real `joulescope` package, only its USB driver faked -------------------------------

def _package():
    return pytest.importorskip("joulescope")


def _measure_through_package(model: str, rate: int, seconds: float = 0.3):
    from rig.profile.monitors.sim.joulescope_usb import fake_usb

    js = _package()
    with fake_usb(WAVE, model=model) as usb, \
            create_monitor("joulescope", driver=js, timeout_s=2.0) as mon:
        mon.configure(voltage_v=3.3, sample_rate_hz=rate)
        mon.start()
        with mon.window("train_step"):
            time.sleep(seconds)
        tr = mon.stop()
        published = list(usb.published)
    return tr, published, mon


def test_js220_at_2mhz_reports_the_energy_of_1mhz_through_the_package():
    """The JS220 outputs at most 1 MHz; the package clamps a 2 MHz request. A time axis
    built from the request halved every energy (issue 19: ratio 0.500)."""
    tr2, pub2, mon2 = _measure_through_package("js220", 2_000_000)
    tr1, _, mon1 = _measure_through_package("js220", 1_000_000)
    assert mon2.sample_rate_hz == mon1.sample_rate_hz == 1_000_000
    assert tr2.sample_rate_hz == 1_000_000 and tr2.meta["model"] == "js220"
    (w2,) = tr2.window_energy()
    (w1,) = tr1.window_energy()
    assert w2.energy_j == pytest.approx(w1.energy_j, rel=0.01)
    assert w2.energy_j == pytest.approx(EXPECTED_J, rel=TOL)
    assert w2.duration_s == pytest.approx(0.15, abs=1e-5)
    assert "gpio marker D0" in w2.detail and "voltage measured" in w2.detail
    # What the package sent to the instrument: 1 MHz host rate, the 2 V range name the
    # JS220 has (3.3 V needs 15 V: 2 V is too small) as the JS220's own topic value.
    assert ("u/js220/004321/h/fs", 1_000_000) in pub2
    assert ("u/js220/004321/s/v/range/select", "15 V") in pub2


def test_voltage_ranges_per_model_match_the_installed_package():
    from rig.profile.monitors.joulescope import MODELS

    js = _package()
    from joulescope.parameters_v1 import PARAMETERS_DICT

    js110 = {name for name, _value, *_ in PARAMETERS_DICT["v_range"].options}
    assert set(MODELS["js110"].v_ranges) == js110 == {"15V", "5V"}
    from joulescope.v1 import js220

    assert max(js220._SAMPLING_FREQUENCIES) == MODELS["js220"].max_rate_hz
    # The JS220 adapter's range names reach the instrument as the JS220's own range topics
    # (a '5V' would have reached it as raw value 1, issue 19).
    from rig.profile.monitors.sim.joulescope_usb import fake_usb

    for v, topic_value in ((1.8, "2 V"), (3.3, "15 V")):
        with fake_usb(WAVE, model="js220") as usb, \
                create_monitor("joulescope", driver=js) as mon:
            mon.configure(voltage_v=v, sample_rate_hz=1000)
            sel = [val for t, val in usb.published if t.endswith("s/v/range/select")]
        assert sel[-1] == topic_value
    with fake_usb(WAVE, model="js220"), create_monitor("joulescope", driver=js) as mon, \
            pytest.raises(InstrumentError, match="outside the JS220's voltage ranges"):
        mon.configure(voltage_v=14.5, sample_rate_hz=1000)


def test_simulated_js220_clamps_like_the_package():
    drv = SimJoulescopeDriver(WAVE, model="js220")
    with create_monitor("joulescope", driver=drv) as mon:
        mon.configure(voltage_v=1.8, sample_rate_hz=2_000_000)
        assert mon.sample_rate_hz == 1_000_000
        assert ("v_range", "2V") in drv.devices[0].param_log
