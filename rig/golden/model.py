"""The golden model: the MLP training of `docs/training.md`, written out by hand.

Not `nn.Module` + autograd: the strategies need the output error δ of every layer between
backward steps, and the sums must run in the firmware's order (see `f32.py`). Parameters
are float32 torch tensors; the arithmetic runs on numpy views of the same memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from rig.golden.f32 import F32, expf, f32, logf, seq_matmul, seq_sum
from rig.golden.macs import PhaseMacs, select_macs, step_macs
from rig.golden.strategies import Strategy, make_strategy
from rig.protocol import EvalResult  # EVAL's answer: one type for device and golden model


class LayerParams(NamedTuple):
    """One dense layer: weight [out][in] and bias [out], numpy float32."""

    weight: np.ndarray
    bias: np.ndarray


@dataclass
class GoldenStep:
    """What TRAIN_STEP (+ MASK_READ, UPDATE_READ) should report for one step."""

    loss: float  # float32 value
    correct: int
    skipped: bool
    k: list[int]
    row_masks: list[np.ndarray]  # bool [N_l]
    bias_masks: list[np.ndarray]
    updates: list[LayerParams]  # applied step u (p_new = p_old − u), 0 where not applied
    macs: PhaseMacs
    scores: list[np.ndarray | None]  # top-k ranking per layer (tinyprop), for near-ties
    stats: dict[int, dict[str, float]] = field(default_factory=dict)  # Y, Ymax, r, bpr, k_raw


@dataclass
class GoldenSelect:
    """What SELECT decided in the golden model (the device's answer is
    `rig.protocol.SelectResult`; this adds the masks, scores and MACs behind it)."""

    k: list[int]
    trainable_params: int
    row_masks: list[np.ndarray]
    bias_masks: list[np.ndarray]
    scores: list[np.ndarray] | None  # |v| (neq) or |v|/params (velocity-budget)
    macs: PhaseMacs


#: float32 overflow and NaN are results here, as in the firmware's C (a diverged run), not
#: errors to warn about: the comparison decides what they mean
_IEEE = np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")


def init_params(dims: Sequence[int], seed: int) -> list[LayerParams]:
    """Deterministic init like `nn.Linear`: W, b ~ U(−1/√in, 1/√in), torch.Generator(seed)."""
    gen = torch.Generator().manual_seed(int(seed))
    layers = []
    for fan_in, fan_out in zip(dims[:-1], dims[1:], strict=True):
        bound = 1.0 / float(np.sqrt(fan_in))
        w = (torch.rand(fan_out, fan_in, generator=gen) * 2.0 - 1.0) * bound
        b = (torch.rand(fan_out, generator=gen) * 2.0 - 1.0) * bound
        layers.append(LayerParams(w.numpy().astype(F32), b.numpy().astype(F32)))
    return layers


def blas_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`seq_matmul`'s product (out[m][p] = Σ_k a[m][k]·b[p][k]) by float32 BLAS: same
    terms, summed in BLAS's order."""
    return np.matmul(np.asarray(a, dtype=F32), np.asarray(b, dtype=F32).T)


