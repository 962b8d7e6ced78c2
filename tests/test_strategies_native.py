"""Sparse strategies: the native firmware against the golden model, in lockstep.

For every strategy both sides start from the same parameters and train on digits (u8
encoding) for one or more epochs; mask strategies get SELECT on both sides at every epoch
start. Per step: loss, correct, skipped, k, masks (MASK_READ, Jaccard with near-ties reported
as `tie`), applied updates (UPDATE_READ) and parameters are compared with `rig.compare`; then
the golden model is re-synced to the device parameters so rounding cannot accumulate.

The lockstep is `rig.session.TrainingSession` with `Inspect(masks, updates, params_every=1,
resync)` — the same path `tests/test_hil_strategies.py` runs on QEMU through the fixtures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from rig import memplan, strategies
from rig.device import Device
from rig.errors import ConfigError, DeviceNak
from rig.golden.data import Split, digits_split, epoch_batches
from rig.golden.model import GoldenMLP, LayerParams, init_params
from rig.protocol import NakReason
from rig.session import Inspect, RunReport, RunSpec, TrainingSession

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
DIMS = (64, 32, 10)
N_TRAIN = 192
SELECT_STRATEGIES = {s.name for s in strategies.STRATEGIES if s.uses_select}
LOCKSTEP = Inspect(masks=True, updates=True, params_every=1, resync=True)
ALL_STRATEGIES = strategies.NAMES


@dataclass(frozen=True)
class Case:
    strategy: str
    sparams: tuple[float, ...]  # may be a prefix: the rest take the defaults on both sides
    lr: float
    momentum: float
    batch: int
    epochs: int
    pretrained: bool  # start from a golden `full` pre-training (fine-tuning regime)
    dims: tuple[int, ...] = DIMS


# Chosen so every path runs: tinyprop with a sparams prefix; tinypropv2 with tau high enough
# to skip some steps; neq with eps in the range |v| reaches in 5 SELECTs (neurons freeze);
# velocity-budget with a budget that leaves room for ranked hidden neurons; momentum on the
# mask strategies (frozen neurons keep their momentum buffers untouched); three layers for
# zeta^d with d = 2 and for static's early stop above an untouched layer 0.
CASES = {
    "full": Case("full", (), 0.1, 0.0, 32, 1, False),
    "tinyprop": Case("tinyprop", (0.1,), 0.1, 0.0, 16, 1, True, (64, 32, 16, 10)),
    "tinypropv2": Case("tinypropv2", (0.1, 0.9, 0.5, 0.7, 0.995), 0.1, 0.0, 16, 2, True),
    "neq": Case("neq", (0.25, 0.5), 0.1, 0.9, 32, 5, False),
    "velocity-budget": Case("velocity-budget", (0.5,), 0.1, 0.9, 32, 4, False),
    "random-budget": Case("random-budget", (0.3, 7.0), 0.1, 0.9, 24, 3, False, (64, 32, 16, 10)),
    "static": Case("static", (1.0, 2.0, 0.3), 0.1, 0.5, 24, 2, True, (64, 32, 16, 10)),
}


# ------------------------------------------------------------------------ the lockstep run


def _pretrained(split: Split, dims: Sequence[int]) -> list[LayerParams]:
    """Golden-only `full` pre-training: lower loss, so TinyProp's ratios vary (and v2 skips)."""
    g = GoldenMLP(dims, seed=0, lr=0.3)
    x, y = split.train.decode(), split.train.labels
    for epoch in range(3):
        for idx in epoch_batches(len(y), 64, 1, epoch):
            g.step(x[idx], y[idx])
    return g.get_params()


