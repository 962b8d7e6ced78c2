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

import pytest

# The native build and its process wrapper (fixtures `native_fw`, `fw`) are shared.
from test_device_native import FIRMWARE, NativeFw, fw, native_fw  # noqa: F401

from rig.errors import DeviceNak
from rig.protocol import NakReason

DIMS = (64, 32, 10)
SMALL_ARENA = 16000  # floats: 64-32-10 fits at momentum 0 (15,700 at max_batch 64), not with it


def layout_bytes(dims: tuple[int, ...], max_batch: int, momentum: bool) -> int:
    """params | step | act[0..L] | delta[2] | momentum, activations at max_batch rows."""
    n_params = sum(a * b + b for a, b in zip(dims[:-1], dims[1:], strict=False))
    floats = (2 * n_params + max_batch * sum(dims) + 2 * max_batch * max(dims[1:])
              + (n_params if momentum else 0))
    return 4 * floats


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
    plain = layout_bytes(DIMS, hello.max_batch, momentum=False)
    stats = fw.dev.stats()
    assert stats.arena_used == plain
    assert stats.arena_size >= plain
    fw.dev.train_config(0.1, momentum=0.9)
    assert fw.dev.stats().arena_used == layout_bytes(DIMS, hello.max_batch, momentum=True)
    fw.dev.train_config(0.1, momentum=0.0)  # the high-water mark stays
    assert fw.dev.stats().arena_used == layout_bytes(DIMS, hello.max_batch, momentum=True)


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
        big = (64, 64, 64, 10)
        with pytest.raises(DeviceNak) as nak:
            dev_fw.dev.model_init(big)
        assert nak.value.text.startswith(
            f"arena: needs {layout_bytes(big, hello.max_batch, momentum=False)} B")
    finally:
        dev_fw.close()
