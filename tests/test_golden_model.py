"""Golden model: `full` against torch autograd + torch.optim.SGD, and bit-exact against a
plain-loop transcription of docs/training.md."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rig.errors import ConfigError
from rig.golden.data import digits_split, epoch_batches
from rig.golden.model import GoldenMLP, LayerParams, init_params

F32 = np.float32


@pytest.fixture(scope="module")
def digits():
    split = digits_split(seed=0)
    return split.train.decode(), split.train.labels.astype(np.int64)


def _torch_twin(params: list[LayerParams], lr: float, momentum: float):
    layers = []
    for w, b in params:
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
    opt = torch.optim.SGD([p for lin in layers for p in lin.parameters()], lr=lr,
                          momentum=momentum)
    return layers, opt


def _torch_step(layers, opt, x, y) -> float:
    a = torch.from_numpy(x)
    for i, lin in enumerate(layers):
        a = lin(a)
        if i < len(layers) - 1:
            a = torch.relu(a)
    loss = torch.nn.functional.cross_entropy(a, torch.from_numpy(y))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_full_matches_torch_autograd_sgd(digits, momentum: float) -> None:
    torch.set_num_threads(1)
    x, y = digits
    gold = GoldenMLP([64, 32, 16, 10], seed=3, lr=0.05, momentum=momentum)
    layers, opt = _torch_twin(gold.get_params(), 0.05, momentum)
    for step, idx in enumerate(epoch_batches(len(y), 32, seed=0, epoch=0)[:25]):
        st = gold.step(x[idx], y[idx])
        loss = _torch_step(layers, opt, x[idx], y[idx])
        assert st.loss == pytest.approx(loss, rel=2e-6), step
        assert st.k == [32, 16, 10] and not st.skipped
        for (w, b), lin in zip(gold.get_params(), layers, strict=True):
            np.testing.assert_allclose(w, lin.weight.detach().numpy(), atol=1e-6, rtol=0)
            np.testing.assert_allclose(b, lin.bias.detach().numpy(), atol=1e-6, rtol=0)
    moms = [p for lin in layers for p in lin.parameters()]
    if momentum:  # the momentum buffers agree too
        for (vw, vb), (pw, pb) in zip(gold.get_momentum(), zip(moms[::2], moms[1::2],
                                                                strict=True), strict=True):
            np.testing.assert_allclose(vw, opt.state[pw]["momentum_buffer"].numpy(), atol=1e-6)
            np.testing.assert_allclose(vb, opt.state[pb]["momentum_buffer"].numpy(), atol=1e-6)


def _hexf(h: str) -> np.float32:
    return F32(float.fromhex(h))


def _ref_expf(x: np.float32) -> np.float32:
    """docs/training.md's tr_expf, one float32 scalar at a time (x in softmax's range)."""
    f = F32
    kf = f(f(f(x * _hexf("0x1.715476p+0")) + f(12582912.0)) - f(12582912.0))
    r = f(f(x - f(kf * _hexf("0x1.62ep-1"))) - f(kf * _hexf("0x1.0bfbe8p-15")))
    p = _hexf("0x1.a01a02p-13")
    for c in ("0x1.6c16c2p-10", "0x1.111112p-7", "0x1.555556p-5", "0x1.555556p-3", "0x1p-1",
              "0x1p+0", "0x1p+0"):
        p = f(f(p * r) + _hexf(c))
    k = int(kf)
    if x < _hexf("-0x1.9fe368p+6"):
        return F32(0.0)
    if k < -126:
        return f(f(p * f(2.0 ** (k + 64))) * f(2.0 ** -64))
    return f(p * f(2.0 ** k))


def _ref_logf(x: np.float32) -> np.float32:
    """docs/training.md's tr_logf for a normal x > 0, one float32 scalar at a time."""
    f = F32
    bits = int(np.array([x], F32).view(np.uint32)[0])
    e = (bits >> 23) - 127
    mbits = (bits & 0x7FFFFF) | 0x3F800000
    if mbits > 0x3FB504F3:
        mbits -= 0x800000
        e += 1
    m = np.array([mbits], np.uint32).view(F32)[0]
    fm = f(m - f(1.0))
    sv = f(fm / f(f(2.0) + fm))
    z = f(sv * sv)
    p = _hexf("0x1.745d18p-4")
    for c in ("0x1.c71c72p-4", "0x1.24924ap-3", "0x1.99999ap-3", "0x1.555556p-2"):
        p = f(f(p * z) + _hexf(c))
    s2 = f(sv + sv)
    lm = f(s2 + f(s2 * f(z * p)))
    ef = f(e)
    return f(f(ef * _hexf("0x1.62ep-1")) + f(lm + f(ef * _hexf("0x1.0bfbe8p-15"))))


