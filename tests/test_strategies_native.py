"""Sparse strategies: the native firmware against the golden model, in lockstep.

For every strategy both sides start from the same parameters and train on digits (u8
encoding) for one or more epochs; mask strategies get SELECT on both sides at every epoch
start. Per step: loss, correct, skipped, k, masks (MASK_READ, Jaccard with near-ties reported
as `tie`), applied updates (UPDATE_READ) and parameters are compared with `rig.compare`; then
the golden model is re-synced to the device parameters so rounding cannot accumulate.

`python tests/test_strategies_native.py --qemu ELF [-s tinyprop -s neq]` runs the same
lockstep against the mps2-an386 image in QEMU (see --help).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from rig.compare import (
    FAIL,
    TIE,
    StepObservation,
    Tolerance,
    compare_step,
    mask_agreement,
    max_abs_error,
)
from rig.device import Device, Timing
from rig.errors import DeviceNak
from rig.golden.data import Split, digits_split, epoch_batches
from rig.golden.model import GoldenMLP, LayerParams, init_params
from rig.golden.strategies import get_spec
from rig.link.link import Link
from rig.link.transport import PipeTransport, SerialTransport
from rig.protocol import NakReason

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
DIMS = (64, 32, 10)
N_TRAIN = 192
SELECT_STRATEGIES = {"neq", "velocity-budget", "random-budget"}
ALL_STRATEGIES = ("full", "tinyprop", "tinypropv2", "neq", "velocity-budget", "random-budget",
                  "static")


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


@dataclass
class Summary:
    strategy: str
    steps: int = 0
    skipped: int = 0
    selects: int = 0
    k_seen: set[tuple[int, ...]] = field(default_factory=set)
    selections: set[bytes] = field(default_factory=set)  # distinct row masks after SELECT
    jaccard: list[float] = field(default_factory=list)  # every row/bias mask of every step
    select_jaccard: list[float] = field(default_factory=list)
    max_update_rel: float = 0.0
    max_loss_rel: float = 0.0
    max_param_abs: float = 0.0
    ties: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        j = self.jaccard + self.select_jaccard
        return (f"{self.strategy:16s} steps {self.steps:3d} skipped {self.skipped:2d} "
                f"selects {self.selects} k-sets {len(self.k_seen):2d} | mask J min "
                f"{min(j):.3f} mean {np.mean(j):.4f} | max u err {self.max_update_rel:.2e} "
                f"of max|u| | loss rel {self.max_loss_rel:.1e} | param abs "
                f"{self.max_param_abs:.1e} | ties {len(self.ties)} | fails "
                f"{len(self.failures)}")


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
                 params0: Sequence[LayerParams]) -> Summary:
    train = split.train.subset(np.arange(N_TRAIN))
    val = split.val
    x, y, x_val = train.decode(), train.labels, val.decode()
    n_layers = len(case.dims) - 1
    s = Summary(case.strategy)
    tol = Tolerance()

    golden = GoldenMLP(case.dims, params=params0, lr=case.lr, momentum=case.momentum,
                       strategy=case.strategy, sparams=case.sparams)
    dev.reset()
    dev.load_model(params0)
    dev.train_config(case.lr, case.momentum, case.strategy, case.sparams)
    dev.data_config(train.n_features, train.dtype, train.scale, train.zero_point,
                    len(train) + len(val))
    dev.write_samples(0, train.labels, train.q)
    dev.write_samples(len(train), val.labels, val.q)

    # Masks right after TRAIN_CONFIG (SELECT t = 0 masks / static / zeros) must be exact.
    rows, bias = _read_masks(dev, n_layers)
    g_rows, g_bias = golden.masks()
    for layer in range(n_layers):
        for kind, d, g in (("rows", rows, g_rows), ("bias", bias, g_bias)):
            if not np.array_equal(d[layer], g[layer]):
                s.failures.append(f"initial {kind}[{layer}] differ")

    for epoch in range(case.epochs):
        if case.strategy in SELECT_STRATEGIES:
            _select(dev, golden, len(train), len(val), x_val, case, s, tol)
        for idx in epoch_batches(len(train), case.batch, 0, epoch):
            res = dev.train_step(idx)
            gold = golden.step(x[idx], y[idx])
            obs = StepObservation(res.loss, res.correct, res.skipped, res.k)
            obs.row_masks, obs.bias_masks = _read_masks(dev, n_layers)
            obs.updates = [(dev.read_update(layer, "weight"), dev.read_update(layer, "bias"))
                           for layer in range(n_layers)]
            obs.params = dev.read_model()
            verdict = compare_step(gold, obs, tol, golden.get_params(),
                                   title=f"{case.strategy} epoch {epoch} step {s.steps}")
            s.steps += 1
            s.skipped += int(res.skipped)
            s.k_seen.add(tuple(res.k))
            s.max_loss_rel = max(s.max_loss_rel, abs(res.loss - gold.loss) / abs(gold.loss))
            for layer in range(n_layers):
                for d, g in ((obs.row_masks[layer], gold.row_masks[layer]),
                             (obs.bias_masks[layer], gold.bias_masks[layer])):
                    s.jaccard.append(mask_agreement(d, g).jaccard)
                for (du, gu) in zip(obs.updates[layer], gold.updates[layer], strict=True):
                    scale = float(np.abs(gu).max(initial=0.0))
                    err = max_abs_error(du, gu)
                    s.max_update_rel = max(s.max_update_rel, err / scale if scale else err)
            for (dw, db), (gw, gb) in zip(obs.params, golden.get_params(), strict=True):
                s.max_param_abs = max(s.max_param_abs, max_abs_error(dw, gw),
                                      max_abs_error(db, gb))
            s.ties += [f"{verdict.title}: {c.name} {c.detail}" for c in verdict.ties]
            s.failures += [f"{verdict.title}: {c.name} {c.status} {c.value} {c.limit} "
                           f"{c.detail}" for c in verdict.failed]
            golden.set_params(obs.params)  # lockstep re-sync
    return s


def _select(dev: Device, golden: GoldenMLP, val_start: int, n_val: int, x_val: np.ndarray,
            case: Case, s: Summary, tol: Tolerance) -> None:
    dsel = dev.select(val_start, n_val)
    gsel = golden.select(x_val)
    s.selects += 1
    tag = f"{case.strategy} select {s.selects - 1}"
    if list(dsel.k) != gsel.k or dsel.trainable_params != gsel.trainable_params:
        s.failures.append(f"{tag}: k {list(dsel.k)} / {dsel.trainable_params} vs golden "
                          f"{gsel.k} / {gsel.trainable_params}")
    rows, bias = _read_masks(dev, len(case.dims) - 1)
    s.selections.add(b"".join(np.packbits(r).tobytes() for r in rows))
    # neq's selection threshold is eps itself; velocity-budget's is the last selected key.
    threshold = float(golden.sparams[0]) if case.strategy == "neq" else None
    for layer in range(len(case.dims) - 1):
        scores = gsel.scores[layer] if gsel.scores is not None else None
        for kind, d, g in (("rows", rows, gsel.row_masks), ("bias", bias, gsel.bias_masks)):
            agr = mask_agreement(d[layer], g[layer], scores, tol.tie_rel_eps, threshold)
            s.select_jaccard.append(agr.jaccard)
            if agr.status == TIE:
                s.ties.append(f"{tag}: {kind}[{layer}] near-ties {agr.near_ties}")
            elif agr.status == FAIL:
                s.failures.append(f"{tag}: {kind}[{layer}] differ at {agr.unexplained}")


# ------------------------------------------------------------------------ native fixtures


@pytest.fixture(scope="module")
def native_fw() -> Iterator[Path]:
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.skip("no host C compiler / make")
    build = Path(tempfile.mkdtemp(prefix="tinyrig-strat-"))
    proc = subprocess.run(["make", "-C", str(FIRMWARE), "native", f"BUILD={build}"],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"native build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    yield build / "native" / "tinyrig_fw"
    shutil.rmtree(build, ignore_errors=True)


@pytest.fixture
def dev(native_fw: Path) -> Iterator[Device]:
    proc = subprocess.Popen([str(native_fw)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    transport = PipeTransport(proc, "native:tinyrig_fw")
    yield Device(Link(transport, timeout=5.0, retries=1), Timing(base=5.0))
    transport.close()
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=5)


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
    s = run_lockstep(dev, case, split, initial_params(case, split))
    print("\n" + s.line())
    for t in s.ties:
        print("  tie:", t)
    assert not s.failures, "\n".join(s.failures[:20])
    # The interesting paths actually ran.
    if name == "tinypropv2":
        assert 0 < s.skipped < s.steps
    if name in ("tinyprop", "tinypropv2", "neq"):
        assert len(s.k_seen) > 1, s.k_seen
    if name in SELECT_STRATEGIES:
        assert len(s.selections) > 1  # SELECT changed the selection at least once
    if name == "neq":
        assert any(sum(k) < sum(case.dims[1:]) for k in s.k_seen)  # some neurons froze


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
        n = len(get_spec(name).defaults)
        nak = _nak(dev.train_config, 0.1, 0.0, name, (0.5,) * (n + 1))
        assert (nak.reason, nak.detail) == (NakReason.BAD_ARG, 9), name
        dev.train_config(0.1, 0.0, name, ())  # no sparams: all defaults
    for name, sp, index in BAD_SPARAMS:
        nak = _nak(dev.train_config, 0.1, 0.0, name, sp)
        assert (nak.reason, nak.detail) == (NakReason.BAD_ARG, 12 + 4 * index), (name, sp)
        if (name, sp) != ("static", (2.0**24,)):  # golden accepts it (see report)
            with pytest.raises(ValueError):
                get_spec(name).resolve(sp)


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="lockstep strategy comparison against a target")
    ap.add_argument("--qemu", help="mps2-an386 ELF to run in qemu-system-arm")
    ap.add_argument("--native", help="native tinyrig_fw executable")
    ap.add_argument("-s", "--strategy", action="append", choices=ALL_STRATEGIES)
    a = ap.parse_args(argv)
    split = digits_split(seed=0, n_val=64)
    ok = True
    for name in a.strategy or list(ALL_STRATEGIES):
        proc: subprocess.Popen[bytes]
        if a.qemu:
            port = _free_port()
            proc = subprocess.Popen(
                ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
                 "-kernel", a.qemu, "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on",
                 "-semihosting-config", "enable=on,target=native", "-no-reboot"],
                stdin=subprocess.DEVNULL)
            transport = SerialTransport(f"socket://127.0.0.1:{port}")
        else:
            exe = a.native or os.fspath(FIRMWARE / "build" / "native" / "tinyrig_fw")
            proc = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            transport = PipeTransport(proc, "native")
        try:
            dev = Device(Link(transport, timeout=10.0, retries=2), Timing(base=10.0))
            t0 = time.monotonic()
            case = CASES[name]
            s = run_lockstep(dev, case, split, initial_params(case, split))
            print(f"{dev.info.board}: {s.line()}  [{time.monotonic() - t0:.1f} s]")
            for msg in s.ties + s.failures:
                print("   ", msg)
            ok &= not s.failures
        finally:
            transport.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=5)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
