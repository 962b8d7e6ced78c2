"""Device vs golden model: metrics, tolerances and verdicts.

Float results are compared with max-ulp and rtol/atol; masks with Jaccard, where mismatches
explained by near-ties in the ranking score are reported as `tie`, never hidden and never
counted as agreement. Everything returns plain data (`Check`, `Verdict`) that prints as a
table; the faces decide what a failed verdict means (exit status 1, a failed test).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rig.protocol import EvalResult

if TYPE_CHECKING:  # annotations only: the golden model imports torch
    from rig.golden.model import GoldenStep, LayerParams

PASS, TIE, FAIL, INFO = "pass", "tie", "fail", "info"


@dataclass(frozen=True)
class Tolerance:
    """Limits for one comparison. Defaults are for lockstep: one step from the same state.

    Measured (digits, 64-32-10, B=32, lr 0.05, golden vs torch.nn.Linear + autograd +
    torch.optim.SGD, which sums in another order and uses another exp/log): per step the loss
    differs by ≤ 1.6e-6 relative, updates by ≤ 2e-5 of max|u|, params by ≤ 1e-7; free-running
    for 840 steps with momentum 0.9: loss ≤ 1.8e-5 relative, params ≤ 1e-6. The defaults
    leave 10–100× headroom for the device's libm and summation; `free_running()` is looser.
    """

    loss_rel: float = 1e-5
    param_atol: float = 1e-5
    param_rtol: float = 1e-4
    update_rel: float = 1e-4  # max|u_dev − u_gold| / max|u_gold| (u scales with lr)
    max_ulp: int | None = None  # optional hard ulp limit on params (None: report only)
    tie_rel_eps: float = 1e-4  # mismatched neurons within this of the selection threshold
    accuracy_abs: float = 0.0  # allowed |acc_dev − acc_gold| for EVAL

    @classmethod
    def free_running(cls) -> Tolerance:
        """No re-sync for a whole run: rounding differences accumulate (and top-k ties
        branch the trajectories), so compare end results loosely."""
        return cls(loss_rel=1e-3, param_atol=1e-4, param_rtol=1e-3, update_rel=1e-2,
                   accuracy_abs=0.02)


# ------------------------------------------------------------------------------ metrics


def _pair(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float]
          ) -> tuple[np.ndarray, np.ndarray]:
    a32 = np.asarray(a, dtype=np.float32)
    b32 = np.asarray(b, dtype=np.float32)
    if a32.shape != b32.shape:
        raise ValueError(f"shape mismatch: {a32.shape} vs {b32.shape}")
    return a32, b32


def _ordered(x: np.ndarray) -> np.ndarray:
    """float32 bits → integers that are monotonic in the float value (±0 both map to 0)."""
    bits = x.view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def ulp_distance(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float]) -> np.ndarray:
    """Elementwise number of float32 values between a and b (adjacent floats: 1, ±0: 0).
    NaN against a number gives 2^32 (worse than any real distance), NaN against NaN 0."""
    a32, b32 = _pair(a, b)
    dist = np.abs(_ordered(a32) - _ordered(b32))
    na, nb = np.isnan(a32), np.isnan(b32)
    return np.where(na & nb, np.int64(0), np.where(na | nb, np.int64(2**32), dist))


def max_ulp(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float]) -> int:
    d = ulp_distance(a, b)
    return int(d.max()) if d.size else 0


def max_abs_error(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float]) -> float:
    a32, b32 = _pair(a, b)
    if a32.size == 0:
        return 0.0
    a64, b64 = a32.astype(np.float64), b32.astype(np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.abs(a64 - b64)
    diff = np.where((a64 == b64) | (np.isnan(a64) & np.isnan(b64)), 0.0, diff)
    return float(diff.max()) if not np.isnan(diff).any() else float("nan")


def rel_error(actual: float, expected: float) -> float:
    """|actual − expected| / |expected| (absolute when expected is 0); 0 for identical
    values, including NaN against NaN (both sides diverged alike)."""
    if float(actual) == float(expected) or (np.isnan(actual) and np.isnan(expected)):
        return 0.0
    diff = abs(float(actual) - float(expected))
    return diff / abs(float(expected)) if expected != 0 else diff


@dataclass(frozen=True)
class CloseReport:
    ok: bool
    n_bad: int
    worst_index: tuple[int, ...] | None  # index of the largest excess over the tolerance
    max_abs: float
    max_ulp: int


def allclose(actual: np.ndarray | Sequence[float], expected: np.ndarray | Sequence[float],
             atol: float, rtol: float) -> CloseReport:
    """|actual − expected| ≤ atol + rtol·|expected| elementwise (expected = golden). Equal
    values pass (also ±inf, and NaN where both sides are NaN); any other NaN fails."""
    a32, b32 = _pair(actual, expected)
    a64, b64 = a32.astype(np.float64), b32.astype(np.float64)
    with np.errstate(invalid="ignore"):
        excess = np.abs(a64 - b64) - (atol + rtol * np.abs(b64))
    same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
    bad = ~(same | (excess <= 0))  # NaN against a number counts as bad
    excess = np.where(same, -np.inf, excess)
    worst = None
    if bad.any():
        worst = tuple(int(i) for i in np.unravel_index(np.nanargmax(np.where(
            np.isnan(excess), np.inf, excess)), excess.shape))
    return CloseReport(not bad.any(), int(bad.sum()), worst, max_abs_error(a32, b32),
                       max_ulp(a32, b32))


def jaccard(a: np.ndarray | Sequence[bool], b: np.ndarray | Sequence[bool]) -> float:
    """|a ∩ b| / |a ∪ b|; two empty masks agree (1.0)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


