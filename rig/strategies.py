"""The one catalogue of sparse-update strategies: wire id, name, parameters, defaults, checks.

Ground floor: no numpy, no torch, nothing from the rest of the rig but `rig.errors`, so the
config loader, the wire contract (`rig.protocol`), the session, the profiler, the CLI's help
and `--strategy` check, and the tests all read the same table without paying for the golden
model. The arithmetic of each strategy lives in `rig.golden.strategies` (mapped by id) and
in `firmware/src/strategy_*.c`; what the parameters mean is in docs/training.md.

Parameters travel as f32 (TRAIN_CONFIG), so `StrategySpec.resolve` rounds them to f32 before
checking: host and device see the same values.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from rig.errors import ConfigError
from rig.suggest import closest


class StrategyId(IntEnum):
    """TRAIN_CONFIG `strategy` byte; bit i of HELLO `strategies` = id i."""

    FULL = 0
    TINYPROP = 1
    TINYPROPV2 = 2
    NEQ = 3
    VELOCITY_BUDGET = 4
    RANDOM_BUDGET = 5
    STATIC = 6


Check = Callable[[Sequence[float]], "str | None"]


@dataclass(frozen=True)
class StrategySpec:
    """One strategy as the wire, the lab file and the command line know it."""

    id: StrategyId
    name: str
    param_names: tuple[str, ...]
    defaults: tuple[float, ...]
    #: SELECT recomputes the masks once per epoch (mask strategies, docs/training.md)
    uses_select: bool = False
    #: SELECT ranks neurons by output velocity over the validation subset (a forward pass)
    velocity: bool = False
    #: masks are decided inside each step from the batch's errors (firmware: masks_on_delta,
    #: skip or layer_select), so the step needs the whole batch at once; the others stream
    #: it in blocks (docs/training.md "Memory plan")
    per_step: bool = False
    #: the parameters' ranges: returns what is wrong, or None
    check: Check = lambda p: None

    def resolve(self, sparams: Sequence[float] | None = None) -> tuple[float, ...]:
        """The parameters to send, rounded to f32; missing trailing values take the defaults.
        Raises ConfigError naming the parameters when there are too many or one is out of
        range."""
        given = [] if sparams is None else [float(s) for s in sparams]
        if len(given) > len(self.defaults):
            names = ", ".join(self.param_names) or "none"
            raise ConfigError(f"strategy {self.name!r} takes {len(self.defaults)} sparams "
                              f"({names}), got {len(given)}")
        values = tuple(_f32(v) for v in given + list(self.defaults[len(given):]))
        problem = self.check(values)
        if problem:
            shown = ", ".join(f"{n}={v:g}" for n, v in zip(self.param_names, values, strict=True))
            raise ConfigError(f"strategy {self.name!r}: {problem} (sparams {shown})")
        return values

    def usage(self) -> str:
        """`tinyprop(S_min=0.1, S_max=0.9, zeta=0.5)`: for help texts."""
        return f"{self.name}(" + ", ".join(f"{n}={d:g}" for n, d in
                                           zip(self.param_names, self.defaults, strict=True)) + ")"


def _f32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def _integer(v: float) -> bool:
    return math.isfinite(v) and v == math.floor(v)


def _check_tinyprop(p: Sequence[float]) -> str | None:
    if not (0 <= p[0] <= p[1] <= 1):
        return "need 0 ≤ S_min ≤ S_max ≤ 1"
    if not 0 < p[2] <= 1:
        return "need 0 < ζ ≤ 1"
    if len(p) > 4 and not 0 < p[4] <= 1:
        return "need 0 < γ ≤ 1"
    return None


def _check_budget(p: Sequence[float]) -> str | None:
    return None if 0 <= p[0] <= 1 else "need 0 ≤ budget ≤ 1"


def _check_random(p: Sequence[float]) -> str | None:
    if not 0 <= p[1] < 2**24 or not _integer(p[1]):
        return "seed must be an integer in [0, 2^24) (it travels as f32)"
    return _check_budget(p)


def _check_static(p: Sequence[float]) -> str | None:
    if p[0] < 0 or p[1] < 0 or not _integer(p[0]) or not _integer(p[1]):
        return "bias_layers and weight_layers must be non-negative integers"
    return None if 0 <= p[2] <= 1 else "need 0 ≤ channel_ratio ≤ 1"


#: every strategy, in wire-id order
STRATEGIES: tuple[StrategySpec, ...] = (
    StrategySpec(StrategyId.FULL, "full", (), ()),
    StrategySpec(StrategyId.TINYPROP, "tinyprop", ("S_min", "S_max", "zeta"), (0.1, 0.9, 0.5),
                 per_step=True, check=_check_tinyprop),
    StrategySpec(StrategyId.TINYPROPV2, "tinypropv2", ("S_min", "S_max", "zeta", "tau", "gamma"),
                 (0.1, 0.9, 0.5, 0.5, 0.995), per_step=True, check=_check_tinyprop),
    StrategySpec(StrategyId.NEQ, "neq", ("eps", "mu"), (0.001, 0.5), uses_select=True,
                 velocity=True),
    StrategySpec(StrategyId.VELOCITY_BUDGET, "velocity-budget", ("budget", "mu"), (0.25, 0.5),
                 uses_select=True, velocity=True, check=_check_budget),
    StrategySpec(StrategyId.RANDOM_BUDGET, "random-budget", ("budget", "seed"), (0.25, 1.0),
                 uses_select=True, check=_check_random),
    StrategySpec(StrategyId.STATIC, "static", ("bias_layers", "weight_layers", "channel_ratio"),
                 (2.0, 1.0, 0.5), check=_check_static),
)

NAMES: tuple[str, ...] = tuple(s.name for s in STRATEGIES)
_BY_NAME = {s.name: s for s in STRATEGIES}
_BY_ID = {int(s.id): s for s in STRATEGIES}


def unknown_message(name: str) -> str:
    """`'tinyprp': unknown strategy; did you mean 'tinyprop'?` (or the list of names)."""
    best = closest(name, NAMES)
    hint = f"did you mean {best!r}?" if best else f"known: {', '.join(NAMES)}"
    return f"{name!r}: unknown strategy; {hint}"


def get(strategy: str | int) -> StrategySpec:
    """The spec for a name or a wire id; ConfigError (with a suggestion) otherwise."""
    if isinstance(strategy, int) and not isinstance(strategy, bool):
        try:
            return _BY_ID[int(strategy)]
        except KeyError:
            raise ConfigError(f"unknown strategy id {strategy}; known: "
                              + ", ".join(f"{s.id} {s.name}" for s in STRATEGIES)) from None
    try:
        return _BY_NAME[str(strategy)]
    except KeyError:
        raise ConfigError(unknown_message(str(strategy))) from None


def resolve(name: str | int, sparams: Sequence[float] | None = None
            ) -> tuple[StrategySpec, tuple[float, ...]]:
    """Check a strategy and its parameters together: (spec, f32 parameters with defaults)."""
    spec = get(name)
    return spec, spec.resolve(sparams)


__all__ = ["NAMES", "STRATEGIES", "StrategyId", "StrategySpec", "get", "resolve", "unknown_message"]
