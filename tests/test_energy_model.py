"""Energy model arithmetic: E = V · (k · f_MHz + I_static) · cycles / f."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.errors import ConfigError
from rig.profile.energy import (
    MEASURED,
    MODELLED,
    PRESETS,
    BoardPowerModel,
    EnergyResult,
    PhaseWork,
    Trace,
    calibrate_from_trace,
)


def test_hand_computed_phase_energy():
    m = BoardPowerModel("b", voltage_v=3.0, current_ma_per_mhz=0.05, clock_hz=64e6)
    r = m.phase("forward", 64_000_000)  # one second of cycles
    # I = 0.05 mA/MHz * 64 MHz = 3.2 mA; E = 3 V * 3.2 mA * 1 s = 9.6 mJ
    assert r.energy_j == pytest.approx(9.6e-3)
    assert r.duration_s == pytest.approx(1.0)
    assert r.mean_current_a == pytest.approx(3.2e-3)
    assert r.source == MODELLED == "energy (model)"


def test_static_current_and_instructions_with_cpi():
    m = BoardPowerModel("b", 3.3, 0.1, 100e6, static_current_ma=1.0)
    w = PhaseWork(instructions=1e6, cpi=1.5, origin="instructions (QEMU)")
    r = m.phase("backward", w)
    t = 1.5e6 / 100e6
    assert r.energy_j == pytest.approx(3.3 * (0.1 * 100 + 1.0) * 1e-3 * t)
    assert "instructions (QEMU) x CPI 1.5" in r.detail


def test_estimate_per_phase_per_step_and_total():
    m = PRESETS["nrf52840"]
    phases = {"forward": PhaseWork(cycles=2e6, origin="cycles (DWT)"), "backward": 3e6,
              "selection": 1e5, "update": 4e5}
    est = m.estimate(phases, steps=100)
    assert set(est.per_phase) == set(phases)
    e_cycle = m.voltage_v * m.current_ma_per_mhz * 1e-3 * 1e-6  # J per cycle at k*f
    assert est.per_step_j == pytest.approx(e_cycle * 5.5e6)
    assert est.total_j == pytest.approx(100 * est.per_step_j)
    assert est.source == MODELLED
    per_step = m.estimate_steps([{"forward": 1e6}, {"forward": 2e6}])
    assert per_step[1].per_step_j == pytest.approx(2 * per_step[0].per_step_j)


@given(st.floats(1e6, 500e6), st.floats(1e3, 1e9))
def test_dynamic_energy_per_cycle_does_not_depend_on_clock(f, cycles):
    a = BoardPowerModel("b", 3.3, 0.1, f).phase("p", cycles).energy_j
    b = BoardPowerModel("b", 3.3, 0.1, 2 * f).phase("p", cycles).energy_j
    assert a == pytest.approx(b, rel=1e-9)


def test_presets_cover_the_boards_and_label_assumptions():
    for board in ("stm32f429", "nrf52840", "nrf51", "mps2-an386", "microbit"):
        assert board in PRESETS
    assert PRESETS["nrf52840"].current_ma_per_mhz == pytest.approx(0.052)
    assert "ASSUMPTION" in PRESETS["mps2-an386"].basis
    assert "ASSUMPTION" in PRESETS["nrf51"].basis


def test_from_config_merges_preset_and_rejects_typos():
    m = BoardPowerModel.from_config("nrf52840", {"voltage_v": 1.8})
    assert m.voltage_v == 1.8 and m.clock_hz == 64e6
    assert m.basis.startswith("lab_config ['voltage_v'] over preset: nRF52840 PS")
    with pytest.raises(ConfigError, match="unknown key"):
        BoardPowerModel.from_config("nrf52840", {"current_ma_per_mhs": 0.1})
    with pytest.raises(ConfigError, match="missing"):
        BoardPowerModel.from_config("custom", {"voltage_v": 3.3})
    with pytest.raises(ConfigError, match="must be > 0"):
        BoardPowerModel.from_config("custom", {"voltage_v": 3.3, "clock_hz": 0,
                                               "current_ma_per_mhz": 0.1})


def test_phasework_validation():
    with pytest.raises(ValueError):
        PhaseWork()
    with pytest.raises(ValueError):
        PhaseWork(cycles=1, instructions=1, cpi=1)
    with pytest.raises(ValueError):
        PhaseWork(instructions=10)
    with pytest.raises(ValueError):
        PhaseWork(cycles=-1)


def test_calibrate_from_a_measured_window_round_trips():
    truth = BoardPowerModel("b", 3.3, 0.23, 180e6, static_current_ma=2.0)
    cycles = 18e6  # 0.1 s of work
    t = np.linspace(0, 0.1, 1001)
    tr = Trace(t, np.full_like(t, truth.current_a), 3.3, "sim", 1e4)
    measured = EnergyResult("step", tr.energy_j(), 0.1, tr.mean_current_a(), MEASURED)
    guess = BoardPowerModel("b", 3.3, 0.1, 180e6, static_current_ma=2.0)
    fitted = calibrate_from_trace(guess, measured, cycles)
    assert fitted.current_ma_per_mhz == pytest.approx(0.23)
    assert fitted.phase("x", cycles).energy_j == pytest.approx(measured.energy_j)
    with pytest.raises(ValueError):
        calibrate_from_trace(guess, fitted.phase("x", cycles), cycles)