class GoldenMLP:
    """Host twin of the firmware's MLP trainer (one instance per device model)."""

    def __init__(self, dims: Sequence[int], seed: int | None = 0,
                 params: Sequence[LayerParams] | None = None, *, lr: float = 0.01,
                 momentum: float = 0.0, strategy: str | int = "full",
                 sparams: Sequence[float] | None = None, exact: bool = True) -> None:
        if len(dims) < 2 or any(int(d) < 1 for d in dims):
            raise ValueError(f"dims must list ≥ 2 positive sizes, got {list(dims)}")
        self.dims = [int(d) for d in dims]
        self.n_layers = len(self.dims) - 1
        #: False: the three matrix products use float32 BLAS (another summation order, not
        #: the firmware's) — for statistics over many seeds, never for device comparison
        self.exact = exact
        self._matmul = seq_matmul if exact else blas_matmul
        self.weights = [torch.zeros(o, i) for i, o in zip(self.dims[:-1], self.dims[1:],
                                                            strict=True)]
        self.biases = [torch.zeros(o) for o in self.dims[1:]]
        if params is None and seed is not None:
            params = init_params(self.dims, seed)
        if params is not None:  # seed=None and no params: zeros, like MODEL_INIT
            self.set_params(params)
        self.configure(lr, momentum, strategy, sparams)

    # ------------------------------------------------------------------ state

    @property
    def n_params(self) -> int:
        return sum(i * o + o for i, o in zip(self.dims[:-1], self.dims[1:], strict=True))

    def configure(self, lr: float, momentum: float = 0.0, strategy: str | int = "full",
                  sparams: Sequence[float] | None = None) -> None:
        """TRAIN_CONFIG: lr/momentum/sparams as float32; resets momentum and strategy state."""
        if lr < 0 or momentum < 0:
            raise ValueError(f"lr and momentum must be ≥ 0, got {lr}, {momentum}")
        self.lr, self.momentum = f32(lr), f32(momentum)
        self.strategy: Strategy = make_strategy(strategy, self.dims, sparams)
        self.spec = self.strategy.spec
        self.sparams = self.strategy.params
        self.v_weights = [torch.zeros_like(w) for w in self.weights]
        self.v_biases = [torch.zeros_like(b) for b in self.biases]
        self.row_masks, self.bias_masks = self.strategy.initial_masks()

    def get_params(self) -> list[LayerParams]:
        return [LayerParams(w.numpy().copy(), b.numpy().copy())
                for w, b in zip(self.weights, self.biases, strict=True)]

    def set_params(self, params: Sequence[LayerParams | tuple[np.ndarray, np.ndarray]]) -> None:
        """Overwrite parameters (e.g. re-sync to the device); optimiser state is kept."""
        if len(params) != self.n_layers:
            raise ValueError(f"expected {self.n_layers} layers of params, got {len(params)}")
        for layer, (w, b) in enumerate(params):
            w = np.asarray(w, dtype=F32).reshape(self.weights[layer].shape)
            b = np.asarray(b, dtype=F32).reshape(self.biases[layer].shape)
            self.weights[layer] = torch.from_numpy(w.copy())
            self.biases[layer] = torch.from_numpy(b.copy())

    def get_momentum(self) -> list[LayerParams]:
        return [LayerParams(w.numpy().copy(), b.numpy().copy())
                for w, b in zip(self.v_weights, self.v_biases, strict=True)]

    def masks(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """What MASK_READ returns: masks of the last step (or of the last SELECT)."""
        return [m.copy() for m in self.row_masks], [m.copy() for m in self.bias_masks]

    # ------------------------------------------------------------------ arithmetic

    def _forward(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Activations a_0..a_{L-1} (inputs of each layer) and pre-activations z_0..z_{L-1}."""
        acts, zs = [x], []
        for layer in range(self.n_layers):
            z = self._matmul(acts[-1], self.weights[layer].numpy()) + self.biases[layer].numpy()
            zs.append(z)
            if layer < self.n_layers - 1:
                acts.append(np.maximum(z, F32(0.0)))
        return acts, zs

    @staticmethod
    def _softmax_ce(logits: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample loss and ∂loss_n/∂z (not yet divided by B)."""
        m = logits.max(axis=1, keepdims=True)
        e = expf(logits - m)
        s = seq_sum(e, axis=1)[:, None]
        rows = np.arange(len(y))
        loss = (m[:, 0] + logf(s[:, 0])) - logits[rows, y]
        grad = e / s
        grad[rows, y] -= F32(1.0)
        return loss.astype(F32), grad.astype(F32)

    @staticmethod
    def _inputs(x: np.ndarray | torch.Tensor, y: np.ndarray | Sequence[int],
                n_features: int) -> tuple[np.ndarray, np.ndarray]:
        x = x.numpy() if isinstance(x, torch.Tensor) else x
        x = np.ascontiguousarray(np.asarray(x, dtype=F32).reshape(-1, n_features))
        y = np.asarray(y, dtype=np.int64).reshape(-1)
        if len(y) != len(x):
            raise ValueError(f"{len(x)} samples but {len(y)} labels")
        return x, y

    # ------------------------------------------------------------------ messages

    @_IEEE
    def evaluate(self, x: np.ndarray | torch.Tensor, y: np.ndarray | Sequence[int]) -> EvalResult:
        """EVAL: loss sum, correct count and predictions; changes nothing."""
        x, y = self._inputs(x, y, self.dims[0])
        if len(x) == 0:
            return EvalResult(0.0, 0, 0, np.zeros(0, dtype=np.uint8))
        _, zs = self._forward(x)
        loss, _ = self._softmax_ce(zs[-1], y)
        pred = zs[-1].argmax(axis=1)  # first maximum
        return EvalResult(float(seq_sum(loss)), int((pred == y).sum()), len(y),
                          pred.astype(np.uint8))

    @_IEEE
    def step(self, x: np.ndarray | torch.Tensor, y: np.ndarray | Sequence[int]) -> GoldenStep:
        """TRAIN_STEP on one batch (decoded float32 features, int labels)."""
        x, y = self._inputs(x, y, self.dims[0])
        batch = len(y)
        if batch == 0:
            raise ValueError("empty batch")
        widths = self.dims[1:]
        acts, zs = self._forward(x)
        loss_n, grad = self._softmax_ce(zs[-1], y)
        loss = float(seq_sum(loss_n) / f32(batch))
        correct = int((zs[-1].argmax(axis=1) == y).sum())
        delta = (grad / f32(batch)).astype(F32)

        strat = self.strategy
        rows = [np.zeros(n, dtype=bool) for n in widths]
        bias = [np.zeros(n, dtype=bool) for n in widths]
        scores: list[np.ndarray | None] = [None] * self.n_layers
        skipped = strat.begin_step(delta)
        floor = None if skipped else strat.backward_floor()
        grads: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        propagated = [0] * self.n_layers
        for layer in range(self.n_layers - 1, -1, -1):
            if floor is None or layer < floor:
                break
            dec = strat.decide(layer, delta)
            rows[layer], bias[layer], scores[layer] = dec.rows, dec.bias, dec.scores
            # gW[j][i] = Σ_n δ[n][j]·a[n][i]; rows outside the mask are never used.
            grads[layer] = (self._matmul(dec.delta_prop.T, acts[layer].T), seq_sum(delta, axis=0))
            if layer > floor:
                back = self._matmul(dec.delta_prop, self.weights[layer].numpy().T)
                delta = np.where(zs[layer - 1] > 0, back, F32(0.0)).astype(F32)
                sparse = strat.sparse_propagation
                propagated[layer] = int(dec.rows.sum()) if sparse else widths[layer]

        updates = [self._apply(layer, rows[layer], bias[layer], grads.get(layer))
                   for layer in range(self.n_layers)]
        self.row_masks, self.bias_masks = rows, bias
        k = [int(r.sum()) for r in rows]
        scored = [lay for lay in strat.stats if "Y" in strat.stats[lay]]
        macs = step_macs(self.dims, batch, k, [int(b.sum()) for b in bias], propagated, scored)
        return GoldenStep(loss, correct, skipped, k, [r.copy() for r in rows],
                          [b.copy() for b in bias], updates, macs, scores, dict(strat.stats))

    def _apply(self, layer: int, rows: np.ndarray, bias: np.ndarray,
               grad: tuple[np.ndarray, np.ndarray] | None) -> LayerParams:
        """SGD on the masked entries only; p and v elsewhere stay untouched."""
        w, b = self.weights[layer].numpy(), self.biases[layer].numpy()
        uw, ub = np.zeros_like(w), np.zeros_like(b)
        if grad is None:
            return LayerParams(uw, ub)
        for p, v, g, u, mask in ((w, self.v_weights[layer].numpy(), grad[0], uw, rows),
                                 (b, self.v_biases[layer].numpy(), grad[1], ub, bias)):
            if self.momentum > 0:
                v[mask] = self.momentum * v[mask] + g[mask]
                u[mask] = self.lr * v[mask]
            else:
                u[mask] = self.lr * g[mask]
            p[mask] = p[mask] - u[mask]
        return LayerParams(uw, ub)

    @_IEEE
    def select(self, x_val: np.ndarray | torch.Tensor) -> GoldenSelect:
        """SELECT over the validation subset: mask strategies recompute their selection."""
        x = x_val.numpy() if isinstance(x_val, torch.Tensor) else x_val
        x = np.ascontiguousarray(np.asarray(x, dtype=F32).reshape(-1, self.dims[0]))
        strat = self.strategy
        macs = PhaseMacs()
        if strat.uses_select:
            outputs: list[np.ndarray] = []
            if strat.needs_outputs:
                acts, zs = self._forward(x)
                outputs = acts[1:] + [zs[-1]]  # post-ReLU hidden outputs, then the logits
            strat.on_select(outputs)
            masks = strat.current_masks()
            assert masks is not None, f"{strat.spec.name}: selects but reports no masks"
            self.row_masks, self.bias_masks = masks
            macs = select_macs(self.dims, len(x), velocity=strat.needs_outputs)
        k = [int(r.sum()) for r in self.row_masks]
        trainable = sum(self.dims[lay] * k[lay] + int(self.bias_masks[lay].sum())
                        for lay in range(self.n_layers))
        scores = getattr(strat, "scores", None)
        return GoldenSelect(k, trainable, [r.copy() for r in self.row_masks],
                            [b.copy() for b in self.bias_masks],
                            [s.copy() for s in scores] if scores is not None else None, macs)
