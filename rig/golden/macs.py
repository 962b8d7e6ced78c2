"""Multiply–accumulate counts per phase ("Compute accounting" in `docs/training.md`).

The point of sparse training on an MCU is that saved MACs become saved cycles; the profile
compares these counts with measured cycles per phase.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PhaseMacs:
    """MACs of one TRAIN_STEP (or SELECT), split like the device's phase counters."""

    forward: int = 0
    backward: int = 0
    selection: int = 0
    update: int = 0

    @property
    def total(self) -> int:
        return self.forward + self.backward + self.selection + self.update

    def as_tuple(self) -> tuple[int, int, int, int]:
        """Same order as TRAIN_STEP's `counters[4]`."""
        return self.forward, self.backward, self.selection, self.update

    def __add__(self, other: PhaseMacs) -> PhaseMacs:
        return PhaseMacs(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))


def forward_macs(dims: Sequence[int], batch: int) -> int:
    """B·Σ_l in_l·N_l."""
    return batch * sum(dims[i] * dims[i + 1] for i in range(len(dims) - 1))


def step_macs(dims: Sequence[int], batch: int, k: Sequence[int], bias_selected: Sequence[int],
              propagated: Sequence[int], scored: Sequence[int] = ()) -> PhaseMacs:
    """One TRAIN_STEP.

    k[l]: rows updated; bias_selected[l]: biases updated; propagated[l]: output errors of
    layer l propagated into layer l-1 (k_l for TinyProp, N_l for mask strategies, 0 where
    the backward pass stopped; ignored for l = 0); scored: layers whose error was scored
    (TinyProp's Σ|δ|, B·N_l accumulations each, counted as selection).
    """
    ins = dims[:-1]
    backward = sum(batch * ins[lay] * k[lay] for lay in range(len(k)))
    backward += sum(batch * ins[lay] * propagated[lay] for lay in range(1, len(k)))
    update = sum(ins[lay] * k[lay] + bias_selected[lay] for lay in range(len(k)))
    selection = sum(batch * dims[lay + 1] for lay in scored)
    return PhaseMacs(forward_macs(dims, batch), backward, selection, update)


def full_step_macs(dims: Sequence[int], batch: int) -> PhaseMacs:
    """Dense backprop: the reference a sparse step's count is compared with."""
    widths = list(dims[1:])
    return step_macs(dims, batch, widths, widths, widths)


def select_macs(dims: Sequence[int], n_val: int, velocity: bool) -> PhaseMacs:
    """SELECT: forward over the V-sample subset plus, for velocity strategies, the three
    V-long sums per neuron (<y,y_prev>, Σy², Σy_prev²). Counted as selection."""
    if not velocity:
        return PhaseMacs()
    neurons = sum(dims[1:])
    return PhaseMacs(selection=forward_macs(dims, n_val) + 3 * n_val * neurons)
