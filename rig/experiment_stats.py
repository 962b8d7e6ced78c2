"""Statistics of `rig experiment`: means with 95 % confidence intervals, paired comparisons
over seeds, and the verdict words the claims are phrased with.

Every comparison is paired by seed (same split, same pre-trained model, same batches), so
the test is on the per-seed differences d_s: mean, a t interval with df = n − 1, the paired
t-test's two-sided p (df = n − 1) and the Wilcoxon signed-rank test's two-sided p (no
normality assumed). scipy comes with scikit-learn, a dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """Mean of n values with its 95 % t interval (df = n − 1); lo = hi = mean for n < 2."""

    n: int
    mean: float
    lo: float
    hi: float
    std: float

    def fmt(self, scale: float = 1.0, digits: int = 2) -> str:
        m, lo, hi = (scale * v for v in (self.mean, self.lo, self.hi))
        return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def interval(values: Sequence[float] | np.ndarray) -> Interval:
    a = np.asarray(values, dtype=np.float64)
    n = len(a)
    mean = float(a.mean()) if n else float("nan")
    if n < 2:
        return Interval(n, mean, mean, mean, 0.0)
    from scipy import stats

    std = float(a.std(ddof=1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * std / np.sqrt(n)
    return Interval(n, mean, mean - half, mean + half, std)


@dataclass(frozen=True)
class Paired:
    """a − b over the seeds both have: interval of the differences and two tests."""

    diff: Interval
    t: float
    df: int
    p_t: float  # paired t-test, two-sided
    p_wilcoxon: float  # Wilcoxon signed-rank, two-sided (1.0 when every difference is 0)
    wins: int  # seeds with a > b
    losses: int  # seeds with a < b


def paired(a: Sequence[float], b: Sequence[float]) -> Paired:
    from scipy import stats

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    iv = interval(d)
    if len(d) < 2 or not np.any(d != 0):
        return Paired(iv, 0.0, max(len(d) - 1, 0), 1.0, 1.0, int((d > 0).sum()),
                      int((d < 0).sum()))
    if iv.std == 0:  # every difference equal and non-zero: no spread to test against
        t, p_t = float("inf") * np.sign(iv.mean), 0.0
    else:
        t = iv.mean / (iv.std / np.sqrt(len(d)))
        p_t = float(2 * stats.t.sf(abs(t), len(d) - 1))
    p_w = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    return Paired(iv, float(t), len(d) - 1, p_t, p_w, int((d > 0).sum()), int((d < 0).sum()))


def holm(p: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given)."""
    order = np.argsort(p)
    m = len(p)
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p[i])))
        out[int(i)] = running
    return out


def versus_threshold(iv: Interval, threshold: float) -> str:
    """Where an interval lies relative to a threshold: 'below', 'above' or 'includes'."""
    if iv.hi < threshold:
        return "below"
    if iv.lo > threshold:
        return "above"
    return "includes"


def sign_verdict(iv: Interval) -> str:
    """Difference a − b: 'a > b', 'a < b' (95 % interval excludes 0) or 'not distinguishable'."""
    side = versus_threshold(iv, 0.0)
    return {"above": "a > b", "below": "a < b"}.get(side, "not distinguishable")
