"""The `rig` command line: a thin face over `rig.session` (the pytest plugin is the other face).

    rig run            train the default model on the default target, compare with the golden model
    rig list           configured targets, whether each is available, prebuilt images
    rig hello          connect to a target and print what the firmware says about itself
    rig flash          flash a target's prebuilt image (pyocd probe, or QEMU's gdbstub), verify
    rig sizes          flash / static RAM / stack of every prebuilt image (--measure: peak stack)
    rig profile        cost per phase and strategy: MACs, instructions (QEMU), cycles and energy
    rig experiment     accuracy-vs-compute frontiers, 30 seeds, claims: docs/results

`--config PATH` (the lab file; pytest's option is `--rig-config`) goes before or after the
command: `rig --config lab.yaml run` = `rig run --config lab.yaml`. Without it:
$TINYRIG_LAB_CONFIG, ./lab_config.yaml, the package's default.

Exit status: 0 ok, 1 device and golden model disagree beyond tolerance, 2 rig error
(config, link, target, firmware, a wrong command-line value).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from rich.markup import escape

from rig import __version__
from rig.cli import boards, experiment, profile, run
from rig.cli.checks import UsageError
from rig.cli.console import console
from rig.errors import RigError

# Each subcommand module imports the training stack (torch) only inside its command, so
# `rig --help` and a rejected option cost no more than the lab-file parser.


class _Parser(argparse.ArgumentParser):
    """Errors as one line, `rig run: argument --epochs: invalid int value: 'x'`, exit 2
    (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        console.print(f"{self.prog}: {message}", markup=False, soft_wrap=True)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rig", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    config_help = ("lab_config.yaml to use (default: $TINYRIG_LAB_CONFIG, ./lab_config.yaml, "
                   "the package's)")
    p.add_argument("--version", action="version", version=f"tinyrig {__version__}")
    p.add_argument("--config", metavar="PATH", help=config_help)
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    run.add_parser(sub)
    boards.add_parsers(sub)
    experiment.add_parser(sub)
    profile.add_parser(sub)
    for command in sub.choices.values():  # also after the command; SUPPRESS keeps the first
        command.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                             help=config_help)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            args = parser.parse_args([*(sys.argv[1:] if argv is None else argv), "run"])
    except SystemExit as exc:  # --help (0) or an argparse error (2, already printed)
        return int(exc.code or 0)
    try:
        check = getattr(args, "check", None)
        if check is not None:
            check(args)
        return int(args.func(args))
    except UsageError as exc:
        console.print(f"rig {args.command}: {exc}", markup=False, soft_wrap=True)
        return 2
    except RigError as exc:  # the message may hold anything (a config value): no markup
        console.print(f"[red bold]error:[/] {escape(str(exc))}", soft_wrap=True)
        for note in getattr(exc, "__notes__", []):
            console.print(note, markup=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130


__all__ = ["build_parser", "main"]
