"""Every verdict of rig.compare fails when device and golden differ, and only the check that
compares the differing quantity fails, with a message that says where.

The golden side is a real GoldenMLP step; the "device" observation is a copy of it with one
planted difference. tests/test_compare.py covers the metrics and near-tie rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from rig.compare import (
    FAIL,
    INFO,
    PASS,
    TIE,
    StepObservation,
    Tolerance,
    check_bitexact,
    check_close,
    check_equal,
    check_k,
    check_loss,
    check_mask,
    check_update,
    compare_eval,
    compare_params,
    compare_step,
    mask_agreement,
)
from rig.golden.model import GoldenMLP, GoldenStep, LayerParams

F32 = np.float32
DIMS = [6, 5, 4, 3]


def golden_step() -> tuple[GoldenStep, list[LayerParams]]:
    gold = GoldenMLP(DIMS, seed=0, lr=0.1, strategy="tinyprop")
    x = np.random.default_rng(0).normal(size=(8, DIMS[0])).astype(F32)
    step = gold.step(x, [0, 1, 2, 0, 1, 2, 0, 1])
    return step, gold.get_params()


def observation(step: GoldenStep, params: list[LayerParams]) -> StepObservation:
    """What a device that agrees exactly would report (independent copies)."""
    return StepObservation(float(step.loss), int(step.correct), bool(step.skipped),
                           list(step.k), [m.copy() for m in step.row_masks],
                           [m.copy() for m in step.bias_masks],
                           [(u.weight.copy(), u.bias.copy()) for u in step.updates],
                           [(p.weight.copy(), p.bias.copy()) for p in params])


def _far_from_threshold() -> int:
    """A layer-1 neuron the golden model left out whose ranking score is far below the
    selection threshold (selecting it too is not a near-tie)."""
    step, _ = golden_step()
    assert not step.row_masks[1].all()
    assert step.scores[1] is not None
    scores = np.where(step.row_masks[1], np.inf, step.scores[1])
    return int(np.argmin(scores))


SCORED_FAR = _far_from_threshold()


def _flip(mask: np.ndarray, i: int = 0) -> None:
    mask[i] = not mask[i]


# (planted difference, the one check that must fail, text its row must contain)
PLANTS: list[tuple[str, Callable[[Any], None], str, str]] = [
    ("loss", lambda o: setattr(o, "loss", o.loss * (1 + 1e-3)), "loss", "device "),
    ("correct", lambda o: setattr(o, "correct", o.correct + 1), "correct", ""),
    ("skipped", lambda o: setattr(o, "skipped", not o.skipped), "skipped", ""),
    ("k", lambda o: o.k.__setitem__(2, o.k[2] - 2), "k[2]", ""),
    ("row mask", lambda o: _flip(o.row_masks[1], SCORED_FAR), "rows[1]",
     f"differ at [{SCORED_FAR}]"),
    ("bias mask", lambda o: _flip(o.bias_masks[1]), "bias[1]", "differ at [0]"),
    ("bias mask last layer", lambda o: _flip(o.bias_masks[2], 2), "bias[2]", "differ at [2]"),
    ("weight update", lambda o: o.updates[0][0].__setitem__((0, 0), o.updates[0][0][0, 0] + 1),
     "u.W[0]", "max abs"),
    ("bias update", lambda o: o.updates[2][1].__setitem__(1, o.updates[2][1][1] + 1), "u.b[2]",
     "max abs"),
    ("weight", lambda o: o.params[1][0].__setitem__((1, 2), o.params[1][0][1, 2] + 1e-3),
     "W[1]", "worst at (1, 2)"),
    ("bias", lambda o: o.params[0][1].__setitem__(3, o.params[0][1][3] - 1e-3), "b[0]",
     "worst at (3,)"),
]


def test_agreeing_observation_passes() -> None:
    step, params = golden_step()
    v = compare_step(step, observation(step, params), golden_params=params)
    assert v.ok and not v.ties, str(v)
    names = {c.name for c in v.checks}
    assert {"bias[0]", "bias[1]", "bias[2]", "rows[2]", "u.b[1]", "W[2]", "b[2]"} <= names


@pytest.mark.parametrize("what,plant,check,text", PLANTS, ids=[p[0] for p in PLANTS])
def test_compare_step_fails_on_each_difference(what: str, plant: Callable[[Any], None],
                                               check: str, text: str) -> None:
    step, params = golden_step()
    obs = observation(step, params)
    plant(obs)
    v = compare_step(step, obs, golden_params=params)
    assert not v.ok and [c.name for c in v.failed] == [check], str(v)
    failed = v.failed[0]
    assert failed.status == FAIL and text in failed.detail + failed.value, str(v)
    assert str(v).startswith("step: FAIL")


def test_bias_masks_are_compared_even_when_rows_agree() -> None:
    """The device updated a bias the golden model froze (or the reverse) while the weight
    rows agree: only the bias-mask check can see it."""
    step, params = golden_step()
    layer, j = 1, 3
    obs = observation(step, params)
    masks = obs.bias_masks
    assert masks is not None
    masks[layer][j] = not masks[layer][j]
    v = compare_step(step, obs, golden_params=params)
    assert [c.name for c in v.failed] == [f"bias[{layer}]"]
    assert v.failed[0].detail == f"differ at [{j}]" and v.failed[0].value != "J=1.000"


def test_compare_params_fails_per_tensor() -> None:
    _, params = golden_step()
    dev = [(w.copy(), b.copy()) for w, b in params]
    dev[2][0][0, 1] += 1e-3
    dev[1][1][0] = np.nan
    v = compare_params(dev, params)
    assert not v.ok and [c.name for c in v.failed] == ["b[1]", "W[2]"]
    assert "worst at (0, 1)" in v.failed[1].detail and "worst at (0,)" in v.failed[0].detail
    assert str(v).startswith("params: FAIL")
    # within tolerance passes; a hard ulp limit makes the same difference fail
    near = [(np.nextafter(w, F32(np.inf)), b.copy()) for w, b in params]
    assert compare_params(near, params).ok
    assert not compare_params(near, params, Tolerance(max_ulp=0)).ok
    with pytest.raises(ValueError):  # a device with another layer count never "agrees"
        compare_params(dev[:2], params)


def test_compare_step_params_need_golden_params() -> None:
    step, params = golden_step()
    with pytest.raises(ValueError, match="golden_params"):
        compare_step(step, observation(step, params))


def test_compare_eval_fails_on_each_difference() -> None:
    gold = GoldenMLP([6, 3], seed=0)
    x = np.random.default_rng(1).normal(size=(50, 6)).astype(F32)
    ev = gold.evaluate(x, np.arange(50) % 3)
    assert compare_eval(ev, ev.loss_sum, ev.correct, ev.pred).ok
    v = compare_eval(ev, ev.loss_sum * 1.01, ev.correct, ev.pred)
    assert [c.name for c in v.failed] == ["loss_sum"]
    other = 1 if ev.correct == 0 else ev.correct - 1
    v = compare_eval(ev, ev.loss_sum, other, ev.pred)
    assert [c.name for c in v.failed] == ["accuracy"]
    pred = ev.pred.copy()
    pred[7] = (pred[7] + 1) % 3
    v = compare_eval(ev, ev.loss_sum, ev.correct, pred)
    assert [c.name for c in v.failed] == ["pred"] and v.failed[0].detail == "at [7]"
    # free-running tolerance: prediction differences are reported, not failed
    v = compare_eval(ev, ev.loss_sum, ev.correct, pred, Tolerance.free_running())
    assert v.ok and [c.status for c in v.checks if c.name == "pred"] == [INFO]


def test_single_checks_fail() -> None:
    a = np.array([1.0, 2.0, 3.0], F32)
    assert check_close("x", a, a, 0, 0).status == PASS
    assert check_close("x", a + 1e-3, a, 1e-5, 0).status == FAIL
    assert check_close("x", np.nextafter(a, F32(9)), a, 1, 1, max_ulp_limit=0).status == FAIL
    assert check_update("u", a, a, 1e-4).status == PASS
    assert check_update("u", a * 1.01, a, 1e-4).status == FAIL
    assert check_update("u", np.array([1e-30], F32), np.zeros(1, F32), 1).status == FAIL
    assert check_loss("l", 1.0, 1.0, 0).status == PASS
    assert check_loss("l", 1.001, 1.0, 1e-4).status == FAIL
    assert check_loss("l", 1e-3, 0.0, 1e-4).status == FAIL
    assert check_equal("c", 3, 4).status == FAIL
    q = np.arange(6, dtype=np.int8).reshape(2, 3)
    assert check_bitexact("f", q, q).status == PASS
    bad = q.copy()
    bad[1, 2] += 1
    c = check_bitexact("f", bad, q)
    assert c.status == FAIL and c.detail == "first at [1, 2]: device 6 golden 5"
    assert check_bitexact("f", q.reshape(3, 2), q).status == FAIL
    m = np.array([True, False, True])
    assert check_mask("m", m, m, None, 1e-4).status == PASS
    assert check_mask("m", ~m, m, None, 1e-4).status == FAIL
    step, _ = golden_step()
    assert check_k(0, step.k[0], step, 1e-4).status == PASS
    step.stats[0] = {"k_raw": step.k[0] + 0.5}  # far from an integer: off by one is a bug
    assert check_k(0, step.k[0] + 1, step, 1e-4).status == FAIL


def test_mask_agreement_uses_a_given_threshold() -> None:
    """An explicit threshold (e.g. the device's own) decides the near-ties, not the
    golden mask's smallest selected score (a surviving mutant of benchmarks/mutation.py)."""
    scores = np.array([5.0, 3.0, 2.0, 1.0])
    gold = np.array([1, 1, 0, 0], bool)
    dev = np.array([1, 0, 1, 0], bool)
    assert mask_agreement(dev, gold, scores, 1e-3).status == FAIL  # threshold 3.0
    agr = mask_agreement(dev, gold, scores, rel_eps=0.6, threshold=2.5)
    assert agr.threshold == 2.5 and agr.status == TIE
    assert mask_agreement(dev, gold, scores, rel_eps=0.1, threshold=2.5).status == FAIL
