"""The firmware's own float32 exp and log (firmware/train_kernels/tr_expf_f32.c,
tr_logf_f32.c) against the golden model's numpy copies (rig/golden/f32.py): bit for bit,
special values included, and both within their documented error of a double-precision
exp/log. The C side is the native build of the firmware's sources (the same files the
board images compile; the boards' bit-exactness shows in the lockstep HIL tests)."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rig.golden.f32 import expf, logf


@pytest.fixture(scope="module")
def lib(native_build: Callable[[str], Path]) -> ctypes.CDLL:
    core = ctypes.CDLL(str(native_build("native") / "libtinyrig_core.so"))
    for name in ("tr_expf", "tr_logf"):
        fn = getattr(core, name)
        fn.argtypes = [ctypes.c_float]
        fn.restype = ctypes.c_float
    return core


def _bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32)


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (_bits(a) == _bits(b)) | (np.isnan(a) & np.isnan(b))


def _ulp(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.abs(got.astype(np.float64) - ref) / np.spacing(np.abs(ref).astype(np.float32))


SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 88.72283, 88.72284, 88.7229,
           -87.33655, -87.3366, -103.9720, -103.97208, -104.0, 1e-30, -1e-30, 0.5, -0.5,
           0.34657359, -0.34657359, 1e-45, 1.17549435e-38, 3.4e38]


def test_expf_bit_exact_with_golden_and_within_1_2_ulp(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(-105, 89, 4000), rng.uniform(-30, 0, 4000),  # softmax
                        rng.uniform(-1, 1, 1000), SPECIAL]).astype(np.float32)
    c = np.array([lib.tr_expf(float(v)) for v in x], np.float32)
    g = expf(x)
    assert _same(c, g).all(), x[~_same(c, g)][:5]
    with np.errstate(over="ignore"):
        ref = np.exp(x.astype(np.float64))
    normal = (ref >= 2.0**-126) & (ref <= np.finfo(np.float32).max)
    assert _ulp(g[normal], ref[normal]).max() <= 1.2
    assert np.isposinf(expf(np.float32(89.0))) and expf(np.float32(-104.0)) == 0.0
    assert 0 < expf(np.float32(-100.0)) < 2.0**-126  # subnormal results, not flushed


def test_logf_bit_exact_with_golden_and_within_2_ulp(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.uniform(1, 10, 4000),  # log of softmax sums
                        10.0 ** rng.uniform(-45, 38.5, 4000), rng.uniform(0.9, 1.1, 1000),
                        -rng.uniform(0, 5, 50), SPECIAL]).astype(np.float32)
    c = np.array([lib.tr_logf(float(v)) for v in x], np.float32)
    g = logf(x)
    assert _same(c, g).all(), x[~_same(c, g)][:5]
    pos = (x > 0) & np.isfinite(x)
    assert _ulp(g[pos], np.log(x[pos].astype(np.float64))).max() <= 2.0
    assert logf(np.float32(0.0)) == -np.inf and np.isnan(logf(np.float32(-1.0)))
    assert logf(np.float32(1.0)) == 0.0 and np.isposinf(logf(np.float32(np.inf)))


FIRMWARE = Path(__file__).resolve().parent.parent / "firmware" / "train_kernels"
_HEX = r"(-?0x[0-9a-fA-F.]+p[-+]?\d+)f"


def _c_hex_floats(text: str) -> list[float]:
    """Every C hex-float literal in `text`, in source order."""
    import re

    return [float.fromhex(h) for h in re.findall(_HEX, text)]


def test_constants_are_the_firmware_ones() -> None:
    """The numpy copies hold the C files' hex-float constants, in the same order (defines
    first, then the Horner coefficients), so a constant changed on one side fails here
    before any training run can drift."""
    from rig.golden import f32

    exp_c = _c_hex_floats((FIRMWARE / "tr_expf_f32.c").read_text())
    exp_py = [f32._LOG2E, f32._LN2_HI, f32._LN2_LO, f32._ROUND_MAGIC, f32._EXP_OVERFLOW,
              f32._EXP_UNDERFLOW, *f32._EXP_TAYLOR[:5]]
    # C also writes 0x1p-64f for the subnormal scaling; 0.5f, 1.0f are plain decimals
    assert exp_c[:len(exp_py)] == [float(v) for v in exp_py]
    log_c = _c_hex_floats((FIRMWARE / "tr_logf_f32.c").read_text())
    log_py = [f32._LN2_HI, f32._LN2_LO, *f32._LOG_ODD]
    # 2^25: the subnormal scaling
    assert [v for v in log_c if v != 2.0**25] == [float(v) for v in log_py]
    assert "0x3fb504f3u" in (FIRMWARE / "tr_logf_f32.c").read_text()
    assert f32._SQRT2_BITS == 0x3FB504F3
