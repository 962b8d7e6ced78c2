"""Device-fit rules: does a run fit what the device said in HELLO, and the run a small board
does instead (its `training:` overrides, the batch clamped to max_batch).

Used by the session (before it sends anything), the CLI and the pytest plugin. Knows only
HELLO and RunSpec's fields (imported for type checking only: `rig.session` imports this).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rig.errors import DoesNotFit
from rig.protocol import HelloInfo

if TYPE_CHECKING:
    from rig.memplan import MemoryPlan
    from rig.session import RunSpec


def _n_params(dims: tuple[int, ...]) -> int:
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:], strict=False))


def check_fits(spec: RunSpec, hello: HelloInfo) -> None:
    """Raise a RigError naming the limit when the model or batch exceed what the device
    said in HELLO (instead of a bare NO_SPACE / BAD_ARG NAK halfway through prepare)."""
    dims = tuple(spec.dims)
    problems = []
    if len(dims) - 1 > hello.max_layers:
        problems.append(f"{len(dims) - 1} layers > max_layers {hello.max_layers}")
    if max(dims) > hello.max_width:
        problems.append(f"width {max(dims)} > max_width {hello.max_width}")
    if _n_params(dims) > hello.param_capacity:
        problems.append(f"{_n_params(dims)} parameters > param_capacity {hello.param_capacity}")
    if spec.batch > hello.max_batch:
        problems.append(f"batch {spec.batch} > max_batch {hello.max_batch}")
    if problems:
        raise DoesNotFit(f"the run does not fit {hello.board}: {'; '.join(problems)} (dims "
                       f"{'-'.join(map(str, dims))}). Give the board a smaller job in "
                       f"lab_config.yaml (boards.{hello.board}.training: dims/batch)")


def memory_plan(spec: RunSpec, hello: HelloInfo) -> MemoryPlan:
    """The arena layout the firmware makes for this run (rig.memplan): the run's model,
    strategy, momentum and batch on this board, the velocity history for its V samples."""
    from rig import memplan

    return memplan.plan(spec.dims, spec.strategy, spec.sparams or (), spec.momentum,
                        max_batch=hello.max_batch, batch=spec.batch,
                        val_samples=spec.val_samples if memplan.uses_history(spec.strategy)
                        else 0)


def check_memory(spec: RunSpec, hello: HelloInfo, arena_size: int) -> None:
    """Raise DoesNotFit, with the bytes the memory plan needs, when the training arena
    (STATS arena_size; 0 from firmware without one: not checked) cannot hold the layout the
    firmware would make for this run (rig.memplan, docs/training.md "Memory plan") -
    before any upload, instead of a NO_SPACE NAK at MODEL_INIT / TRAIN_CONFIG / SELECT."""
    from rig import memplan

    if arena_size <= 0:
        return
    p = memory_plan(spec, hello)
    if p.bytes > arena_size:
        raise DoesNotFit(
            f"{spec.strategy} on {'-'.join(map(str, spec.dims))} does not fit {hello.board}: "
            f"{memplan.arena_text(p.bytes, arena_size)} (memory plan: {p.describe()})")


def fit_spec(spec: RunSpec, hello: HelloInfo, board_training: Mapping[str, Any] | None = None,
             overrides: Mapping[str, Any] | None = None) -> tuple[RunSpec, list[str]]:
    """The run to do on this device: `spec` (the lab's training:) <- the board's
    `training:` overrides (what a small board can do, e.g. the microbit's 64-8-10 head)
    <- `overrides` (a test's or the command line's), then the batch clamped to the
    device's max_batch. Returns the spec and notes saying what was adapted."""
    notes: list[str] = []
    board = dict(board_training or {})
    if board:
        spec = dataclasses.replace(spec, **board)
        notes.append(f"{hello.board}: board overrides "
                     + ", ".join(f"{k}={v}" for k, v in board.items()))
    if overrides:
        spec = dataclasses.replace(spec, **overrides)
    if spec.batch > hello.max_batch:
        notes.append(f"{hello.board}: batch {spec.batch} -> {hello.max_batch} (max_batch)")
        spec = dataclasses.replace(spec, batch=hello.max_batch)
    return spec, notes