def _read_masks(dev: Device, n_layers: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    masks = [dev.read_mask(layer) for layer in range(n_layers)]
    return [m.row_mask for m in masks], [m.bias_mask for m in masks]


def initial_params(case: Case, split: Split) -> list[LayerParams]:
    return _pretrained(split, case.dims) if case.pretrained else init_params(case.dims, 0)


def run_lockstep(dev: Device, case: Case, split: Split,
                 params0: Sequence[LayerParams]) -> RunReport:
    """The same TrainingSession a lab test uses, in lockstep: masks, updates and parameters
    read and compared after every step, golden re-synced to the device."""
    spec = RunSpec(dims=case.dims, lr=case.lr, momentum=case.momentum, batch=case.batch,
                   epochs=case.epochs, train_samples=N_TRAIN, test_samples=32,
                   val_samples=len(split.val), seed=0, strategy=case.strategy,
                   sparams=case.sparams)
    session = TrainingSession(dev, spec, split=split, initial_params=list(params0),
                              inspect=LOCKSTEP)
    session.prepare()
    return session.run()


def summary(report: RunReport) -> str:
    jac = [float(c.value[2:]) for v in report.all_verdicts for c in v.checks
           if c.name.startswith(("rows", "bias"))]
    upd = [float(c.value) for s in report.steps for c in s.verdict.checks
           if c.name.startswith("u.")]
    ties = sum(len(v.ties) for v in report.all_verdicts)
    return (f"{report.spec.strategy:16s} steps {len(report.steps):3d} skipped "
            f"{sum(s.device.skipped for s in report.steps):2d} | mask J min {min(jac):.3f} "
            f"mean {np.mean(jac):.4f} | max u err {max(upd):.2e} of max|u| | loss rel "
            f"{report.max_loss_rel:.1e} | ties {ties} | failed verdicts "
            f"{len(report.failed_verdicts)}")


# ------------------------------------------------------------------------ native fixtures


@pytest.fixture(scope="module")
def split() -> Split:
    return digits_split(seed=0, n_val=64)


@pytest.fixture(scope="module")
def pretrained(split: Split) -> list[LayerParams]:
    return _pretrained(split, DIMS)


# ------------------------------------------------------------------------ tests


def test_hello_advertises_every_strategy(dev: Device) -> None:
    info = dev.hello()
    assert info.strategies == (1 << len(ALL_STRATEGIES)) - 1, info.strategy_names


@pytest.mark.parametrize("name", ALL_STRATEGIES)
def test_lockstep_with_golden(dev: Device, split: Split, pretrained: list[LayerParams],
                              name: str) -> None:
    case = CASES[name]
    report = run_lockstep(dev, case, split, initial_params(case, split))
    print("\n" + summary(report))
    for v in report.all_verdicts:
        for c in v.ties:
            print(f"  tie: {v.title}: {c.name} {c.detail}")
    assert report.ok, report.failures
    steps = report.steps
    k_seen = {tuple(s.device.k) for s in steps}
    # The interesting paths actually ran.
    if name == "tinypropv2":
        assert 0 < sum(s.device.skipped for s in steps) < len(steps)
    if name in ("tinyprop", "tinypropv2", "neq"):
        assert len(k_seen) > 1, k_seen
    if name in SELECT_STRATEGIES:
        selections = {b"".join(np.packbits(r).tobytes() for r in e.selected_rows or [])
                      for e in report.epochs}
        assert len(selections) > 1  # SELECT changed the selection at least once
    if name == "neq":
        assert any(sum(k) < sum(case.dims[1:]) for k in k_seen)  # some neurons froze


# Memory-plan paths (docs/training.md "Memory plan"): static at its defaults trains only the
# biases of layer 0, so that layer's error is made in chunks and its inputs pass through in
# chunks; momentum packed with the gradients (static, full) or kept for every parameter
# (random-budget, whose masks change).
PLAN_CASES = {
    "static-defaults-momentum": Case("static", (), 0.1, 0.9, 32, 2, False),
    "static-defaults-odd-batch": Case("static", (), 0.1, 0.0, 23, 1, True),
    "full-momentum": Case("full", (), 0.1, 0.9, 32, 1, False),
    "random-budget-defaults": Case("random-budget", (), 0.1, 0.9, 16, 2, False),
}


@pytest.mark.parametrize("name", PLAN_CASES)
def test_lockstep_memory_plan_paths(dev: Device, split: Split, name: str) -> None:
    case = PLAN_CASES[name]
    report = run_lockstep(dev, case, split, initial_params(case, split))
    print("\n" + summary(report))
    assert report.ok, report.failures
    assert report.steps


# Streamed steps (docs/training.md "Memory plan"): a strategy whose masks are known before
# the step runs a batch larger than the 16-sample block in blocks, its sums continuing from
# block to block. Whole blocks (64 = 4 x 16), a partial last block (40 = 16 + 16 + 8), static
# with its chunked bias-only layer 0 inside each block (37), three layers (48), NEq with
# SELECT: the golden model computes each batch at once, and both must agree bit for bit.
STREAM_CASES = {
    "full-64-momentum": Case("full", (), 0.1, 0.9, 64, 1, False),
    "velocity-budget-40": Case("velocity-budget", (), 0.1, 0.0, 40, 2, False),
    "static-37-momentum": Case("static", (), 0.1, 0.9, 37, 1, True),
    "random-budget-48": Case("random-budget", (0.3, 7.0), 0.1, 0.9, 48, 1, False,
                             (64, 32, 16, 10)),
    "neq-64": Case("neq", (0.25, 0.5), 0.1, 0.0, 64, 2, False),
}


@pytest.mark.parametrize("name", STREAM_CASES)
def test_streamed_batches_are_bit_exact(dev: Device, split: Split, name: str) -> None:
    case = STREAM_CASES[name]
    rows = memplan.block_rows(case.strategy, dev.hello().max_batch)
    assert case.batch > rows  # the step really streams
    report = run_lockstep(dev, case, split, initial_params(case, split))
    print("\n" + summary(report))
    assert report.ok, report.failures
    assert report.max_loss_rel == 0.0
    assert report.readback["digest_reads"] > 0
    assert report.readback["blocks_reread"] == 0, report.readback  # parameters bit-exact


def _nak(fn, *args) -> DeviceNak:  # type: ignore[no-untyped-def]
    with pytest.raises(DeviceNak) as exc:
        fn(*args)
    return exc.value


BAD_SPARAMS = [  # (strategy, sparams, index of the bad one)
    ("tinyprop", (-0.1,), 0), ("tinyprop", (0.5, 0.4), 1), ("tinyprop", (0.1, 1.1), 1),
    ("tinyprop", (0.1, 0.9, 0.0), 2), ("tinyprop", (0.1, 0.9, 1.5), 2),
    ("tinypropv2", (0.1, 0.9, 0.5, 0.3, 0.0), 4), ("tinypropv2", (0.1, 0.9, 0.5, 0.3, 1.5), 4),
    ("velocity-budget", (1.5,), 0), ("velocity-budget", (-0.25,), 0),
    ("random-budget", (1.01,), 0), ("random-budget", (0.25, 1.5), 1),
    ("random-budget", (0.25, -1.0), 1), ("random-budget", (0.25, 2.0**24), 1),
    ("static", (1.5,), 0), ("static", (-1.0,), 0), ("static", (2.0, 0.5), 1),
    ("static", (2.0, 1.0, 1.01), 2), ("static", (2.0**24,), 0),
]


def test_sparams_validation(dev: Device) -> None:
    dev.model_init(DIMS)
    for name in ALL_STRATEGIES:
        n = len(strategies.get(name).defaults)
        nak = _nak(dev.train_config, 0.1, 0.0, name, (0.5,) * (n + 1))
        assert (nak.reason, nak.detail) == (NakReason.BAD_ARG, 9), name
        dev.train_config(0.1, 0.0, name, ())  # no sparams: all defaults
    for name, sp, index in BAD_SPARAMS:
        nak = _nak(dev.train_config, 0.1, 0.0, name, sp)
        assert (nak.reason, nak.detail) == (NakReason.BAD_ARG, 12 + 4 * index), (name, sp)
        if (name, sp) != ("static", (2.0**24,)):  # golden accepts it (see report)
            with pytest.raises(ConfigError):
                strategies.get(name).resolve(sp)


def test_select_limits_and_nak_changes_nothing(dev: Device, split: Split) -> None:
    """Velocity SELECT: V above TR_MAX_VAL (native default 128) and V x neurons above the
    velocity capacity are refused; so is a V different from the first SELECT's. A refused
    SELECT changes nothing: the next one still agrees with the golden model."""
    data = split.train.subset(np.arange(256))
    dev.reset()
    dev.data_config(data.n_features, data.dtype, data.scale, data.zero_point, len(data))
    dev.write_samples(0, data.labels, data.q)

    dev.model_init((64, 256, 256, 10))  # 522 neurons: 64 x 522 > 128 x 256 slots
    dev.train_config(0.1, 0.0, "neq")
    nak = _nak(dev.select, 0, 64)
    assert (nak.reason, nak.detail) == (NakReason.NO_SPACE, 4)

    params0 = init_params(DIMS, seed=3)
    golden = GoldenMLP(DIMS, params=params0, lr=0.1, strategy="velocity-budget")
    dev.load_model(params0)
    dev.train_config(0.1, 0.0, "velocity-budget")
    nak = _nak(dev.select, 0, 129)
    assert (nak.reason, nak.detail) == (NakReason.BAD_ARG, 4)
    x = data.decode()
    for t in range(3):
        if t:
            golden.step(x[:32], data.labels[:32])
            dev.train_step(np.arange(32))
            golden.set_params(dev.read_model())
            for count in (32, 65):  # V is fixed by SELECT t = 0
                nak = _nak(dev.select, 100, count)
                assert (nak.reason, nak.detail) == (NakReason.BAD_ARG, 4)
        dsel, gsel = dev.select(100, 64), golden.select(x[100:164])
        assert (list(dsel.k), dsel.trainable_params) == (gsel.k, gsel.trainable_params)
        rows, _ = _read_masks(dev, 2)
        assert all(np.array_equal(r, g) for r, g in zip(rows, gsel.row_masks, strict=True))


def test_select_is_a_no_op_for_other_strategies(dev: Device, split: Split,
                                                pretrained: list[LayerParams]) -> None:
    data = split.train.subset(np.arange(64))
    dev.reset()
    dev.load_model(pretrained)
    dev.data_config(data.n_features, data.dtype, data.scale, data.zero_point, len(data))
    dev.write_samples(0, data.labels, data.q)
    for name in ("full", "tinyprop", "tinypropv2", "static"):
        golden = GoldenMLP(DIMS, params=pretrained, lr=0.1, strategy=name)
        dev.train_config(0.1, 0.0, name)
        res = dev.train_step(np.arange(16))
        golden.step(data.decode()[:16], data.labels[:16])
        before = _read_masks(dev, 2)
        sel, gsel = dev.select(0, 8), golden.select(data.decode()[:8])
        assert (list(sel.k), sel.trainable_params) == (gsel.k, gsel.trainable_params), name
        assert list(sel.k) == list(res.k), name
        after = _read_masks(dev, 2)
        assert all(np.array_equal(a, b) for a, b in zip(before[0] + before[1],
                                                        after[0] + after[1], strict=True))


# ------------------------------------------------------------------------ QEMU by hand