def _reference_step(params, x, y, lr, mu, vel):
    """docs/training.md transcribed with scalar float32 loops (full strategy)."""
    f = F32
    n_layers = len(params)
    batch = len(y)
    acts, zs = [x.astype(F32)], []
    for layer, (w, b) in enumerate(params):
        a = acts[-1]
        z = np.zeros((batch, w.shape[0]), F32)
        for n in range(batch):
            for j in range(w.shape[0]):
                s = f(0.0)
                for i in range(w.shape[1]):
                    s = f(s + f(w[j, i] * a[n, i]))
                z[n, j] = f(s + b[j])
        zs.append(z)
        if layer < n_layers - 1:
            acts.append(np.maximum(z, f(0.0)))
    logits = zs[-1]
    delta = np.zeros_like(logits)
    total = f(0.0)
    for n in range(batch):
        m = logits[n].max()
        e = [_ref_expf(f(zj - m)) for zj in logits[n]]
        s = f(0.0)
        for ej in e:
            s = f(s + ej)
        total = f(total + f(f(m + _ref_logf(s)) - logits[n, y[n]]))
        for j in range(len(e)):
            delta[n, j] = f(f(f(e[j] / s) - f(j == y[n])) / f(batch))
    loss = f(total / f(batch))
    new: list[LayerParams | None] = [None] * n_layers
    for layer in range(n_layers - 1, -1, -1):
        w, b = params[layer]
        a = acts[layer]
        gw = np.zeros_like(w)
        gb = np.zeros_like(b)
        for j in range(w.shape[0]):
            for i in range(w.shape[1]):
                s = f(0.0)
                for n in range(batch):
                    s = f(s + f(delta[n, j] * a[n, i]))
                gw[j, i] = s
            s = f(0.0)
            for n in range(batch):
                s = f(s + delta[n, j])
            gb[j] = s
        if layer > 0:
            nd = np.zeros((batch, w.shape[1]), F32)
            for n in range(batch):
                for i in range(w.shape[1]):
                    s = f(0.0)
                    for j in range(w.shape[0]):
                        s = f(s + f(w[j, i] * delta[n, j]))
                    nd[n, i] = s if zs[layer - 1][n, i] > 0 else f(0.0)
            delta = nd
        updated = []
        for p, v, g in zip((w, b), vel[layer], (gw, gb), strict=True):
            if mu > 0:
                v[...] = (f(mu) * v + g).astype(F32)
                u = (f(lr) * v).astype(F32)
            else:
                u = (f(lr) * g).astype(F32)
            updated.append(p - u)  # W_l itself stays as it was for the propagation above
        new[layer] = LayerParams(*updated)
    return float(loss), new


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_full_is_bit_exact_to_the_documented_loops(momentum: float) -> None:
    rng = np.random.default_rng(1)
    dims = [5, 4, 3]
    gold = GoldenMLP(dims, seed=1, lr=0.1, momentum=momentum)
    ref_params = gold.get_params()
    vel = [(np.zeros_like(w), np.zeros_like(b)) for w, b in ref_params]
    for _ in range(3):
        x = rng.normal(size=(4, 5)).astype(F32)
        y = rng.integers(0, 3, size=4)
        loss, ref_params = _reference_step(ref_params, x, y, 0.1, momentum, vel)
        st = gold.step(x, y)
        assert st.loss == loss
        for (gw, gb), (rw, rb) in zip(gold.get_params(), ref_params, strict=True):
            assert np.array_equal(gw, rw) and np.array_equal(gb, rb)


def test_evaluate_counts_and_changes_nothing(digits) -> None:
    x, y = digits
    gold = GoldenMLP([64, 16, 10], seed=0)
    before = gold.get_params()
    ev = gold.evaluate(x[:100], y[:100])
    assert ev.count == 100 and 0 <= ev.correct <= 100 and ev.pred.dtype == np.uint8
    assert ev.correct == int((ev.pred == y[:100]).sum())
    st = gold.step(x[:100], y[:100])  # loss of a step = mean of the eval losses
    assert st.loss == pytest.approx(ev.loss_sum / 100, rel=1e-6)
    assert st.correct == ev.correct
    gold.set_params(before)
    assert all(np.array_equal(a.weight, b.weight) for a, b in zip(gold.get_params(), before,
                                                                  strict=True))


def test_init_is_deterministic_and_bounded() -> None:
    a, b = init_params([64, 32, 10], 7), init_params([64, 32, 10], 7)
    c = init_params([64, 32, 10], 8)
    assert all(np.array_equal(p.weight, q.weight) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[0].weight, c[0].weight)
    assert a[0].weight.dtype == np.float32 and np.abs(a[0].weight).max() <= 1 / 8
    assert GoldenMLP([3, 2], seed=None).get_params()[0].weight.sum() == 0  # like MODEL_INIT


def test_configure_resets_momentum_and_validates(digits) -> None:
    x, y = digits
    gold = GoldenMLP([64, 10], seed=0, lr=0.1, momentum=0.9)
    gold.step(x[:8], y[:8])
    assert np.abs(gold.get_momentum()[0].weight).sum() > 0
    gold.configure(0.1, 0.9, "tinyprop", [0.2])
    assert np.abs(gold.get_momentum()[0].weight).sum() == 0
    assert gold.sparams.tolist() == pytest.approx([0.2, 0.9, 0.5])
    with pytest.raises(ConfigError, match="unknown strategy"):
        gold.configure(0.1, 0.0, "sparse-magic")
    with pytest.raises(ConfigError, match="takes 3 sparams"):
        gold.configure(0.1, 0.0, 1, [0.1, 0.9, 0.5, 0.1])
    with pytest.raises(ConfigError, match="S_min"):
        gold.configure(0.1, 0.0, "tinyprop", [0.9, 0.1])
