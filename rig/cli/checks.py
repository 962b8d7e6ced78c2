"""Checks of command-line values that need no target: they run before any target starts,
and a failure is one line naming the option (`UsageError`, exit 2)."""

from __future__ import annotations

import argparse
import math
import os
import struct
from collections.abc import Sequence
from pathlib import Path

from rig import backbones, strategies
from rig.errors import ConfigError, UsageError
from rig.suggest import suggest


def add_strategy(p: argparse.ArgumentParser, help: str, repeat: bool = False) -> None:
    """`--strategy`: the catalogue's names. Checked by `check_strategy` (with a suggestion)
    rather than by argparse's `choices`, whose error dumps the usage."""
    metavar = "{" + ",".join(strategies.NAMES) + "}"
    if repeat:
        p.add_argument("--strategy", action="append", default=[], metavar=metavar, help=help)
    else:
        p.add_argument("--strategy", metavar=metavar, help=help)


def check_strategy(name: str) -> strategies.StrategySpec:
    try:
        return strategies.get(name)
    except ConfigError as exc:
        raise UsageError(f"--strategy {exc}") from None


def check_sparams(strategy: str, sparams: Sequence[float] | None, given: bool,
                  where: str = "") -> None:
    """Count and ranges of the strategy's parameters (`given`: they came from --sparams;
    else `where` says where they came from)."""
    spec = check_strategy(strategy)
    try:
        spec.resolve(sparams)
    except ConfigError as exc:
        raise UsageError(f"--sparams: {exc}" if given else f"{exc}{where}") from None


#: the largest finite float32: the device receives lr, momentum and sparams as f32
F32_MAX = 3.4028234663852886e38


def check_int(option: str, value: int | None, lo: int, hi: int | None = None,
              meaning: str = "") -> None:
    """An integer option within [lo, hi] (None: not given)."""
    if value is None:
        return
    if value < lo or (hi is not None and value > hi):
        bound = f"an integer >= {lo}" + (f" and <= {hi}" if hi is not None else "")
        raise UsageError(f"{option}: expected {bound}{meaning}, got {value}")


def check_float(option: str, value: float | None, lo: float, positive: bool = False) -> None:
    """A finite float32-representable option, > 0 (`positive`) or >= lo."""
    if value is None:
        return
    what = "a number > 0" if positive else f"a number >= {lo:g}"
    if not math.isfinite(value) or abs(value) > F32_MAX:
        raise UsageError(f"{option}: expected {what} that fits a float32, got {value}")
    if (positive and value <= 0) or value < lo:
        raise UsageError(f"{option}: expected {what}, got {value}")
    if positive and struct.unpack("<f", struct.pack("<f", value))[0] == 0.0:
        raise UsageError(f"{option}: expected {what}, got {value}, which is 0 as a float32")


def check_backbone(name: str | None) -> None:
    if name is None or name == "":
        return
    if name not in backbones.NAMES:
        raise UsageError(f"--backbone: expected one of {', '.join(backbones.NAMES)}, got "
                         f"{name!r}{suggest(name, backbones.NAMES)}")


def check_output_file(option: str, path: str | None) -> None:
    """A file the command will write at the end: writable now, so a long run is not lost."""
    if path is None:
        return
    p = Path(path)
    if path == "" or p.is_dir():
        raise UsageError(f"{option} {path!r}: is a directory; expected a file path")
    parent = p.parent
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: directory {parent} does not exist")
    if not os.access(p if p.exists() else parent, os.W_OK):
        raise UsageError(f"{option} {path}: not writable")
