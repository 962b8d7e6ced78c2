"""Float32 arithmetic in the order `docs/training.md` prescribes.

BLAS (and `torch.matmul`, `np.sum`) reorder sums (blocking, pairwise, SIMD lanes), and
`torch.cumsum` accumulates float32 in double on the CPU. The firmware sums strictly left to
right in float32, so these helpers do too: products are formed elementwise (one IEEE
rounding each, never fused) and reduced with `np.add.accumulate`, which is sequential.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


def f32(value: float) -> np.float32:
    """A Python/numpy number rounded to float32 (what travels as f32 on the wire)."""
    return np.float32(value)


def seq_sum(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Σ along `axis` in index order, starting at +0.0f."""
    x = np.asarray(x, dtype=F32)
    if x.shape[axis] == 0:
        return np.zeros(np.delete(x.shape, axis), dtype=F32)
    acc = np.add.accumulate(x, axis=axis, dtype=F32)
    # `+ 0.0f` because the C loop starts from +0.0f: it only turns a -0.0 result into +0.0.
    return np.take(acc, -1, axis=axis) + F32(0.0)


def seq_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """out[m][p] = Σ_k a[m][k]·b[p][k], summed in order k = 0, 1, … (note: b is [P][K])."""
    a = np.asarray(a, dtype=F32)
    b = np.asarray(b, dtype=F32)
    products = a[:, None, :] * b[None, :, :]
    return seq_sum(products, axis=2)


# Constants of firmware/train_kernels/tr_expf_f32.c and tr_logf_f32.c (C hex floats).
_LOG2E = F32(float.fromhex("0x1.715476p+0"))
_LN2_HI = F32(float.fromhex("0x1.62ep-1"))  # 12 trailing zero bits: k * _LN2_HI is exact
_LN2_LO = F32(float.fromhex("0x1.0bfbe8p-15"))
_ROUND_MAGIC = F32(float.fromhex("0x1.8p+23"))
_EXP_OVERFLOW = F32(float.fromhex("0x1.62e42ep+6"))
_EXP_UNDERFLOW = F32(float.fromhex("-0x1.9fe368p+6"))
_EXP_TAYLOR = tuple(F32(float.fromhex(h)) for h in (  # 1/7! … 1/2!, then 1, 1
    "0x1.a01a02p-13", "0x1.6c16c2p-10", "0x1.111112p-7", "0x1.555556p-5", "0x1.555556p-3",
    "0x1p-1", "0x1p+0", "0x1p+0"))
_LOG_ODD = tuple(F32(float.fromhex(h)) for h in (  # 1/11, 1/9, 1/7, 1/5, 1/3
    "0x1.745d18p-4", "0x1.c71c72p-4", "0x1.24924ap-3", "0x1.99999ap-3", "0x1.555556p-2"))
_SQRT2_BITS = 0x3FB504F3


def _pow2i(e: np.ndarray) -> np.ndarray:
    """2^e as float32 for integer e in [-126, 127] (built from the exponent bits)."""
    return ((e.astype(np.int64) + 127) << 23).astype(np.uint32).view(F32)


def expf(x: np.ndarray) -> np.ndarray:
    """exp in float32, operation for operation as the firmware's `tr_expf` (so softmax and
    loss agree bit for bit): x = k·ln2 + r, exp(r) by its Taylor polynomial to r⁷/7! in
    Horner order, times 2^k. Each step is one float32 operation, rounded to nearest."""
    x = np.asarray(x, dtype=F32)
    with np.errstate(all="ignore"):
        kf = (x * _LOG2E + _ROUND_MAGIC) - _ROUND_MAGIC
        k = np.nan_to_num(kf, nan=0.0, posinf=0.0, neginf=0.0).astype(np.int64)
        k = np.clip(k, -151, 129)
        r = (x - kf * _LN2_HI) - kf * _LN2_LO
        p = np.full_like(x, _EXP_TAYLOR[0])
        for c in _EXP_TAYLOR[1:]:
            p = p * r + c
        normal = p * _pow2i(np.clip(k, -126, 127))
        high = (p * _pow2i(np.clip(k - 1, -126, 127))) * F32(2.0)
        low = (p * _pow2i(np.clip(k + 64, -126, 127))) * F32(float.fromhex("0x1p-64"))
        out = np.where(k > 127, high, np.where(k < -126, low, normal))
        out = np.where(x > _EXP_OVERFLOW, F32(np.inf), out)
        out = np.where(x < _EXP_UNDERFLOW, F32(0.0), out)
        out = np.where(np.isnan(x), x, out)
    return out.astype(F32)


def logf(x: np.ndarray) -> np.ndarray:
    """log in float32, operation for operation as the firmware's `tr_logf`: x = 2^e·m with
    m in [√2/2, √2), log m = 2 atanh(s), s = (m−1)/(m+1), by its odd series to s¹¹/11."""
    x = np.asarray(x, dtype=F32)
    with np.errstate(all="ignore"):
        sub = (x > 0) & (x < F32(float.fromhex("0x1p-126")))
        xs = np.where(sub, x * F32(float.fromhex("0x1p25")), x)
        u = xs.view(np.uint32).astype(np.int64)
        e = np.where(sub, -25, 0) + (u >> 23) - 127
        u = (u & 0x007FFFFF) | 0x3F800000
        big = u > _SQRT2_BITS
        u = np.where(big, u - 0x00800000, u)
        e = np.where(big, e + 1, e)
        m = u.astype(np.uint32).view(F32)
        f = m - F32(1.0)
        s = f / (F32(2.0) + f)
        z = s * s
        p = np.full_like(x, _LOG_ODD[0])
        for c in _LOG_ODD[1:]:
            p = p * z + c
        s2 = s + s
        lm = s2 + s2 * (z * p)
        ef = e.astype(F32)
        out = ef * _LN2_HI + (lm + ef * _LN2_LO)
        out = np.where(x == 0, F32(-np.inf), out)
        out = np.where(x < 0, F32(np.nan), out)
        out = np.where(np.isposinf(x), x, out)
        out = np.where(np.isnan(x), x, out)
    return out.astype(F32)
