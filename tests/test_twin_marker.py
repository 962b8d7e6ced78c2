"""The firmware's measurement marker on the board twins, end to end without hardware.

The unmodified prebuilt images run on the twins (emulated, rig.twin); the twins' GPIO
models record every change of a driven pin with the twin's modelled time (instructions),
and a listener drives the simulated PPK2's logic input D0 (`EdgeQueue`) as each store
executes, stamped on the host's monotonic clock, the clock the simulator samples. The
simulated DUT (`MarkedLoad`) draws 20 mA while D0 is high and 1 mA otherwise, so the
injected truth of every pulse is V · 20 mA · (fall − rise) from the edge times alone.

What this checks: the firmware's real stores (GPIOF BSRR on the nucleo, P1 OUTSET/OUTCLR
on the nRF52840-DK) through the twin's register models, the instrument's sampling, the
PPK2 wire protocol and decoding, window finding and the per-step figure, via
`rig.profiling.profile_target` (what `rig profile` runs). The energy is the simulated
DUT's on the host clock (the twin is slower than the board), not the board's energy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rig.config import load_config
from rig.profile.monitors import create_monitor
from rig.profile.monitors.sim.logic import EdgeQueue, MarkedLoad, MarkerPin
from rig.profile.monitors.sim.ppk2_sim import RATE, PPK2Sim
from rig.profiling import profile_target
from rig.session import RunSpec
from rig.targets import resolve_target
from rig.targets.twin import TwinTarget

V = 3.3
IDLE_A, ACTIVE_A = 0.001, 0.020
STEPS = 4
BOARDS = ["nucleo-f429zi", "nrf52840dk"]


def _pulses(levels: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(rise, fall) pairs of a (time, level) sequence that starts low."""
    out, rise, prev = [], 0, 0
    for t, lv in levels:
        if lv and not prev:
            rise = t
        elif prev and not lv:
            out.append((rise, t))
        prev = lv
    return out


@pytest.mark.slow  # about 30 s per board on the shared 2-core machine
@pytest.mark.parametrize("board", BOARDS)
def test_twin_marker_drives_the_simulated_ppk2_d0_one_pulse_per_step(
        board: str, tmp_path: Path) -> None:
    lab = load_config(None)
    target = resolve_target(lab, f"{board}-twin")
    assert isinstance(target, TwinTarget) and target.strict
    pin = MarkerPin.parse(lab.boards[board].marker)
    edges = EdgeQueue(channel=0)
    load = MarkedLoad(edges, IDLE_A, ACTIVE_A)
    target.wire_marker(edges)
    with PPK2Sim(load, logic=edges) as sim, \
            create_monitor("ppk2", port=sim.port, timeout_s=2.0) as mon:
        run = profile_target(target, lab, ["full"], RunSpec.from_training(lab.training),
                             tmp_path, icount=False, max_steps=STEPS, monitor=mon,
                             monitor_voltage_v=V)
    target.close()
    m = target.machine
    assert m is not None and m.unknown == [] and m.findings == []
    sr = run.run_of("full")
    assert sr.ok, sr.failures
    assert run.measurement_errors == []

    # In the twin's modelled time: one pulse of the catalogued pin per TRAIN_STEP, and each
    # covers the phases the firmware timed with its own DWT CYCCNT reads (cycles (twin
    # model)) inside it: the GPIO model's record and the firmware's counters agree.
    marker = [(e.insns, e.level) for e in m.pin_edges
              if (e.port_base, e.pin) == (pin.port_base, pin.pin)]
    modelled = _pulses(marker)
    assert len(modelled) == len(sr.steps) == STEPS
    for (rise, fall), step in zip(modelled, sr.steps, strict=True):
        inside = sum(step.counters.values())
        assert 0 < inside <= fall - rise <= inside + 2_000, (rise, fall, step.counters)

    # On the host clock: the same pulses reached D0, and the measured energy per step is
    # the injected truth within 1 %.
    truth = load.truth_j(V)
    assert len(truth) == len(edges.pulses()) == STEPS
    assert len(sr.measured) == STEPS
    assert all("gpio marker D0" in r.detail for r in sr.measured)
    # each window: within its two edges' sampling quantisation (one sample each, 100 kS/s)
    edge_j = 2 * V * (ACTIVE_A - IDLE_A) / RATE
    for r, e in zip(sr.measured, truth, strict=True):
        assert abs(r.energy_j - e) <= edge_j, (r.energy_j, e)
    per_step = float(np.mean([r.energy_j for r in sr.measured]))
    assert per_step == pytest.approx(float(np.mean(truth)), rel=0.01)
