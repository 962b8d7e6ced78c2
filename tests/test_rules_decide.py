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
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from rig.device import Device, Timing
from rig.golden.data import Split, digits_split
from rig.golden.model import init_params
from rig.golden.strategies import make_strategy
from rig.link.link import Link
from rig.link.transport import PipeTransport
from rig.session import Inspect, RunReport, RunSpec, TrainingSession

LOCKSTEP = Inspect(masks=True, updates=True, params_every=1, resync=True)


@pytest.fixture(scope="module")
def native_fw(native_build: Callable[[str], Path]) -> Path:
    return native_build("native") / "tinyrig_fw"


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
