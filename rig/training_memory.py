"""Training memory per strategy, measured on a target from its own STATS.

For each strategy the device trains the job (by default the lab's whole default job with the
board's `training:` overrides), then STATS gives the arena's high-water mark and the peak
stack of that run (the firmware resets both at RESET, which starts every run). Training
memory = arena high-water - parameters (every strategy needs the weights) + peak stack.
A strategy whose memory plan (rig.memplan) does not fit the arena is not run: the record
says so with the bytes the plan needs. Used by `rig sizes --measure` and
`benchmarks/training_memory.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rig import memplan
from rig.connection import Connection
from rig.errors import DoesNotFit
from rig.fit import fit_spec, memory_plan
from rig.session import Inspect, RunSpec, TrainingSession


@dataclass(frozen=True)
class StrategyMemory:
    """One strategy's run on one board (bytes; `fits` False: not run, `reason` says why)."""

    board: str
    strategy: str
    dims: tuple[int, ...]
    fits: bool
    arena_used: int = 0  # STATS high-water mark of the arena during the run
    arena_size: int = 0
    weights: int = 0  # 4 x parameters
    stack_used: int = 0  # STATS peak stack of the run
    steps: int = 0
    plan: int = 0  # arena bytes of the host's memory plan for the same run (rig.memplan)
    reason: str = ""
    plan_regions: str = ""  # the plan's regions in bytes (`params 9,640 + gradients ...`)

    @property
    def training_bytes(self) -> int:
        """Arena high-water without the weights, plus the peak stack."""
        return self.arena_used - self.weights + self.stack_used


def measure(conn: Connection, base: RunSpec, board_training: Mapping[str, Any] | None,
            strategies: Sequence[str] | None = None,
            overrides: Mapping[str, Any] | None = None) -> list[StrategyMemory]:
    """Train each strategy (default: every one the firmware has) on `conn`'s device."""
    hello = conn.hello
    out: list[StrategyMemory] = []
    for name in strategies if strategies is not None else hello.strategy_names:
        spec, _ = fit_spec(base, hello, board_training, {**(overrides or {}), "strategy": name})
        dims = tuple(spec.dims)
        plan = memory_plan(spec, hello)
        session = TrainingSession(conn.device, spec, inspect=Inspect())
        try:
            session.prepare()
        except DoesNotFit as exc:
            out.append(StrategyMemory(hello.board, name, dims, False, reason=str(exc)))
            continue
        report = session.run()
        stats = conn.device.stats()
        out.append(StrategyMemory(hello.board, name, dims, True, stats.arena_used,
                                  stats.arena_size, memplan.F32 * memplan.n_params(dims),
                                  stats.stack_used, len(report.steps), plan.bytes,
                                  plan_regions=plan.describe()))
    return out
