"""The training arena's memory plan, computed on the host (docs/training.md "Memory plan").

The firmware lays out its one static arena at MODEL_INIT and TRAIN_CONFIG from the model,
the strategy, its parameters and the momentum (`firmware/src/mlp.c`, `plan_layout`); this
module computes the same layout from the same documented rules, so the rig can say before
any upload whether a job fits a board (`rig run`, the pytest plugin, `rig sizes`) and tests
can hold the firmware's STATS / NO_SPACE figures against an independent computation.

Ground floor like `rig.strategies`: no numpy, no torch.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from rig import strategies

F32 = 4  # bytes per float


def _f32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


@dataclass(frozen=True)
class SelectionBound:
    """What any selection of a strategy can touch (the firmware's `strat_plan_t`)."""

    max_trainable: int  # parameters: the size of the gradient store
    lowest: int  # lowest layer any selection touches (n_layers: none)
    weights_from: int  # lowest layer whose weight rows any selection touches
    fixed: bool  # masks never change after TRAIN_CONFIG: momentum packed with the gradients
    sel: int = 0  # floats of selection scratch / per-neuron state


@dataclass(frozen=True)
class MemoryPlan:
    """Floats of each region of the arena for one model and configuration."""

    params: int
    step: int  # gradient g, then the applied u, of the selected entries only
    momentum: int
    act: int  # act[0] (`rows` or a chunk) + act[1..L] at `rows` rows
    delta: int  # error buffers of `rows` rows
    chunk: int  # the chunked error of a bias-only lowest layer
    selection: int = 0  # the strategy's selection scratch (per-neuron state)
    history: int = 0  # velocity strategies: y^{t-1} of the V validation samples per neuron,
    #                   reserved at the first SELECT (V known then)

    @property
    def floats(self) -> int:
        return (self.params + self.step + self.momentum + self.act + self.delta + self.chunk
                + self.selection + self.history)

    @property
    def bytes(self) -> int:
        return F32 * self.floats

    def describe(self) -> str:
        """`params 9,640 + gradients 808 + ...` (bytes of each non-empty region)."""
        parts = [("params", self.params), ("gradients", self.step), ("momentum", self.momentum),
                 ("activations", self.act), ("errors", self.delta + self.chunk),
                 ("selection", self.selection), ("velocity history", self.history)]
        return " + ".join(f"{name} {F32 * n:,}" for name, n in parts if n) + " B"

    @property
    def training_bytes(self) -> int:
        """Everything but the parameters (the weights every strategy needs)."""
        return self.bytes - F32 * self.params


def n_params(dims: Sequence[int]) -> int:
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:], strict=False))


def chunk_rows(max_batch: int) -> int:
    """Samples per chunk where the plan keeps only a chunk (the forward kernel's block)."""
    return min(4, max_batch)


def stream_rows(max_batch: int) -> int:
    """Samples per block of a streamed step (firmware MLP_STREAM_ROWS)."""
    return min(16, max_batch)


def block_rows(strategy: str | None, max_batch: int, batch: int = 0) -> int:
    """Rows of the activations and errors for steps of at most `batch` samples (TRAIN_CONFIG's
    batch; 0: max_batch): the whole batch for a strategy that decides masks inside the step
    from the batch's errors, else a streamed block; forward passes alone (no TRAIN_CONFIG
    yet, strategy None) a chunk."""
    if strategy is None:
        return chunk_rows(max_batch)
    b = min(batch, max_batch) if batch > 0 else max_batch
    if strategies.get(strategy).per_step:
        return b
    return min(stream_rows(max_batch), b)


def _static_rows(n_layers: int, layer: int, n: int, sp: Sequence[float]) -> tuple[int, bool]:
    depth = n_layers - 1 - layer
    biases = depth < int(sp[0])
    if depth >= int(sp[1]):
        return 0, biases
    rows = math.floor(_f32(_f32(sp[2] * n) + 0.5))
    return min(rows, n), biases


def selection_bound(dims: Sequence[int], strategy: str | None,
                    sparams: Sequence[float] = ()) -> SelectionBound:
    """The strategy's plan hook (firmware/src/strategy_*.c `*_plan`); None: no TRAIN_CONFIG
    yet (forward passes only)."""
    L = len(dims) - 1
    total = n_params(dims)
    if strategy is None:
        return SelectionBound(0, L, L, False)
    spec = strategies.get(strategy)
    sp = spec.resolve(sparams)
    if spec.name == "full":
        return SelectionBound(total, 0, 0, True)
    if spec.name == "static":
        trainable, lowest, weights_from = 0, L, L
        for layer in reversed(range(L)):
            rows, biases = _static_rows(L, layer, dims[layer + 1], sp)
            trainable += rows * dims[layer] + (dims[layer + 1] if biases else 0)
            if rows:
                lowest = weights_from = layer
            elif biases:
                lowest = layer
        return SelectionBound(trainable, lowest, weights_from, True)
    neurons = sum(dims[1:])
    velocity_state = 5 * neurons if spec.velocity else 0  # phi, v, three work sums
    if spec.name in ("velocity-budget", "random-budget"):
        budget = math.floor(_f32(sp[0] * _f32(float(total))))
        lowest = next((layer for layer in range(L) if dims[layer] + 1 <= budget), L)
        ids = (neurons + 1) // 2  # u16 neuron order
        return SelectionBound(budget, lowest, lowest, False, velocity_state + ids)
    # tinyprop, tinypropv2 (scratch in the model struct), neq: any selection
    return SelectionBound(total, 0, 0, False, velocity_state)


def plan(dims: Sequence[int], strategy: str | None, sparams: Sequence[float] = (),
         momentum: float = 0.0, *, max_batch: int, batch: int = 0,
         val_samples: int = 0) -> MemoryPlan:
    """The arena layout the firmware makes for this model and configuration, for steps of
    at most `batch` samples (TRAIN_CONFIG's batch; 0: max_batch; ignored without a
    strategy); with `val_samples` (V of SELECT) the velocity strategies' history is
    included."""
    L = len(dims) - 1
    total = n_params(dims)
    b = selection_bound(dims, strategy, sparams)
    trainable = min(b.max_trainable, total)
    mom = 0
    if strategy is not None and momentum > 0:
        mom = trainable if b.fixed else total
    ch = chunk_rows(max_batch)
    rows = block_rows(strategy, max_batch, batch)
    act = (rows if b.weights_from == 0 else ch) * dims[0] + rows * sum(dims[1:])
    targets: list[int] = []  # widths of the errors propagated into layers lowest..L-2
    chunk = 0
    for layer in range(L - 1, b.lowest, -1):
        if layer == b.lowest + 1 and b.weights_from > b.lowest:
            chunk = ch * dims[layer]
        else:
            targets.append(dims[layer])
    delta = min(2, len(targets)) * rows * (max(targets) if targets else 0)
    history = 0
    if strategy is not None and uses_history(strategy):
        history = val_samples * sum(dims[1:])
    return MemoryPlan(total, trainable, mom, act, delta, chunk, b.sel, history)


def uses_history(strategy: str) -> bool:
    """The strategy keeps y^{t-1} of the validation subset (V floats per neuron)."""
    return strategies.get(strategy).velocity


def arena_text(need_bytes: int, arena_bytes: int) -> str:
    """The firmware's NO_SPACE text for a layout that does not fit."""
    return f"arena: needs {need_bytes} B, has {arena_bytes} B"
