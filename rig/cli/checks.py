"""Checks of command-line values that need no target: they run before any target starts,
and a failure is one line naming the option (`UsageError`, exit 2)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rig import strategies
from rig.errors import ConfigError, UsageError


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