@dataclass(frozen=True)
class MaskAgreement:
    jaccard: float
    mismatched: list[int]  # indices where device and golden differ
    near_ties: list[int]  # mismatches within rel eps of the threshold, not exactly tied
    threshold: float | None  # golden's selection threshold (the k-th largest score)
    #: mismatches at an exact tie, which the documented rule decides (lower index first
    #: for top-k; `score ≤ threshold` is frozen for neq): always a failure
    exact_ties: list[int] = field(default_factory=list)

    @property
    def unexplained(self) -> list[int]:
        return [i for i in self.mismatched if i not in set(self.near_ties)]

    @property
    def status(self) -> str:
        if not self.mismatched:
            return PASS
        return TIE if not self.unexplained else FAIL


def mask_agreement(device: np.ndarray | Sequence[bool], golden: np.ndarray | Sequence[bool],
                   scores: np.ndarray | None = None, rel_eps: float = 1e-4,
                   threshold: float | None = None) -> MaskAgreement:
    """Jaccard of two masks. With the golden ranking `scores`, a mismatched neuron is a
    near-tie if |score − threshold| ≤ rel_eps·|threshold|, threshold defaulting to the smallest
    score the golden model selected (for top-k: the k-th largest).

    Exact ties are not near-ties: the documented rule decides them, so a device that picks
    the other side of one fails. Exact means: a neuron the device took instead of one the
    golden model took (or the other way round) with bit-identical golden scores; with an
    explicit `threshold` (neq's ε, a one-sided rule), a score equal to it."""
    dev, gold = np.asarray(device, dtype=bool), np.asarray(golden, dtype=bool)
    if dev.shape != gold.shape:
        raise ValueError(f"mask shape mismatch: {dev.shape} vs {gold.shape}")
    mismatched = [int(i) for i in np.flatnonzero(dev != gold)]
    ties: list[int] = []
    exact: list[int] = []
    if scores is not None and mismatched:
        s = np.asarray(scores, dtype=np.float64)
        if threshold is not None:
            exact = [i for i in mismatched if s[i] == threshold]
        else:
            only_dev = {float(s[i]) for i in mismatched if dev[i]}
            only_gold = {float(s[i]) for i in mismatched if gold[i]}
            exact = [i for i in mismatched
                     if float(s[i]) in (only_gold if dev[i] else only_dev)]
            if gold.any():
                threshold = float(s[gold].min())
        if threshold is not None:
            near = np.abs(s - threshold) <= rel_eps * abs(threshold)
            ties = [i for i in mismatched if near[i] and i not in exact]
    return MaskAgreement(jaccard(dev, gold), mismatched, ties, threshold, exact)


# ------------------------------------------------------------------------------ verdicts


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # pass / tie / fail / info
    value: str
    limit: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status != FAIL


