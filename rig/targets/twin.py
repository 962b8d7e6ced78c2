"""A board twin as a target: the board's unmodified prebuilt image executed in unicorn with
the board's memory map and peripheral models (rig.twin). Emulated, never hardware: its
counters are `cycles (twin model)` (one cycle per executed instruction).

Options: `board` (a `Board` the twins know: nucleo-f429zi, nrf52840dk), `elf` (another
image of that board), `strict` (default true: an unknown register access or a board-code
problem a model finds stops the twin with a TwinError), `wall_factor` (a read may take
that many times its timeout in wall-clock time)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rig.config import Board
from rig.errors import ConfigError, RigError
from rig.firmware import FirmwareImage, FirmwareNotFound, image_for
from rig.link.transport import Transport
from rig.target_options import TwinOptions
from rig.targets.base import Target, register_target

if TYPE_CHECKING:  # the twin package (unicorn, SVD models) loads only when a twin is made
    from rig.profile.monitors.sim.logic import EdgeQueue
    from rig.twin.machine import PinEdge, TwinMachine
    from rig.twin.transport import TwinTransport

COUNTER_LABEL = "cycles (twin model)"
EMULATED = "emulated (twin)"


@register_target
class TwinTarget(Target):
    kind = "twin"
    counter_label = COUNTER_LABEL
    device_counter_label: ClassVar[str | None] = COUNTER_LABEL

    options_type = TwinOptions
    options: TwinOptions

    def __init__(self, name: str, options: TwinOptions | Mapping[str, Any] | None = None,
                 board: Board | None = None) -> None:
        from rig.twin.boards import BOARDS

        super().__init__(name, options, board)
        board = self.board
        if board is None or board.name not in BOARDS:
            raise ConfigError(f"target {name!r}: a twin needs a board with a twin model "
                              f"({', '.join(sorted(BOARDS))}), got "
                              f"{getattr(board, 'name', None)!r}")
        self.board: Board = board
        self.strict = self.options.strict
        self.wall_factor = self.options.wall_factor
        self.image: FirmwareImage | None = None
        self.elf: Path | None = None
        self.machine: TwinMachine | None = None
        self._transport: TwinTransport | None = None
        #: called with every GPIO output change as the firmware makes it (the machine's
        #: `pin_listeners`; kept over restarts)
        self.pin_listeners: list[Callable[[PinEdge], None]] = []

    def wire_marker(self, edges: EdgeQueue) -> None:
        """Drive `edges` (a simulated instrument's logic line, e.g.
        `rig.profile.monitors.sim.logic.EdgeQueue`) from the board's measurement marker pin
        (`boards.<b>.marker`) as the firmware's stores change it, stamped on the host's
        monotonic clock when they execute (docs/twin.md "Marker GPIO")."""
        from rig.profile.monitors.sim.logic import MarkerPin

        if not self.board.marker:
            raise ConfigError(f"target {self.name!r}: board {self.board.name} has no "
                              "marker pin (boards.<b>.marker)")
        self.pin_listeners.append(MarkerPin.parse(self.board.marker).follow(edges))

    def start(self) -> Transport:
        from rig.twin.boards import build_machine
        from rig.twin.transport import TwinTransport

        if self._transport is not None:
            raise RigError(f"{self.describe()}: already started; close() it first")
        self._resolve_image()
        assert self.elf is not None
        if self.machine is None:
            self.machine = build_machine(self.board.name, self.elf, strict=self.strict)
            self.machine.pin_listeners = self.pin_listeners
        self.machine.reset()
        clock = self.board.clock_hz or 1
        self._transport = TwinTransport(self.machine, f"twin:{self.name}", clock,
                                        self.wall_factor)
        return self._transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def expected_firmware(self) -> FirmwareImage | None:
        return self.image

    def describe(self) -> str:
        return f"twin:{self.name} ({self.board.name}, {EMULATED}, {self.elf or 'prebuilt image'})"

    def diagnostics(self) -> str:
        m = self.machine
        if m is None:
            return f"{self.describe()}: not started"
        lines = [f"{self.describe()}: pc={m.pc:#010x}, {m.insns} instructions, "
                 f"{'halted' if m.halted else 'asleep' if m.sleeping else 'running'}"]
        lines += [f"unknown access: {a}" for a in m.unknown[:10]]
        lines += [f"finding: {f}" for f in m.findings[:10]]
        return "\n".join(lines)

    def _resolve_image(self) -> None:
        explicit = self.options.elf
        if explicit:
            self.elf = Path(explicit)
            if not self.elf.is_file():
                raise FirmwareNotFound(f"{self.describe()}: firmware image {self.elf} not found")
            return
        self.image = image_for(self.board.firmware)
        self.elf = self.image.path
