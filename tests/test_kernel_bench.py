"""The kernel benchmark (benchmarks/kernel_instructions.py) as a regression guard: the
insn_window TCG plugin counts exactly, and on every benchmark shape our kernels stay at or
below 0.9x CMSIS-NN 99f736a's instructions per MAC (measured the same way) on the
Cortex-M4. The bench image itself checks each kernel's output against a plain-C loop."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [pytest.mark.toolchain,
              pytest.mark.skipif(any(shutil.which(t) is None for t in
                                     ("arm-none-eabi-gcc", "qemu-system-arm", "gcc", "make")),
                                 reason="needs arm-none-eabi-gcc, qemu-system-arm, gcc, make")]

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "kernel_instructions.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kernel_instructions", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, Path, dict]:
    mod = _load()
    build = tmp_path_factory.mktemp("bench")
    return mod, build, mod.measure(build)


def test_beats_cmsis_nn(bench: tuple[ModuleType, Path, dict]) -> None:
    mod, _, res = bench
    rows = {r["shape"]: r for r in mod.table(res)}
    assert set(rows) == set(mod.CMSIS_NN_REFERENCE)  # every shape has its CMSIS-NN figure
    for shape, reference in mod.CMSIS_NN_REFERENCE.items():
        assert rows[shape]["ours_plain_c"] < rows[shape]["plain_c_int8"]
        ours = rows[shape]["ours_dsp"]
        assert ours <= mod.TARGET_RATIO * reference, (
            f"{shape}: {ours:.3f} instructions/MAC > {mod.TARGET_RATIO} x CMSIS-NN {reference}")


def test_counts_are_exact_and_repeatable(bench: tuple[ModuleType, Path, dict]) -> None:
    mod, build, res = bench
    paths = mod.build(build)  # up to date: make does nothing
    again = mod.run(paths["dsp"], paths["plugin"])
    assert [(c.name, c.instructions) for c in again] == \
        [(c.name, c.instructions) for c in res["dsp"]]
    big = next(c for c in res["dsp"] if c.name == "conv_s8/16x16x16-k3-o32")
    assert 1.5 < big.per_mac < 2.5  # DSP convolution on a real-sized layer
