"""The training arena's memory plan on the native firmware (docs/training.md "Memory plan"):
STATS reports the layout the firmware chose, which must equal the documented layout computed
here from the model; a model or configuration that does not fit is refused with NO_SPACE
saying how many bytes it needs, and the refusal changes nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

# The native build and its process wrapper (fixtures `native_fw`, `fw`) are shared.
from test_device_native import FIRMWARE, NativeFw, fw, native_fw  # noqa: F401

from rig import memplan, strategies
from rig.errors import DeviceNak
from rig.protocol import NakReason

DIMS = (64, 32, 10)
# floats: 64-32-10 `full` fits at momentum 0 (7,028 at max_batch 64), not with it (9,438)
SMALL_ARENA = 8000


def layout_bytes(dims: tuple[int, ...], max_batch: int, momentum: bool,
                 strategy: str | None = "full", sparams: tuple[float, ...] = ()) -> int:
    """The documented layout (rig.memplan, computed without the firmware)."""
    return memplan.plan(dims, strategy, sparams, 0.9 if momentum else 0.0,
                        max_batch=max_batch).bytes


@pytest.fixture(scope="module")
def small_arena_fw() -> Iterator[Path]:
    """The native firmware built with a small arena (TR_ARENA_FLOATS), as a small board."""
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.skip("no host C compiler / make")
    build = Path(tempfile.mkdtemp(prefix="tinyrig-arena-"))
    proc = subprocess.run(["make", "-C", str(FIRMWARE), "native", f"BUILD={build}",
                           f"DEFS=-DTR_ARENA_FLOATS={SMALL_ARENA}u"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    yield build / "native" / "tinyrig_fw"
    shutil.rmtree(build, ignore_errors=True)


def test_stats_report_the_documented_layout(fw: NativeFw) -> None:  # noqa: F811
    hello = fw.dev.hello()
    assert fw.dev.stats().arena_used == 0  # no model yet
    fw.dev.model_init(DIMS)
    forward_only = layout_bytes(DIMS, hello.max_batch, False, strategy=None)
    stats = fw.dev.stats()
    assert stats.arena_used == forward_only
    assert stats.arena_size >= forward_only
    fw.dev.train_config(0.1, momentum=0.9)
    assert fw.dev.stats().arena_used == layout_bytes(DIMS, hello.max_batch, momentum=True)
    fw.dev.train_config(0.1, momentum=0.0)  # the high-water mark stays
    assert fw.dev.stats().arena_used == layout_bytes(DIMS, hello.max_batch, momentum=True)


@pytest.mark.parametrize("dims", [DIMS, (64, 32, 16, 10), (64, 10)])
@pytest.mark.parametrize("momentum", [False, True])
def test_every_strategy_lays_out_its_own_plan(fw: NativeFw, dims: tuple[int, ...],  # noqa: F811
                                               momentum: bool) -> None:
    """Per strategy at its defaults (and static / budgets at other settings): the firmware's
    layout is the plan rig.memplan computes from the documented rules."""
    hello = fw.dev.hello()
    cases = [(name, ()) for name in strategies.NAMES] + [
        ("static", (1.0, 2.0, 0.3)), ("static", (3.0, 0.0, 0.5)), ("velocity-budget", (0.01,)),
        ("random-budget", (0.05, 3.0))]
    for name, sp in cases:
        fw.dev.reset()
        fw.dev.model_init(dims)
        fw.dev.train_config(0.1, 0.9 if momentum else 0.0, name, sp)
        want = max(layout_bytes(dims, hello.max_batch, False, strategy=None),
                   layout_bytes(dims, hello.max_batch, momentum, name, sp))
        assert fw.dev.stats().arena_used == want, (name, sp)


def test_sparse_plans_are_smaller_than_full() -> None:
    """The reference head at max_batch 64: strategies with masks known before the step keep
    a streamed block of 16 samples, the TinyProp family the whole batch; static at its
    defaults keeps neither layer 0's inputs nor its error beyond a chunk of 4; the budgets
    keep a quarter of the gradients."""
    full = memplan.plan(DIMS, "full", max_batch=64)
    static = memplan.plan(DIMS, "static", max_batch=64)
    budget = memplan.plan(DIMS, "velocity-budget", max_batch=64)
    tinyprop = memplan.plan(DIMS, "tinyprop", max_batch=64)
    assert full.act == 16 * (64 + 32 + 10) and full.delta == 16 * 32
    assert tinyprop.act == 64 * (64 + 32 + 10) and tinyprop.delta == 64 * 32
    assert static.step == 5 * 32 + 10 + 32 and static.delta == 0 and static.chunk == 4 * 32
    assert static.act == 4 * 64 + 16 * (32 + 10)
    assert budget.step == int(0.25 * full.params) and budget.act == full.act
    assert static.training_bytes < 0.35 * full.training_bytes
    assert memplan.plan(DIMS, "full", max_batch=2).act == 2 * (64 + 32 + 10)


def test_what_does_not_fit_is_refused_with_the_bytes_it_needs(small_arena_fw: Path,
                                                              tmp_path: Path) -> None:
    dev_fw = NativeFw(small_arena_fw, tmp_path)
    try:
        hello = dev_fw.dev.hello()
        assert dev_fw.dev.stats().arena_size == 4 * SMALL_ARENA
        dev_fw.dev.model_init(DIMS)
        dev_fw.dev.train_config(0.1, momentum=0.0)
        need = layout_bytes(DIMS, hello.max_batch, momentum=True)
        assert need > 4 * SMALL_ARENA
        with pytest.raises(DeviceNak) as nak:
            dev_fw.dev.train_config(0.1, momentum=0.9)
        assert nak.value.reason == NakReason.NO_SPACE
        assert nak.value.text == f"arena: needs {need} B, has {4 * SMALL_ARENA} B"
        plain = layout_bytes(DIMS, hello.max_batch, momentum=False)
        assert dev_fw.dev.stats().arena_used == plain  # the refusal changed nothing
        big = (64, 256, 256, 10)
        with pytest.raises(DeviceNak) as nak:
            dev_fw.dev.model_init(big)
        assert nak.value.text.startswith(
            f"arena: needs {layout_bytes(big, hello.max_batch, momentum=False)} B")
    finally:
        dev_fw.close()


@pytest.mark.parametrize("name", ["neq", "velocity-budget"])
def test_velocity_history_is_reserved_at_the_first_select(fw: NativeFw,  # noqa: F811
                                                          name: str) -> None:
    """V is known only at SELECT t = 0: then y^{t-1} (V floats per neuron) joins the plan."""
    from rig.golden.data import digits_split

    data = digits_split(seed=0, n_val=64).train.subset(np.arange(64))
    hello = fw.dev.hello()
    fw.dev.data_config(data.n_features, data.dtype, data.scale, data.zero_point, len(data))
    fw.dev.write_samples(0, data.labels, data.q)
    fw.dev.model_init(DIMS)
    fw.dev.train_config(0.1, 0.0, name)
    before = memplan.plan(DIMS, name, max_batch=hello.max_batch)
    assert fw.dev.stats().arena_used == before.bytes and before.history == 0
    fw.dev.select(0, 48)
    after = memplan.plan(DIMS, name, max_batch=hello.max_batch, val_samples=48)
    assert after.history == 48 * 42
    assert fw.dev.stats().arena_used == after.bytes


def test_train_config_batch_sizes_the_plan_and_caps_the_step(fw: NativeFw) -> None:  # noqa: F811
    """TRAIN_CONFIG's batch sizes the plan (TinyProp keeps that many rows, not max_batch);
    a TRAIN_STEP above it, or a batch above max_batch, is refused and changes nothing."""
    from rig.golden.data import digits_split

    data = digits_split(seed=0, n_val=64).train.subset(np.arange(64))
    hello = fw.dev.hello()
    fw.dev.data_config(data.n_features, data.dtype, data.scale, data.zero_point, len(data))
    fw.dev.write_samples(0, data.labels, data.q)
    fw.dev.model_init(DIMS)
    fw.dev.train_config(0.1, 0.0, "tinyprop", batch=8)
    plan8 = memplan.plan(DIMS, "tinyprop", max_batch=hello.max_batch, batch=8)
    assert plan8.act == 8 * (64 + 32 + 10)
    assert plan8.bytes < memplan.plan(DIMS, "tinyprop", max_batch=hello.max_batch).bytes
    assert fw.dev.stats().arena_used == plan8.bytes
    fw.dev.train_step(range(8))
    before = fw.dev.read_model()
    with pytest.raises(DeviceNak) as nak:
        fw.dev.train_step(range(9))
    assert (nak.value.reason, nak.value.text) == (NakReason.BAD_ARG,
                                                   "batch > TRAIN_CONFIG batch")
    with pytest.raises(DeviceNak) as nak:
        fw.dev.train_config(0.1, 0.0, "full", batch=hello.max_batch + 1)
    assert (nak.value.reason, nak.value.detail) == (NakReason.BAD_ARG, 10)
    after = fw.dev.read_model()
    assert all(np.array_equal(a, b) for pa, pb in zip(before, after, strict=True)
               for a, b in zip(pa, pb, strict=True))
    fw.dev.train_step(range(8, 16))  # still configured: tinyprop, batch 8
    assert fw.dev.stats().arena_used == plan8.bytes
