"""Property tests of every strategy (docs/training.md, "Masks and sparse updates")."""

from __future__ import annotations

import numpy as np
import pytest
from _velocity_case import VEL_NEQ_ROWS1, VEL_V1, VEL_V2, VEL_W0, VEL_W1, VEL_X
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig import strategies
from rig.golden.macs import full_step_macs
from rig.golden.model import GoldenMLP
from rig.golden.strategies import make_strategy, random_permutation, xorshift32

F32 = np.float32
NAMES = list(strategies.NAMES)
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def runs(draw, names=tuple(NAMES)):
    """A model shape, a strategy with random sparams, and a few batches."""
    dims = draw(st.lists(st.integers(1, 9), min_size=2, max_size=4))
    dims[-1] = max(dims[-1], 2)  # at least two classes
    name = draw(st.sampled_from(names))
    spec = strategies.get(name)
    if name in ("tinyprop", "tinypropv2"):
        s_min = draw(st.floats(0.0, 1.0))
        s_max = draw(st.floats(s_min, 1.0))
        sparams = [s_min, s_max, draw(st.floats(0.05, 1.0))]
        if name == "tinypropv2":
            sparams += [draw(st.floats(0.0, 1.0)), draw(st.floats(0.5, 1.0))]
    elif name in ("velocity-budget", "random-budget"):
        sparams = [draw(st.floats(0.0, 1.0)), draw(st.integers(0, 1000))]
        if name == "velocity-budget":
            sparams[1] = draw(st.floats(0.0, 1.0))
    elif name == "neq":
        sparams = [draw(st.floats(0.0, 0.1)), draw(st.floats(0.0, 1.0))]
    elif name == "static":
        sparams = [draw(st.integers(0, 4)), draw(st.integers(0, 4)), draw(st.floats(0.0, 1.0))]
    else:
        sparams = list(spec.defaults)
    seed = draw(st.integers(0, 2**16))
    momentum = draw(st.sampled_from([0.0, 0.9]))
    n_steps = draw(st.integers(1, 4))
    batch = draw(st.integers(1, 6))
    return dims, name, sparams, seed, momentum, n_steps, batch


def _data(seed: int, dims: list[int], n: int):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dims[0])).astype(F32), rng.integers(0, dims[-1], size=n)


def _snapshot(gold: GoldenMLP):
    return [(p.weight.copy(), p.bias.copy(), v.weight.copy(), v.bias.copy())
            for p, v in zip(gold.get_params(), gold.get_momentum(), strict=True)]


@SETTINGS
@given(runs())
def test_masked_out_params_and_momentum_never_change(run) -> None:
    dims, name, sparams, seed, momentum, n_steps, batch = run
    gold = GoldenMLP(dims, seed=seed, lr=0.5, momentum=momentum, strategy=name, sparams=sparams)
    x, y = _data(seed, dims, batch * n_steps + 8)
    gold.select(x[-8:])
    for s in range(n_steps):
        before = _snapshot(gold)
        step = gold.step(x[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch])
        after = _snapshot(gold)
        full = full_step_macs(dims, batch)
        assert step.macs.forward == full.forward
        assert step.macs.backward <= full.backward and step.macs.update <= full.update
        for layer, ((w0, b0, vw0, vb0), (w1, b1, vw1, vb1)) in enumerate(zip(before, after,
                                                                            strict=True)):
            rows, bias = step.row_masks[layer], step.bias_masks[layer]
            assert step.k[layer] == rows.sum()
            assert np.array_equal(w0[~rows], w1[~rows]) and np.array_equal(vw0[~rows], vw1[~rows])
            assert np.array_equal(b0[~bias], b1[~bias]) and np.array_equal(vb0[~bias], vb1[~bias])
            uw, ub = step.updates[layer]
            assert not uw[~rows].any() and not ub[~bias].any()
            # p_new = p_old − u exactly where applied
            assert np.array_equal(w1[rows], w0[rows] - uw[rows])
            assert np.array_equal(b1[bias], b0[bias] - ub[bias])
        if step.skipped:
            assert step.k == [0] * len(step.k)
            assert all(np.array_equal(a, b) for x0, x1 in zip(before, after, strict=True)
                       for a, b in zip(x0, x1, strict=True))
            assert step.macs.backward == 0 and step.macs.update == 0


@SETTINGS
@given(runs(names=("tinyprop", "tinypropv2")))
def test_tinyprop_k_bounds_and_all_biases(run) -> None:
    dims, name, sparams, seed, momentum, n_steps, batch = run
    gold = GoldenMLP(dims, seed=seed, lr=0.1, momentum=momentum, strategy=name, sparams=sparams)
    x, y = _data(seed, dims, batch * n_steps)
    for s in range(n_steps):
        step = gold.step(x[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch])
        if step.skipped:
            assert name == "tinypropv2"
            continue
        for layer, n in enumerate(dims[1:]):
            assert 1 <= step.k[layer] <= n
            assert step.bias_masks[layer].all()
            kth = step.scores[layer][step.row_masks[layer]].min()
            assert (step.scores[layer][~step.row_masks[layer]] <= kth).all()  # top-k


