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


def expf(x: np.ndarray) -> np.ndarray:
    """Correctly rounded float32 exp (via double). newlib/glibc `expf` (Arm optimized-routines,
    ≤ 0.502 ulp) agrees with this nearly always; torch/numpy float32 SIMD exp can be 1 ulp off."""
    return np.exp(np.asarray(x, dtype=np.float64)).astype(F32)


def logf(x: np.ndarray) -> np.ndarray:
    """Correctly rounded float32 log (via double); see `expf`."""
    return np.log(np.asarray(x, dtype=np.float64)).astype(F32)
