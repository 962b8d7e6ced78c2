"""Hand-computed strategy decisions on the native firmware, each with one right answer.

- NEq's first velocities (previous similarity 1, cos(0, 0) = 1): the device's masks after
  SELECT t = 1 and t = 2 equal the ones `tests/test_golden_strategies.py` pins for the
  golden model on the same case; the old start (φ⁰ = 0) gives the opposite masks.
- The top-k tie rule "lower index first": dead hidden neurons score exactly 0, so TinyProp's
  k-th place is an exact tie; a firmware whose ties go to the higher index fails here, and
  the session's comparison reports it as a failure, not as a near-tie.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _velocity_case import VEL_NEQ_ROWS1, VEL_W0, VEL_W1, VEL_X

from rig import cli
from rig.compare import FAIL, TIE, StepObservation, Tolerance, compare_step
from rig.config import load_config
from rig.device import Device
from rig.golden.f32 import F32
from rig.golden.model import GoldenMLP, GoldenStep
from rig.session import Inspect, RunSpec, TrainingSession


def _store(dev: Device, x: np.ndarray, labels: np.ndarray) -> None:
    """Samples as u8 with scale 1, zero point 0 (x must hold small non-negative integers)."""
    dev.data_config(x.shape[1], "u8", 1.0, 0.0, len(x))
    dev.write_samples(0, labels, x.astype(np.uint8))


def test_neq_first_velocities_on_the_device(dev: Device) -> None:
    dev.load_model([(VEL_W0, np.zeros(4, F32))])
    dev.train_config(0.1, 0.0, "neq", (0.25, 0.5))
    _store(dev, VEL_X, np.zeros(2, np.uint8))
    assert list(dev.select(0, 2).k) == [4]  # t = 0: every neuron trainable
    dev.write_params(0, "weight", VEL_W1)
    sel = dev.select(0, 2)  # t = 1: |v| = 0, 1, 0, 1
    assert dev.read_mask(0).row_mask.astype(bool).tolist() == VEL_NEQ_ROWS1
    assert list(sel.k) == [2]
    dev.select(0, 2)  # t = 2: |v| = 0, 1.5, 0, 1.5
    assert dev.read_mask(0).row_mask.astype(bool).tolist() == VEL_NEQ_ROWS1


# 4 inputs -> 8 hidden -> 2. Hidden neurons 0..3 are dead (W = 0, b = -1: z = -1, ReLU 0,
# so their δ and TinyProp score are exactly 0); 4..7 are alive. S_min = S_max = 0.75, ζ = 1:
# k_0 = floor(8 · 0.75) = 6 = the 4 alive neurons + 2 of the 4 exact ties -> 0 and 1.
TIE_ROWS0 = [True, True, False, False, True, True, True, True]


def _tie_case() -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    w0 = np.zeros((8, 4), F32)
    w0[4:] = np.arange(1, 17, dtype=F32).reshape(4, 4) / 16
    b0 = np.array([-1, -1, -1, -1, 0.5, 0.5, 0.5, 0.5], F32)
    w1 = np.array([[1, -1, 2, -2, 0.5, -0.25, 0.75, 1.5],
                   [-1, 1, -2, 2, -0.5, 0.25, -0.5, 1]], F32)
    b1 = np.array([0.1, -0.1], F32)
    x = np.array([[1, 2, 0, 3], [3, 0, 1, 1], [0, 1, 2, 2], [2, 2, 1, 0]], np.uint8)
    return [(w0, b0), (w1, b1)], x, np.array([0, 1, 1, 0], np.uint8)


def test_topk_exact_ties_go_to_the_lower_index(dev: Device) -> None:
    params, x, y = _tie_case()
    sparams = (0.75, 0.75, 1.0)
    gold = GoldenMLP([4, 8, 2], params=params, lr=0.1, strategy="tinyprop", sparams=sparams)
    dev.load_model(params)
    dev.train_config(0.1, 0.0, "tinyprop", sparams)
    _store(dev, x, y)
    step = dev.train_step(np.arange(4))
    g = gold.step(x.astype(F32), y)
    assert g.k[0] == 6 and g.row_masks[0].tolist() == TIE_ROWS0  # the rule, golden side
    rows = [dev.read_mask(layer).row_mask.astype(bool) for layer in range(2)]
    assert rows[0].tolist() == TIE_ROWS0, "exact top-k ties must go to the lower index"
    # The comparison holds an exact tie to the rule: swapping tied neurons is a failure.
    obs = StepObservation(step.loss, step.correct, step.skipped, step.k, row_masks=rows)
    assert compare_step(g, obs, Tolerance()).ok
    swapped = rows[0].copy()
    swapped[[0, 1, 2, 3]] = [False, False, True, True]
    bad = compare_step(g, StepObservation(step.loss, step.correct, step.skipped, step.k,
                                          row_masks=[swapped, rows[1]]), Tolerance())
    statuses = {c.name: c.status for c in bad.checks}
    assert statuses["rows[0]"] == FAIL and TIE not in statuses.values()


# ------------------------------------------------------------------ session and CLI verdicts

SMALL = RunSpec(train_samples=64, test_samples=32, batch=16, epochs=1)


def test_a_run_that_compared_nothing_is_not_a_pass(dev: Device) -> None:
    session = TrainingSession(dev, SMALL)
    report = session.run(epochs=0)
    assert not report.steps and not report.ok
    assert "nothing was compared" in report.failures


def test_lockstep_epoch_row_compares_the_golden_models_own_parameters(dev: Device) -> None:
    """The last step re-syncs the golden model to the device; the epoch row must still
    show the golden model's own result. A 1-ulp nudge after every golden step stands in for
    a rounding difference: the row shows it (it showed 0, a device-vs-itself figure)."""
    session = TrainingSession(dev, SMALL, inspect=Inspect(params_every=1, resync=True))
    session.prepare()
    own_step = session.golden.step

    def nudged(x: np.ndarray, y: np.ndarray) -> GoldenStep:
        res = own_step(x, y)
        w = session.golden.weights[0].numpy()
        w[0, 0] = np.nextafter(w[0, 0], np.float32(np.inf))
        return res

    session.golden.step = nudged  # type: ignore[method-assign]
    report = session.run()
    (row,) = report.epochs
    assert row.max_param_ulp >= 1 and row.max_param_abs > 0, row
    assert report.ok, report.failures  # 1 ulp is within the lockstep tolerance


def test_lab_timeout_is_the_request_timeouts_fixed_part() -> None:
    from rig.connection import connect
    from rig.targets import resolve_target

    target = resolve_target(load_config(), "native")
    with connect(target, timeout=7.5) as conn:
        assert conn.device.timing.base == 7.5
        assert conn.device.timing.budget() == 7.5


def test_json_report_of_a_select_strategy_with_inspect(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    code = cli.main(["run", "--target", "native", "--strategy", "neq", "--inspect",
                     "--train-samples", "64", "--test-samples", "32", "--epochs", "1",
                     "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["compared_steps"] == 4 and data["near_ties"] == 0 and data["ok"]
    assert [len(r) for r in data["epochs"][0]["selected_rows"]] == [32, 10]