@SETTINGS
@given(runs(names=("velocity-budget", "random-budget")))
def test_budget_never_exceeded(run) -> None:
    dims, name, sparams, seed, momentum, n_steps, batch = run
    gold = GoldenMLP(dims, seed=seed, lr=0.1, momentum=momentum, strategy=name, sparams=sparams)
    x, y = _data(seed, dims, 8)
    total = sum((i + 1) * o for i, o in zip(dims[:-1], dims[1:], strict=True))
    budget = int(np.floor(F32(sparams[0]) * F32(total)))
    for _ in range(n_steps):
        sel = gold.select(x)
        assert sel.trainable_params <= budget
        assert all(np.array_equal(r, b) for r, b in zip(sel.row_masks, sel.bias_masks,
                                                        strict=True))
        # greedy: no unselected neuron would still fit
        free = budget - sel.trainable_params
        for layer, rows in enumerate(sel.row_masks):
            if not rows.all():
                assert dims[layer] + 1 > free


def test_static_mask_is_fixed() -> None:
    dims = [6, 5, 4, 3]
    gold = GoldenMLP(dims, seed=0, lr=0.1, strategy="static", sparams=[2, 1, 0.5])
    rows, bias = gold.masks()
    assert [b.all() for b in bias] == [False, True, True]
    assert [int(r.sum()) for r in rows] == [0, 0, 2]  # floor(0.5·3 + 0.5) rows of the last layer
    assert rows[2].tolist() == [True, True, False]
    x, y = _data(0, dims, 12)
    for s in range(3):
        step = gold.step(x[s * 4:(s + 1) * 4], y[s * 4:(s + 1) * 4])
        gold.select(x)
        assert all(np.array_equal(a, b) for a, b in zip(step.row_masks, rows, strict=True))
        assert all(np.array_equal(a, b) for a, b in zip(gold.masks()[1], bias, strict=True))
        assert step.macs.backward == 4 * 4 * 2 + 4 * 4 * 3  # gW of layer 2 + δ into layer 1


def test_static_row_count_is_rounded_not_ceiled() -> None:
    gold = GoldenMLP([2, 100], seed=0, strategy="static", sparams=[1, 1, 0.3])
    assert int(gold.masks()[0][0].sum()) == 30  # 0.3f·100 = 30.000002 in float32


def test_random_budget_is_deterministic_per_seed() -> None:
    def masks(seed: int) -> list[list[bool]]:
        gold = GoldenMLP([8, 6, 4], seed=0, strategy="random-budget", sparams=[0.4, seed])
        x = np.ones((2, 8), F32)
        return [np.concatenate(gold.select(x).row_masks).tolist() for _ in range(4)]

    assert masks(5) == masks(5)
    assert masks(5) != masks(6)
    assert len({tuple(m) for m in masks(5)}) > 1  # redrawn at every SELECT


def test_xorshift32_and_permutation_reference_values() -> None:
    assert xorshift32(1) == 270369
    assert xorshift32(270369) == 67634689
    perm = random_permutation(10, seed=1, t=0)
    assert sorted(perm.tolist()) == list(range(10))
    assert random_permutation(10, 1, 0).tolist() == perm.tolist()

    def fisher_yates(n: int, state: int) -> list[int]:
        perm = list(range(n))
        for i in range(n - 1, 0, -1):
            state = xorshift32(state)
            j = state % (i + 1)
            perm[i], perm[j] = perm[j], perm[i]
        return perm

    # state = seed ^ 0x9E3779B9·(t+1) mod 2^32; 0 becomes 1
    assert random_permutation(7, 0x9E3779B9, 0).tolist() == fisher_yates(7, 1)
    assert random_permutation(7, 3, 2).tolist() == fisher_yates(7, 3 ^ (0x9E3779B9 * 3 % 2**32))


