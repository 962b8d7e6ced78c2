"""Training rules whose outcome the usual lockstep parameters never depend on, run with
parameters that make each one decide something (native firmware against the golden model,
docs/training.md):

- TinyProp's `k >= 1` clamp: small S_min / S_max / zeta and a deep layer put N*bpr below 1,
  where floor() alone would give k = 0 (no row of that layer updated, no error propagated
  below it);
- `static`'s rounding, rows = floor(ratio*N + 0.5): ratio 0.2 on layers of 16 and 8 neurons
  gives 3.2 and 1.6, where ceil (4, 2) and floor (3, 1) each disagree on one layer.

Each test first asserts that the golden model really took the decision, then runs the
device in lockstep (k, masks, updates, parameters per step).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rig.compare import compare_params
from rig.device import Device
from rig.golden.data import Split, digits_split, epoch_batches
from rig.golden.model import GoldenMLP, LayerParams, init_params
from rig.golden.strategies import make_strategy
from rig.session import Inspect, RunReport, RunSpec, TrainingSession

LOCKSTEP = Inspect(masks=True, updates=True, params_every=1, resync=True)


@pytest.fixture(scope="module")
def split() -> Split:
    return digits_split(seed=0, n_val=64)


def lockstep(dev: Device, split: Split, strategy: str, sparams: tuple[float, ...],
             dims: tuple[int, ...], samples: int = 96) -> RunReport:
    spec = RunSpec(dims=dims, lr=0.1, momentum=0.5, batch=16, epochs=1, train_samples=samples,
                   test_samples=32, val_samples=len(split.val), seed=0, strategy=strategy,
                   sparams=sparams)
    session = TrainingSession(dev, spec, split=split, initial_params=list(init_params(dims, 0)),
                              inspect=LOCKSTEP)
    session.prepare()
    return session.run()


def test_tinyprop_k_is_at_least_one(dev: Device, split: Split) -> None:
    dims = (64, 32, 16, 10)
    sparams = (0.02, 0.5, 0.1)  # layer 1: N*bpr <= 16*0.05; layer 0: <= 32*0.005
    report = lockstep(dev, split, "tinyprop", sparams, dims)
    clamped = [(s.index, layer) for s in report.steps for layer, st in s.golden.stats.items()
               if st["k_raw"] < 1.0]
    # the clamp decided: floor(N*bpr) = 0 in the two lower layers of every step
    assert {layer for _, layer in clamped} == {0, 1} and len(clamped) == 2 * len(report.steps)
    assert all(s.golden.k[0] == s.golden.k[1] == 1 for s in report.steps)
    assert all(s.golden.stats[0]["k_raw"] < 0.5 for s in report.steps)  # not a floor near-tie
    assert len({s.golden.k[2] for s in report.steps}) > 1  # the top layer's k still varies
    assert report.ok, report.failures
    assert all(tuple(s.device.k[:2]) == (1, 1) for s in report.steps)


def _rows(ratio: float, n: int) -> int:
    return min(n, int(np.floor(np.float32(ratio) * np.float32(n) + np.float32(0.5))))


def test_static_rows_are_rounded(dev: Device, split: Split) -> None:
    dims = (64, 16, 8, 10)
    ratio = 0.2
    sparams = (3.0, 3.0, ratio)  # biases and weight rows of all three layers
    strat = make_strategy("static", dims, sparams)
    rows, _ = strat.initial_masks()
    widths = dims[1:]
    assert [int(r.sum()) for r in rows] == [_rows(ratio, n) for n in widths] == [3, 2, 2]
    # the rule decides: ceil and floor each give another row count on some layer
    f = np.float32
    assert [math.ceil(f(ratio) * f(n)) for n in widths] != [3, 2, 2]
    assert [math.floor(f(ratio) * f(n)) for n in widths] != [3, 2, 2]
    report = lockstep(dev, split, "static", sparams, dims, samples=48)
    assert report.ok, report.failures
    assert all(list(s.device.k) == [3, 2, 2] for s in report.steps)


def test_train_config_resets_optimiser_and_strategy_state(dev: Device, split: Split) -> None:
    """docs/protocol.md: TRAIN_CONFIG resets the momentum buffers and the strategy state.
    After three steps with momentum (and TinyProp-v2's running Ymax), a repeated
    TRAIN_CONFIG must make the next step equal a fresh golden model's first step from the
    device's parameters."""
    dims = (64, 32, 10)
    data = split.train.subset(np.arange(64))
    x = data.decode()
    dev.load_model(init_params(dims, 1))
    dev.data_config(data.n_features, data.dtype, data.scale, data.zero_point, len(data))
    dev.write_samples(0, data.labels, data.q)
    dev.train_config(0.1, 0.9, "tinypropv2")
    for t in range(3):
        dev.train_step(np.arange(16 * t, 16 * t + 16))
    params = [LayerParams(w, b) for w, b in dev.read_model()]
    dev.train_config(0.1, 0.9, "tinypropv2")
    res = dev.train_step(np.arange(48, 64))
    golden = GoldenMLP(dims, params=params, lr=0.1, momentum=0.9, strategy="tinypropv2")
    step = golden.step(x[48:64], data.labels[48:64])
    assert list(res.k) == step.k
    v = compare_params(dev.read_model(), golden.get_params())
    assert v.ok, str(v)
    # the check can fail: a golden run that keeps its momentum and Ymax through the
    # fourth step ends elsewhere
    kept = GoldenMLP(dims, params=init_params(dims, 1), lr=0.1, momentum=0.9,
                     strategy="tinypropv2")
    for t in range(4):
        kept.step(x[16 * t:16 * t + 16], data.labels[16 * t:16 * t + 16])
    assert not compare_params(dev.read_model(), kept.get_params()).ok


def _golden_selections(strategy: str, sparams: tuple[float, ...], split: Split, n: int,
                       epochs: int) -> list[bytes]:
    """Row masks of each epoch's SELECT in a golden-only run (`epochs` of `n` samples)."""
    dims = (64, 32, 10)
    g = GoldenMLP(dims, params=init_params(dims, 0), lr=0.1, momentum=0.9, strategy=strategy,
                  sparams=sparams)
    x, y = split.train.decode()[:n], split.train.labels[:n]
    out = []
    for epoch in range(epochs):
        out.append(b"".join(np.packbits(m).tobytes()
                            for m in g.select(split.val.decode()).row_masks))
        for idx in epoch_batches(n, 32, 0, epoch):
            g.step(x[idx], y[idx])
    return out


# With the velocity starting at 0 (previous similarity 1), mu first acts on the second
# SELECT and needs a few epochs of drift to change a selection: these settings make it.
@pytest.mark.parametrize("strategy,sparams,other_mu,n,epochs", [
    ("velocity-budget", (0.5, 0.9), 0.0, 256, 6),
    ("neq", (0.25, 0.9), 0.5, 96, 6)])
def test_velocity_mu_decides(dev: Device, split: Split, strategy: str,
                             sparams: tuple[float, ...], other_mu: float, n: int,
                             epochs: int) -> None:
    """The velocity strategies' mu (the lockstep cases use the default 0.5): with another mu
    the golden selections change, and the device follows in lockstep."""
    assert _golden_selections(strategy, sparams, split, n, epochs) != \
        _golden_selections(strategy, (sparams[0], other_mu), split, n, epochs)
    dims = (64, 32, 10)
    spec = RunSpec(dims=dims, lr=0.1, momentum=0.9, batch=32, epochs=epochs, train_samples=n,
                   test_samples=32, val_samples=len(split.val), seed=0, strategy=strategy,
                   sparams=sparams)
    session = TrainingSession(dev, spec, split=split, initial_params=list(init_params(dims, 0)),
                              inspect=LOCKSTEP)
    session.prepare()
    report = session.run()
    assert report.ok, report.failures


def test_tinyprop_ratio_is_zero_when_ymax_is_zero(dev: Device, split: Split) -> None:
    """A zero model: hidden ReLUs are all off, so the hidden layer's error Y and its running
    maximum are 0; r = Y/Ymax is defined as 0 there (not 0/0), k = 1 (both sides)."""
    dims = (64, 16, 10)
    zeros = [LayerParams(np.zeros((o, i), np.float32), np.zeros(o, np.float32))
             for i, o in zip(dims[:-1], dims[1:], strict=True)]
    data = split.train.subset(np.arange(16))
    dev.model_init(dims)
    dev.data_config(data.n_features, data.dtype, data.scale, data.zero_point, len(data))
    dev.write_samples(0, data.labels, data.q)
    dev.train_config(0.1, 0.0, "tinyprop")
    res = dev.train_step(np.arange(16))
    golden = GoldenMLP(dims, params=zeros, lr=0.1, strategy="tinyprop")
    step = golden.step(data.decode(), data.labels)
    assert step.stats[0]["Ymax"] == 0.0 and step.stats[0]["r"] == 0.0
    assert list(res.k) == step.k and step.k[0] == 1
    assert compare_params(dev.read_model(), golden.get_params()).ok
