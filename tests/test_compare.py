"""rig.compare: ulp metric, tolerance checks, mask agreement with near-ties, verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.compare import (
    FAIL,
    PASS,
    TIE,
    Check,
    StepObservation,
    Tolerance,
    Verdict,
    allclose,
    compare_eval,
    compare_params,
    compare_step,
    jaccard,
    mask_agreement,
    max_abs_error,
    max_ulp,
    rel_error,
    ulp_distance,
)
from rig.golden.model import GoldenMLP

F32 = np.float32
finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


def test_ulp_of_adjacent_floats_is_one() -> None:
    for v in (F32(1.0), F32(-3.5), F32(1e-30), F32(0.0), F32(3e38)):
        up = np.nextafter(v, F32(np.inf))
        assert ulp_distance([v], [up])[0] == 1
    assert ulp_distance([0.0], [-0.0])[0] == 0
    tiny = np.nextafter(F32(0), F32(1))
    assert ulp_distance([tiny], [-tiny])[0] == 2  # across zero, sign handled
    assert ulp_distance([1.0], [2.0])[0] == 2**23
    assert ulp_distance([np.nan], [1.0])[0] == 2**32
    assert max_ulp([1.0, 2.0], [1.0, 2.0]) == 0 and max_ulp([], []) == 0


@given(finite32, finite32, finite32)
def test_ulp_distance_is_a_metric_on_the_float_line(a: float, b: float, c: float) -> None:
    d = lambda x, y: int(ulp_distance([x], [y])[0])  # noqa: E731
    assert d(a, b) == d(b, a)
    assert (d(a, b) == 0) == (F32(a) == F32(b))
    assert d(a, c) <= d(a, b) + d(b, c)


def test_errors_and_allclose() -> None:
    assert max_abs_error([1.0, 2.0], [1.0, 2.5]) == 0.5
    assert rel_error(1.1, 1.0) == pytest.approx(0.1) and rel_error(1e-3, 0.0) == 1e-3
    rep = allclose([1.0, 2.0, 3.0], [1.0, 2.0001, 2.0], atol=1e-3, rtol=0)
    assert not rep.ok and rep.n_bad == 1 and rep.worst_index == (2,)
    assert allclose([1.0, 100.0], [1.0, 100.01], atol=0, rtol=1e-3).ok
    assert not allclose([np.nan], [1.0], atol=1, rtol=1).ok
    with pytest.raises(ValueError, match="shape"):
        allclose([1.0], [1.0, 2.0], 0, 0)


def test_jaccard_and_near_ties() -> None:
    assert jaccard([0, 0], [0, 0]) == 1.0
    assert jaccard([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(1 / 3)
    scores = np.array([5.0, 3.0, 3.0000001, 1.0])
    gold = np.array([1, 0, 1, 0], bool)  # top-2: 0 and 2
    dev = np.array([1, 1, 0, 0], bool)  # picked 1 instead of 2: a near-tie
    agr = mask_agreement(dev, gold, scores, rel_eps=1e-5)
    assert agr.mismatched == [1, 2] and agr.near_ties == [1, 2] and agr.status == TIE
    assert agr.threshold == pytest.approx(3.0000001) and agr.jaccard == pytest.approx(1 / 3)
    bad = mask_agreement(np.array([1, 0, 0, 1], bool), gold, scores, rel_eps=1e-5)
    assert bad.status == FAIL and bad.unexplained == [3]  # 2 sits on the threshold itself
    assert mask_agreement(gold, gold, scores).status == PASS


def test_verdict_table() -> None:
    v = Verdict("step 3", [Check("loss", PASS, "1e-07", "rel ≤ 1e-05"),
                           Check("rows[0]", TIE, "J=0.800", "J = 1", "differ at [1, 2]")])
    assert v.ok and len(v.ties) == 1 and not v.failed
    text = str(v)
    assert text.splitlines()[0] == "step 3: PASS" and "differ at [1, 2]" in text
    v.add(Check("W[0]", FAIL, "0.1", "atol 1e-05"))
    assert not v.ok and str(v).startswith("step 3: FAIL") and len(v.rows()) == 3


def _step_and_observation(strategy: str = "tinyprop"):
    gold = GoldenMLP([6, 5, 3], seed=0, lr=0.1, strategy=strategy)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(F32)
    step = gold.step(x, [0, 1, 2, 0])
    obs = StepObservation(step.loss, step.correct, step.skipped, list(step.k),
                          [m.copy() for m in step.row_masks], [m.copy() for m in step.bias_masks],
                          [(u.weight.copy(), u.bias.copy()) for u in step.updates],
                          gold.get_params())
    return gold, step, obs


def test_compare_step_passes_on_itself_and_flags_differences() -> None:
    gold, step, obs = _step_and_observation()
    v = compare_step(step, obs, golden_params=gold.get_params())
    assert v.ok and not v.ties, str(v)
    obs.loss = step.loss * (1 + 1e-3)
    obs.params[0].weight[0, 0] += 1e-3
    obs.updates[1][0][:] *= 1.01
    failed = {c.name for c in compare_step(step, obs, golden_params=gold.get_params()).failed}
    assert failed == {"loss", "W[0]", "u.W[1]"}


def test_compare_step_reports_topk_near_tie() -> None:
    _, step, obs = _step_and_observation()
    obs.params = None
    layer = 0
    scores = step.scores[layer]
    rows = step.row_masks[layer]
    kth = int(np.flatnonzero(rows)[np.argmin(scores[rows])])
    out = int(np.flatnonzero(~rows)[np.argmax(scores[~rows])])
    obs.row_masks[layer][[kth, out]] = [False, True]  # device swapped the boundary neurons
    rel = abs(scores[out] - scores[kth]) / scores[kth]
    v = compare_step(step, obs, Tolerance(tie_rel_eps=rel * 1.01))
    assert v.ok and [c.name for c in v.ties] == [f"rows[{layer}]"]
    v = compare_step(step, obs, Tolerance(tie_rel_eps=rel * 0.5))
    assert [c.name for c in v.failed] == [f"rows[{layer}]"]


def test_k_off_by_one_at_floor_boundary_is_a_tie() -> None:
    _, step, obs = _step_and_observation()
    obs.params = obs.row_masks = None
    step.stats[0]["k_raw"] = float(step.k[0]) + 1 - 1e-7  # N·bpr just below an integer
    obs.k[0] = step.k[0] + 1
    v = compare_step(step, obs)
    assert any(c.name == "k[0]" and c.status == TIE for c in v.checks)
    obs.k[0] = step.k[0] + 2
    assert not compare_step(step, obs).ok


def test_compare_eval_and_params() -> None:
    gold = GoldenMLP([6, 3], seed=0)
    x = np.random.default_rng(1).normal(size=(100, 6)).astype(F32)
    y = np.arange(100) % 3
    ev = gold.evaluate(x, y)
    assert compare_eval(ev, ev.loss_sum, ev.correct, ev.pred).ok
    v = compare_eval(ev, ev.loss_sum, ev.correct + 1 if ev.correct < 100 else 99, tol=Tolerance())
    assert not v.ok
    assert compare_eval(ev, ev.loss_sum, ev.correct + 1, tol=Tolerance.free_running()).ok
    params = gold.get_params()
    assert compare_params(params, params).ok
    with pytest.raises(ValueError, match="golden_params"):
        _, step, obs = _step_and_observation()
        compare_step(step, obs)