@dataclass
class Verdict:
    """A list of checks; fails if any check fails. `str()` is a fixed-width table."""

    title: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def ties(self) -> list[Check]:
        return [c for c in self.checks if c.status == TIE]

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        return [(c.name, c.status, c.value, c.limit, c.detail) for c in self.checks]

    def __str__(self) -> str:
        head = ("check", "status", "value", "limit", "detail")
        rows = [head, *self.rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [f"{self.title}: {'PASS' if self.ok else 'FAIL'}"]
        for r in rows:
            lines.append("  " + "  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
        return "\n".join(line.rstrip() for line in lines)


def check_close(name: str, actual: np.ndarray | Sequence[float],
                expected: np.ndarray | Sequence[float], atol: float, rtol: float,
                max_ulp_limit: int | None = None) -> Check:
    rep = allclose(actual, expected, atol, rtol)
    ok = rep.ok and (max_ulp_limit is None or rep.max_ulp <= max_ulp_limit)
    limit = f"atol {atol:g} rtol {rtol:g}" + (f" ≤{max_ulp_limit} ulp" if max_ulp_limit else "")
    detail = f"{rep.max_ulp} ulp" + (f", {rep.n_bad} bad, worst at {rep.worst_index}"
                                     if rep.n_bad else "")
    return Check(name, PASS if ok else FAIL, f"{rep.max_abs:.3g}", limit, detail)


def check_update(name: str, actual: np.ndarray, expected: np.ndarray, rel: float) -> Check:
    """Update steps u scale with lr: compare the max error relative to max|u_golden|."""
    scale = float(np.abs(np.asarray(expected, dtype=np.float64)).max(initial=0.0))
    err = max_abs_error(actual, expected)
    value = err / scale if scale > 0 else err
    ok = value <= rel if scale > 0 else err == 0.0
    return Check(name, PASS if ok else FAIL, f"{value:.3g}", f"≤ {rel:g} of max|u|",
                 f"max abs {err:.3g}, {max_ulp(actual, expected)} ulp")


def check_loss(name: str, actual: float, expected: float, rel: float) -> Check:
    err = rel_error(actual, expected)
    ok = err <= rel
    return Check(name, PASS if ok else FAIL, f"{err:.3g}", f"rel ≤ {rel:g}",
                 f"device {actual:.9g} golden {expected:.9g}")


def check_equal(name: str, actual: object, expected: object) -> Check:
    ok = actual == expected
    return Check(name, PASS if ok else FAIL, str(actual), f"= {expected}")


def check_bitexact(name: str, actual: np.ndarray, expected: np.ndarray) -> Check:
    """Integer tensors (the int8 backbone's features): every element equal."""
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape:
        return Check(name, FAIL, f"shape {a.shape}", f"= {e.shape}")
    bad = np.argwhere(a != e)
    detail = "" if not len(bad) else (
        f"first at {bad[0].tolist()}: device {a[tuple(bad[0])]} golden {e[tuple(bad[0])]}")
    return Check(name, PASS if not len(bad) else FAIL, f"{len(bad)} of {a.size} differ",
                 "= 0 (bit-exact)", detail)


def check_k(layer: int, actual: int, golden: GoldenStep, rel_eps: float) -> Check:
    """k must match; a difference of 1 where golden's N·bpr sits within rel eps of an integer
    is a floor near-tie (TinyProp's k depends on Y/Ymax, which can differ in the last ulp)."""
    expected = golden.k[layer]
    name = f"k[{layer}]"
    if actual == expected:
        return Check(name, PASS, str(actual), f"= {expected}")
    k_raw = golden.stats.get(layer, {}).get("k_raw")
    if k_raw is not None and abs(actual - expected) == 1:
        near = abs(k_raw - round(k_raw)) <= rel_eps * max(abs(k_raw), 1.0)
        if near:
            return Check(name, TIE, str(actual), f"= {expected}", f"N·bpr = {k_raw:.9g}")
    return Check(name, FAIL, str(actual), f"= {expected}")


def check_mask(name: str, device: np.ndarray, golden: np.ndarray, scores: np.ndarray | None,
               rel_eps: float, threshold: float | None = None) -> Check:
    agr = mask_agreement(device, golden, scores, rel_eps, threshold)
    detail = ""
    if agr.mismatched:
        detail = f"differ at {agr.mismatched}"
        if agr.exact_ties:
            detail += (f"; exact ties {agr.exact_ties} decided against the documented rule "
                       "(ties: lower index first)")
        if agr.near_ties:
            detail += f"; near-ties {agr.near_ties} (threshold {agr.threshold:.9g})"
    return Check(name, agr.status, f"J={agr.jaccard:.3f}", "J = 1", detail)


# ------------------------------------------------------------------------------ step / eval


@dataclass
class StepObservation:
    """What the device reported for one step; optional parts only if they were read."""

    loss: float
    correct: int
    skipped: bool
    k: Sequence[int]
    row_masks: Sequence[np.ndarray] | None = None
    bias_masks: Sequence[np.ndarray] | None = None
    updates: Sequence[LayerParams | tuple[np.ndarray, np.ndarray]] | None = None
    params: Sequence[LayerParams | tuple[np.ndarray, np.ndarray]] | None = None


def compare_step(golden: GoldenStep, device: StepObservation, tol: Tolerance | None = None,
                 golden_params: Sequence[LayerParams] | None = None,
                 title: str = "step") -> Verdict:
    """All checks for one TRAIN_STEP. `golden_params` (after the step) is needed to check
    `device.params`."""
    tol = tol or Tolerance()
    v = Verdict(title)
    v.add(check_loss("loss", device.loss, golden.loss, tol.loss_rel))
    v.add(check_equal("correct", device.correct, golden.correct))
    v.add(check_equal("skipped", bool(device.skipped), golden.skipped))
    for layer, k in enumerate(device.k):
        v.add(check_k(layer, int(k), golden, tol.tie_rel_eps))
    for kind, masks, gold in (("rows", device.row_masks, golden.row_masks),
                              ("bias", device.bias_masks, golden.bias_masks)):
        for layer, mask in enumerate(masks or []):
            scores = golden.scores[layer] if kind == "rows" else None
            v.add(check_mask(f"{kind}[{layer}]", mask, gold[layer], scores, tol.tie_rel_eps))
    for layer, (uw, ub) in enumerate(device.updates or []):
        gw, gb = golden.updates[layer]
        v.add(check_update(f"u.W[{layer}]", uw, gw, tol.update_rel))
        v.add(check_update(f"u.b[{layer}]", ub, gb, tol.update_rel))
    if device.params is not None:
        if golden_params is None:
            raise ValueError("device params given but no golden_params to compare with")
        for layer, ((dw, db), (gw, gb)) in enumerate(zip(device.params, golden_params,
                                                         strict=True)):
            v.add(check_close(f"W[{layer}]", dw, gw, tol.param_atol, tol.param_rtol, tol.max_ulp))
            v.add(check_close(f"b[{layer}]", db, gb, tol.param_atol, tol.param_rtol, tol.max_ulp))
    return v


def compare_params(device: Sequence[LayerParams | tuple[np.ndarray, np.ndarray]],
                   golden: Sequence[LayerParams], tol: Tolerance | None = None,
                   title: str = "params") -> Verdict:
    tol = tol or Tolerance()
    v = Verdict(title)
    for layer, ((dw, db), (gw, gb)) in enumerate(zip(device, golden, strict=True)):
        v.add(check_close(f"W[{layer}]", dw, gw, tol.param_atol, tol.param_rtol, tol.max_ulp))
        v.add(check_close(f"b[{layer}]", db, gb, tol.param_atol, tol.param_rtol, tol.max_ulp))
    return v


def compare_eval(golden: EvalResult, loss_sum: float, correct: int,
                 pred: np.ndarray | Sequence[int] | None = None,
                 tol: Tolerance | None = None, title: str = "eval") -> Verdict:
    """EVAL: loss sum (relative), accuracy within `accuracy_abs`, prediction agreement."""
    tol = tol or Tolerance()
    v = Verdict(title)
    v.add(check_loss("loss_sum", loss_sum, golden.loss_sum, tol.loss_rel))
    acc_dev = correct / golden.count if golden.count else 0.0
    diff = abs(acc_dev - golden.accuracy)
    v.add(Check("accuracy", PASS if diff <= tol.accuracy_abs else FAIL, f"{acc_dev:.4f}",
                f"{golden.accuracy:.4f} ± {tol.accuracy_abs:g}"))
    if pred is not None:
        p = np.asarray(pred, dtype=np.int64)
        differ = np.flatnonzero(p != golden.pred.astype(np.int64))
        status = PASS if len(differ) == 0 else (INFO if tol.accuracy_abs > 0 else FAIL)
        v.add(Check("pred", status, f"{len(differ)} differ", "0",
                    f"at {differ[:10].tolist()}" if len(differ) else ""))
    return v
