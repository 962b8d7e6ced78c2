"""Trace arithmetic, windows and the monitor registry (no instrument involved)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rig.errors import InstrumentError, RigError
from rig.profile.energy import HOST_ORIGIN, MEASURED, Mark, MarkerMismatch, Trace, Window
from rig.profile.monitors import create_monitor, monitor_kinds, register_monitor
from rig.profile.monitors.base import PowerMonitor


def _trace(t, i, v=3.3, **kw):
    return Trace(t_s=np.asarray(t, float), current_a=np.asarray(i, float), voltage_v=v,
                 instrument="test", sample_rate_hz=1.0, **kw)


def test_constant_current_energy_is_v_i_t():
    t = np.linspace(0, 2, 2001)
    tr = _trace(t, np.full_like(t, 0.01))
    assert tr.energy_j() == pytest.approx(3.3 * 0.01 * 2, rel=1e-12)
    assert tr.energy_j(0.5, 1.25) == pytest.approx(3.3 * 0.01 * 0.75, rel=1e-12)
    assert tr.mean_current_a(0.3, 0.9) == pytest.approx(0.01)
    assert tr.source == MEASURED == "energy (measured)"


def test_window_edges_between_samples_are_interpolated():
    # A ramp: I = t (A) at 1 V; exact integral of t over [a, b] is (b^2 - a^2)/2.
    tr = _trace([0, 1, 2, 3], [0, 1, 2, 3], v=1.0)
    assert tr.energy_j(0.25, 2.5) == pytest.approx((2.5**2 - 0.25**2) / 2)


def test_measured_voltage_array_is_used():
    t = np.array([0.0, 1.0, 2.0])
    tr = _trace(t, [1.0, 1.0, 1.0], v=np.array([1.0, 2.0, 3.0]))
    assert tr.energy_j() == pytest.approx(4.0)  # trapezoid of P = 1, 2, 3


def test_gaps_are_bridged_not_invented():
    tr = _trace([0, 1, 5, 6], [1, 1, 1, 1], v=1.0)
    assert tr.energy_j() == pytest.approx(6.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 0.5), min_size=3, max_size=40),
       st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))
def test_energy_is_additive_over_adjacent_windows(currents, a, b, c):
    t = np.arange(len(currents), dtype=float) * 0.1
    tr = _trace(t, currents)
    a, b, c = sorted(x * t[-1] for x in (a, b, c))
    assert tr.energy_j(a, b) + tr.energy_j(b, c) == pytest.approx(tr.energy_j(a, c),
                                                                   rel=1e-9, abs=1e-15)
    assert tr.energy_j(a, c) >= 0


def test_window_outside_trace_is_an_error():
    tr = _trace([0, 1], [1, 1])
    with pytest.raises(ValueError):
        tr.energy_j(5, 6)


def test_host_mark_windows():
    tr = _trace(np.linspace(0, 1, 101), np.ones(101),
                marks=[Mark(0.1, "forward"), Mark(0.3, "backward"), Mark(0.6, None),
                       Mark(0.8, "update")])
    ws = tr.windows
    assert [(w.label, w.t0_s, w.t1_s) for w in ws] == [
        ("forward", 0.1, 0.3), ("backward", 0.3, 0.6), ("update", 0.8, 1.0)]
    res = tr.window_energy()
    assert [r.label for r in res] == ["forward", "backward", "update"]
    assert res[1].energy_j == pytest.approx(3.3 * 0.3)
    assert all(r.source == MEASURED for r in res)


def test_gpio_windows_take_host_labels_when_counts_agree():
    t = np.arange(10) * 0.1
    dig = np.array([0, 1, 1, 0, 0, 2 | 1, 1, 0, 0, 0], dtype=np.uint8)
    tr = _trace(t, np.ones(10), digital=dig, marker_channel=0,
                marks=[Mark(0.05, "a"), Mark(0.35, None), Mark(0.45, "b"), Mark(0.75, None)])
    ws = tr.windows
    assert [(w.label, w.t0_s, w.t1_s, w.origin) for w in ws] == [
        ("a", pytest.approx(0.1), pytest.approx(0.3), "gpio marker D0"),
        ("b", pytest.approx(0.5), pytest.approx(0.7), "gpio marker D0")]
    assert tr.gpio_windows(1)[0].label == "D1#0"


def test_marker_count_mismatch_is_an_error_naming_both_counts():
    t = np.arange(10) * 0.1
    marks = [Mark(0.0, "x"), Mark(0.2, "y"), Mark(0.4, None)]
    # One stray pulse for two marked steps: no figure, both counts named.
    stray = _trace(t, np.ones(10), digital=np.array([0, 1, 1, 0, 0, 0, 0, 0, 0, 0], np.uint8),
                   marker_channel=0, marks=marks)
    with pytest.raises(MarkerMismatch, match=r"1 marker pulse\(s\) on D0 for 2 marked step"):
        stray.window_energy()
    # Line never driven: 0 pulses.
    dead = _trace(t, np.ones(10), digital=np.zeros(10, np.uint8), marker_channel=0,
                  marks=marks)
    with pytest.raises(MarkerMismatch, match=r"0 marker pulse\(s\) on D0 for 2 marked"):
        _ = dead.windows
    # A pulse still high at the end has no known length: not counted, and said so.
    cut = _trace(t, np.ones(10), digital=np.array([0, 1, 0, 0, 0, 0, 0, 0, 1, 1], np.uint8),
                 marker_channel=0, marks=marks)
    with pytest.raises(MarkerMismatch, match=r"1 marker pulse.*1 pulse\(s\) cut by the trace"):
        _ = cut.windows
    # No marker channel: protocol-event windows, labelled as such.
    host = _trace(t, np.ones(10), digital=np.zeros(10, np.uint8), marks=marks)
    assert [w.origin for w in host.windows] == [HOST_ORIGIN] * 2
    # Without host marks the pulses are the windows, under their own names.
    alone = _trace(t, np.ones(10), digital=np.array([0, 1, 1, 0, 0, 0, 1, 0, 1, 1], np.uint8),
                   marker_channel=0)
    assert [w.label for w in alone.windows] == ["D0#0", "D0#1"]


def test_registry_has_the_three_instruments_and_rejects_unknown():
    assert {"ppk2", "joulescope", "lpm01a"} <= set(monitor_kinds())
    with pytest.raises(InstrumentError, match="unknown power monitor kind 'nope'"):
        create_monitor("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_monitor("ppk2")(type("Other", (PowerMonitor,), {}))


def test_state_machine_errors_are_rig_errors():
    class Dummy(PowerMonitor):
        def _do_open(self): pass
        def _do_close(self): pass
        def _do_configure(self, v, r): pass
        def _do_start(self): pass
        def _do_stop(self):
            return _trace([0, 1], [1, 1])

    m = Dummy()
    with pytest.raises(RigError, match="needs state"):
        m.start()
    with m:
        with pytest.raises(InstrumentError, match="start\\(\\) needs state ready"):
            m.start()
        m.configure(3.3, 10)
        m.start()
        m.mark("open")  # left open: stop() closes it
        tr = m.stop()
    assert tr.marks[-1].label is None and m.state == "closed"
    assert isinstance(tr.windows[0], Window)
