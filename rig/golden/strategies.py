"""Sparse-update strategies, mirroring `firmware/src/strategy_*.c` (`docs/training.md`).

A strategy decides per layer a row mask (weights of output neuron j are updated) and a bias
mask. Two families:

* error-driven (`tinyprop`, `tinypropv2`): decide during the backward pass from the layer's
  output error δ, and zero the unkept δ before it is propagated;
* mask-driven (`full`, `static`, `neq`, `velocity-budget`, `random-budget`): masks are fixed
  between SELECT messages; δ propagates in full through frozen neurons.

Control scalars are numpy float32 scalars, computed in the documented order, so that they
round exactly like the C firmware's `float` code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rig.golden.f32 import F32, f32, seq_sum
from rig.strategies import STRATEGIES, StrategyId, StrategySpec, resolve

Masks = list[np.ndarray]


@dataclass
class LayerDecision:
    """What a strategy decided for layer l during one step."""

    rows: np.ndarray  # bool [N_l]
    bias: np.ndarray  # bool [N_l]
    delta_prop: np.ndarray  # δ_l used for the weight gradient and for propagation into l-1
    scores: np.ndarray | None = None  # ranking scores, for near-tie reports (top-k only)


class Strategy:
    """Base: state of one strategy for one model shape. TRAIN_CONFIG = a new instance."""

    # True: unkept δ is zeroed before propagation (k'_l = k_l in the MAC count), else N_l.
    sparse_propagation: ClassVar[bool] = False
    #: the catalogue entry (name, id, whether SELECT recomputes masks, velocity-based), set
    #: by `make_strategy` through `CLASSES`
    spec: ClassVar[StrategySpec]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def uses_select(self) -> bool:
        """SELECT recomputes the masks (False: SELECT changes nothing)."""
        return self.spec.uses_select

    @property
    def needs_outputs(self) -> bool:
        """SELECT needs the per-neuron outputs over the validation subset (a forward pass)."""
        return self.spec.velocity

    def __init__(self, dims: Sequence[int], params: np.ndarray) -> None:
        self.dims = [int(d) for d in dims]
        self.n_layers = len(self.dims) - 1
        self.params = params
        self.select_count = 0  # t: SELECTs since TRAIN_CONFIG
        self.stats: dict[int, dict[str, float]] = {}  # per-layer control scalars of the last step

    def widths(self) -> list[int]:
        return self.dims[1:]

    def initial_masks(self) -> tuple[Masks, Masks]:
        """Masks MASK_READ reports after TRAIN_CONFIG, before any step or SELECT."""
        zeros = [np.zeros(n, dtype=bool) for n in self.widths()]
        return zeros, [z.copy() for z in zeros]

    def begin_step(self, delta_out: np.ndarray) -> bool:
        """Called after the forward pass with the output error; True skips the step."""
        self.stats = {}
        return False

    def backward_floor(self) -> int | None:
        """Lowest layer whose δ is needed (None: no backward pass at all)."""
        raise NotImplementedError

    def decide(self, layer: int, delta: np.ndarray) -> LayerDecision:
        raise NotImplementedError

    def on_select(self, outputs: list[np.ndarray]) -> None:
        """SELECT: `outputs[l]` is [V][N_l] (post-ReLU hidden, logits last)."""
        self.select_count += 1

    def current_masks(self) -> tuple[Masks, Masks] | None:
        """Masks after SELECT for mask-driven strategies; None if SELECT changes nothing."""
        return None


# --------------------------------------------------------------------------- mask-driven


class MaskStrategy(Strategy):
    """Masks fixed between SELECTs; gradient rows/biases outside them are simply not applied."""


    def __init__(self, dims: Sequence[int], params: np.ndarray) -> None:
        super().__init__(dims, params)
        self.rows, self.bias = self.initial_masks()

    def backward_floor(self) -> int | None:
        for layer in range(self.n_layers):
            if self.rows[layer].any() or self.bias[layer].any():
                return layer
        return None

    def decide(self, layer: int, delta: np.ndarray) -> LayerDecision:
        return LayerDecision(self.rows[layer].copy(), self.bias[layer].copy(), delta)

    def current_masks(self) -> tuple[Masks, Masks] | None:
        return [r.copy() for r in self.rows], [b.copy() for b in self.bias]


class Full(MaskStrategy):
    """Dense backprop: the reference every sparse strategy is measured against."""


    def initial_masks(self) -> tuple[Masks, Masks]:
        ones = [np.ones(n, dtype=bool) for n in self.widths()]
        return ones, [o.copy() for o in ones]


class Static(MaskStrategy):
    """Tiny Training Engine (Lin et al., 2022, "On-Device Training Under 256KB Memory"):
    a fixed sparse update — biases of the last `bias_layers` layers, and the first
    floor(channel_ratio·N_l + 0.5) weight rows of the last `weight_layers` layers (rounded,
    not ceil: 0.3f·100 is 30.000002 in float32, and ceil would make it 31)."""


    def initial_masks(self) -> tuple[Masks, Masks]:
        bias_layers, weight_layers, ratio = int(self.params[0]), int(self.params[1]), self.params[2]
        rows, bias = [], []
        for layer, n in enumerate(self.widths()):
            depth = self.n_layers - 1 - layer  # 0 for the last layer
            b = np.full(n, depth < bias_layers, dtype=bool)
            r = np.zeros(n, dtype=bool)
            if depth < weight_layers:
                r[: min(n, int(np.floor(ratio * f32(n) + f32(0.5))))] = True
            rows.append(r)
            bias.append(b)
        return rows, bias


class _NeuronList:
    """All neurons, ordered (layer ascending, index ascending), with their parameter count."""

    def __init__(self, dims: list[int]) -> None:
        self.layer = np.concatenate([np.full(n, lay) for lay, n in enumerate(dims[1:])])
        self.index = np.concatenate([np.arange(n) for n in dims[1:]])
        self.cost = np.concatenate([np.full(n, dims[lay] + 1) for lay, n in enumerate(dims[1:])])
        self.total = int(self.cost.sum())

    def budget(self, fraction: np.float32) -> int:
        return int(np.floor(fraction * f32(self.total)))

    def greedy_fill(self, order: np.ndarray, budget: int, dims: list[int]) -> Masks:
        """Walk `order`; take a neuron if it still fits (`used + cost ≤ budget`)."""
        rows = [np.zeros(n, dtype=bool) for n in dims[1:]]
        used = 0
        for c in order:
            if used + int(self.cost[c]) <= budget:
                used += int(self.cost[c])
                rows[self.layer[c]][self.index[c]] = True
        return rows


class _Velocity(MaskStrategy):
    """Per-neuron output velocity over a fixed validation subset (NEq, Bragagnolo et al.,
    NeurIPS 2022). A dense neuron's output per sample is a scalar, so the cosine is taken
    across the V-sample subset (docs/training.md):

        φ^t = <y^t, y^{t-1}> / (sqrtf(Σ y^t²) · sqrtf(Σ y^{t-1}²)),
              1 if both outputs are all zeros, 0 if only the denominator is 0
        v^t = (φ^t − φ^{t-1}) − μ·v^{t-1};     t = 0: φ^0 = 1, v^0 = 0 (no y^{-1})

    φ^0 = 1 as in NEq's code (its buffer of Δ = 1 − cos starts at 0): a stable neuron's first
    velocity is ≈ 0. A neuron silent on the whole subset at t and t−1 is at equilibrium.
    """

    mu_index: ClassVar[int] = 1

    def __init__(self, dims: Sequence[int], params: np.ndarray) -> None:
        Strategy.__init__(self, dims, params)
        self.prev: list[np.ndarray] | None = None
        self.phi = [np.ones(n, dtype=F32) for n in self.widths()]  # φ^0 = 1
        self.velocity = [np.zeros(n, dtype=F32) for n in self.widths()]
        self.scores: list[np.ndarray] = [np.zeros(n, dtype=F32) for n in self.widths()]
        self.rows, self.bias = self.initial_masks()

    def on_select(self, outputs: list[np.ndarray]) -> None:
        mu = self.params[self.mu_index]
        outs = [np.asarray(o, dtype=F32) for o in outputs]
        if self.prev is not None:
            for layer, (y, yp) in enumerate(zip(outs, self.prev, strict=True)):
                phi = cosine_across(y, yp)
                velocity = (phi - self.phi[layer]) - mu * self.velocity[layer]
                self.velocity[layer] = velocity.astype(F32)
                self.phi[layer] = phi
        self.prev = outs
        self.rows = self._select(first=self.select_count == 0)
        self.bias = [r.copy() for r in self.rows]
        self.select_count += 1

    def initial_masks(self) -> tuple[Masks, Masks]:
        rows = self._select(first=True)
        return rows, [r.copy() for r in rows]

    def _select(self, first: bool) -> Masks:
        raise NotImplementedError


def cosine_across(y: np.ndarray, yp: np.ndarray) -> np.ndarray:
    """Per neuron (column) the float32 cosine of y and yp ([V][N]) across the V samples, in
    the firmware's order; 1 where both columns are all zeros, 0 where only the denominator
    is 0."""
    dot = seq_sum(y * yp, axis=0)
    syy, spp = seq_sum(y * y, axis=0), seq_sum(yp * yp, axis=0)
    den = np.sqrt(syy) * np.sqrt(spp)
    safe = np.where(den > 0, den, F32(1.0))
    phi = np.where(den > 0, dot / safe, F32(0.0))
    return np.where((syy == 0) & (spp == 0), F32(1.0), phi).astype(F32)


class Neq(_Velocity):
    """NEq (Bragagnolo et al., NeurIPS 2022, "To update or not to update? Neurons at
    equilibrium in deep models"): a neuron is frozen (row and bias) until the next SELECT iff
    |v| ≤ ε. At t = 0 every neuron is trainable."""


    def _select(self, first: bool) -> Masks:
        self.scores = [np.abs(v) for v in self.velocity]
        if first:
            return [np.ones(n, dtype=bool) for n in self.widths()]
        return [s > self.params[0] for s in self.scores]


class VelocityBudget(_Velocity):
    """Quelennec et al. (WACVW 2024, "Towards On-Device Learning on the Edge"): under a fixed
    budget of trainable parameters, rank neurons by |v| / params(c) (params = in_l + 1),
    largest first, ties by layer descending then index ascending, and fill greedily."""


    def _select(self, first: bool) -> Masks:
        neurons = _NeuronList(self.dims)
        key = np.concatenate([np.abs(v) for v in self.velocity]) / neurons.cost.astype(F32)
        self.scores = [key[neurons.layer == lay] for lay in range(self.n_layers)]
        # lexsort: last key is primary → |v|/params desc, layer desc, index asc.
        order = np.lexsort((neurons.index, -neurons.layer, -key))
        return neurons.greedy_fill(order, neurons.budget(self.params[0]), self.dims)


def xorshift32(state: int) -> int:
    """Marsaglia's xorshift32 (13, 17, 5); returns the new state, which is also the output."""
    state ^= (state << 13) & 0xFFFFFFFF
    state ^= state >> 17
    state ^= (state << 5) & 0xFFFFFFFF
    return state


def random_permutation(n: int, seed: int, t: int) -> np.ndarray:
    """Fisher–Yates over 0..n-1 with xorshift32, state `seed ^ (0x9E3779B9·(t+1))` (1 if 0)."""
    state = (seed ^ (0x9E3779B9 * (t + 1))) & 0xFFFFFFFF or 1
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        state = xorshift32(state)
        j = state % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return np.array(perm, dtype=np.int64)


class RandomBudget(MaskStrategy):
    """The control of Quelennec et al.: a random set of neurons filling the same budget,
    redrawn at every SELECT."""


    def initial_masks(self) -> tuple[Masks, Masks]:
        rows = self._draw(0)
        return rows, [r.copy() for r in rows]

    def _draw(self, t: int) -> Masks:
        neurons = _NeuronList(self.dims)
        order = random_permutation(len(neurons.layer), int(self.params[1]), t)
        return neurons.greedy_fill(order, neurons.budget(self.params[0]), self.dims)

    def on_select(self, outputs: list[np.ndarray]) -> None:
        self.rows = self._draw(self.select_count)
        self.bias = [r.copy() for r in self.rows]
        self.select_count += 1


# -------------------------------------------------------------------------- error-driven


class TinyProp(Strategy):
    """TinyProp (Rüb, Maier, Sikora, Mueller-Gritschneder, 2023, "TinyProp — Adaptive Sparse
    Back Propagation for Efficient TinyML On-device Learning"), batched: per layer keep the
    k_l neurons with the largest Σ_n|δ|, k_l from the layer's error relative to its running
    maximum. Unlike the reference PyTorch code, k ≥ 1 always. All biases are updated."""

    sparse_propagation = True
    gamma_index: ClassVar[int | None] = None  # index of γ in sparams (decaying Ymax), if any

    def __init__(self, dims: Sequence[int], params: np.ndarray) -> None:
        super().__init__(dims, params)
        self.ymax = [F32(0.0)] * self.n_layers
        self._scored: dict[int, tuple[np.ndarray, np.float32]] = {}  # scored before decide()

    def backward_floor(self) -> int | None:
        return 0

    def _ratio(self, layer: int, y: np.float32) -> np.float32:
        """Update Ymax_l with Y_l and return r = Y/Ymax (0 if Ymax is 0)."""
        ref = self.ymax[layer]
        if self.gamma_index is not None:
            ref = self.params[self.gamma_index] * ref
        self.ymax[layer] = max(ref, y)  # Ymax ≥ 0, Y ≥ 0: no NaN-ordering issue unless δ is NaN
        ymax = self.ymax[layer]
        return y / ymax if ymax > 0 else F32(0.0)

    @staticmethod
    def _scores(delta: np.ndarray) -> tuple[np.ndarray, np.float32]:
        score = seq_sum(np.abs(delta), axis=0)  # Σ_n |δ[n][j]|, n in order
        return score, F32(seq_sum(score, axis=0)[()])  # Y = Σ_j score_j, j in order

    def _layer_ratio(self, layer: int, delta: np.ndarray) -> tuple[np.ndarray, np.float32]:
        score, y = self._scores(delta)
        r = self._ratio(layer, y)
        self.stats[layer] = {"Y": float(y), "Ymax": float(self.ymax[layer]), "r": float(r)}
        return score, r

    def decide(self, layer: int, delta: np.ndarray) -> LayerDecision:
        scored = self._scored.pop(layer, None)  # output layer scored in begin_step (v2)
        score, r = scored if scored is not None else self._layer_ratio(layer, delta)
        s_min, s_max, zeta = self.params[0], self.params[1], self.params[2]
        zeta_d = F32(1.0)
        for _ in range(self.n_layers - 1 - layer):
            zeta_d = zeta_d * zeta
        bpr = (s_min + (s_max - s_min) * r) * zeta_d
        n = delta.shape[1]
        k_raw = f32(n) * bpr
        # clamp(floor(k_raw), 1, N) compared in float first, like the firmware: a NaN k_raw
        # (a diverged run: δ is NaN) gives k = 1 (docs/training.md), never an exception.
        k = n if k_raw >= n else int(np.floor(k_raw)) if k_raw >= 1 else 1
        self.stats[layer].update(bpr=float(bpr), k_raw=float(k_raw), k=k)
        keep = np.argsort(-score, kind="stable")[:k]  # largest first, ties: lower j first
        rows = np.zeros(n, dtype=bool)
        rows[keep] = True
        kept = np.where(rows[None, :], delta, F32(0.0)).astype(F32)
        return LayerDecision(rows, np.ones(n, dtype=bool), kept, score)

    def begin_step(self, delta_out: np.ndarray) -> bool:
        self.stats, self._scored = {}, {}
        return False


class TinyPropV2(TinyProp):
    """OUR rule in the spirit of TinyPropv2 (Rüb, Sikora, Mueller-Gritschneder, arXiv
    2409.07109, 2024), whose exact rule is not available to us: TinyProp with a decaying
    reference Ymax ← max(γ·Ymax, Y), and the whole backward pass and update skipped when the
    output layer's ratio r_out < τ (its Ymax is still updated)."""

    gamma_index = 4

    def begin_step(self, delta_out: np.ndarray) -> bool:
        self.stats, self._scored = {}, {}
        last = self.n_layers - 1
        score, r = self._layer_ratio(last, delta_out)
        self._scored[last] = (score, r)
        return bool(r < self.params[3])


# ---------------------------------------------------------------------------- registry
# Names, ids, parameters and their checks are in the catalogue (rig.strategies); this
# module only maps each id to the class holding its arithmetic.

_CLASS_BY_ID: dict[StrategyId, type[Strategy]] = {
    StrategyId.FULL: Full,
    StrategyId.TINYPROP: TinyProp,
    StrategyId.TINYPROPV2: TinyPropV2,
    StrategyId.NEQ: Neq,
    StrategyId.VELOCITY_BUDGET: VelocityBudget,
    StrategyId.RANDOM_BUDGET: RandomBudget,
    StrategyId.STATIC: Static,
}
for _spec in STRATEGIES:
    _CLASS_BY_ID[_spec.id].spec = _spec

#: strategy name -> the class with its arithmetic
CLASSES: dict[str, type[Strategy]] = {s.name: _CLASS_BY_ID[s.id] for s in STRATEGIES}


def make_strategy(strategy: str | int, dims: Sequence[int],
                  sparams: Sequence[float] | None = None) -> Strategy:
    """A fresh strategy state (what TRAIN_CONFIG does); ConfigError for an unknown name or
    bad parameters (`rig.strategies`)."""
    spec, values = resolve(strategy, sparams)
    return CLASSES[spec.name](dims, np.array(values, dtype=F32))


__all__ = ["CLASSES", "LayerDecision", "Strategy", "make_strategy", "random_permutation",
           "xorshift32"]