def test_tinyprop_control_scalars_follow_the_doc() -> None:
    """k from float32 Y/Ymax with ζ^d: recompute by hand for a fixed δ sequence."""
    strat = make_strategy("tinyprop", [4, 10, 10])
    f = F32
    ymax = f(0.0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        delta = rng.normal(size=(3, 10)).astype(F32) * f(rng.uniform(0.1, 2))
        strat.begin_step(delta)
        dec = strat.decide(0, delta)  # layer 0 of 2: d = 1
        score = np.zeros(10, F32)
        for j in range(10):
            for n in range(3):
                score[j] = f(score[j] + abs(delta[n, j]))
        y = f(0.0)
        for j in range(10):
            y = f(y + score[j])
        ymax = max(ymax, y)
        bpr = f(f(f(0.1) + f(f(f(0.9) - f(0.1)) * f(y / ymax))) * f(0.5))
        k = min(max(int(np.floor(f(f(10) * bpr))), 1), 10)
        assert int(dec.rows.sum()) == k
        assert np.array_equal(dec.scores, score)
        assert set(np.flatnonzero(dec.rows)) == set(np.argsort(-score, kind="stable")[:k])
        assert not dec.delta_prop[:, ~dec.rows].any()


def test_tinyprop_ties_prefer_lower_index() -> None:
    strat = make_strategy("tinyprop", [2, 6], [0.5, 0.5, 1.0])  # k = 3
    delta = np.array([[1, 2, 2, 2, 2, 1]], F32)
    strat.begin_step(delta)
    assert np.flatnonzero(strat.decide(0, delta).rows).tolist() == [1, 2, 3]


def test_tinypropv2_skips_and_still_updates_ymax() -> None:
    gold = GoldenMLP([4, 5, 3], seed=0, lr=0.01, strategy="tinypropv2",
                     sparams=[0.1, 0.9, 0.5, 0.9, 1.0])
    x = np.random.default_rng(0).normal(size=(4, 4)).astype(F32) * F32(3.0)
    _, zs = gold._forward(x)
    first = gold.step(x, zs[-1].argmin(axis=1))  # wrong labels: large output error
    assert not first.skipped and first.stats[1]["r"] == 1.0
    ymax = first.stats[1]["Ymax"]
    before = gold.get_params()
    second = gold.step(x, zs[-1].argmax(axis=1))  # the model's own answers: small error
    assert second.stats[1]["r"] < 0.9
    assert second.skipped and second.k == [0, 0] and second.stats[1]["Ymax"] == ymax
    assert 0 not in second.stats  # nothing below the output layer was looked at
    assert all(np.array_equal(a.weight, b.weight) for a, b in zip(before, gold.get_params(),
                                                                  strict=True))


def test_neq_velocity_follows_the_doc() -> None:
    gold = GoldenMLP([3, 2], seed=0, strategy="neq", sparams=[0.001, 0.5])
    strat = gold.strategy
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(F32)
    sel0 = gold.select(x)
    assert sel0.k == [2]  # t = 0: all trainable
    sel1 = gold.select(x)  # same outputs: φ = 1, v = (1 − φ^0 = 1) − 0.5·0 = 0
    assert np.allclose(strat.phi[0], 1.0, atol=1e-6)
    assert np.allclose(strat.velocity[0], 0.0, atol=1e-6) and sel1.k == [0]
    step = gold.step(x, [0, 1, 0, 1, 0])
    assert step.k == [0] and step.macs.backward == 0 and not step.skipped


def test_first_velocities_take_the_reference_form() -> None:
    gold = GoldenMLP([2, 4], params=[(VEL_W0, np.zeros(4, F32))], strategy="neq",
                     sparams=[0.25, 0.5])
    strat = gold.strategy
    assert gold.select(VEL_X).k == [4]
    gold.set_params([(VEL_W1, np.zeros(4, F32))])
    sel = gold.select(VEL_X)
    assert strat.velocity[0].tolist() == VEL_V1.tolist()
    assert sel.row_masks[0].tolist() == VEL_NEQ_ROWS1
    gold.select(VEL_X)
    assert strat.velocity[0].tolist() == VEL_V2.tolist()


def test_velocity_budget_ranks_by_velocity_per_param() -> None:
    gold = GoldenMLP([4, 3, 2], seed=0, strategy="velocity-budget", sparams=[0.5, 0.5])
    # total params 3·5 + 2·4 = 23 → budget 11: at t = 0 the tie rule takes the last layer
    # first (2·4 = 8), then layer-0 neurons of cost 5 no longer fit.
    rows, _ = gold.masks()
    assert [r.tolist() for r in rows] == [[False, False, False], [True, True]]
    strat = gold.strategy
    strat.velocity = [np.array([0.0, 0.9, 0.1], F32), np.array([0.2, 0.0], F32)]
    strat.select_count = 2
    order_masks = strat._select(first=False)
    # keys: layer0 0, .18, .02; layer1 .05, 0 → take (0,1) 5, (1,0) 4 → 9; next (0,2) 5 no
    assert [m.tolist() for m in order_masks] == [[False, True, False], [True, False]]


@pytest.mark.parametrize("name", NAMES)
def test_registry_ids_and_defaults(name: str) -> None:
    spec = strategies.get(name)
    assert make_strategy(spec.id, [3, 2]).params.dtype == np.float32
    assert len(spec.resolve(None)) == len(spec.param_names)
    assert make_strategy(spec.id, [3, 2]).name == name
