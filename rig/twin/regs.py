"""Register files: an SVD peripheral as storage at its reset values, plus the hooks a
behaviour model overrides. Only registers the SVD declares exist; anything else in the
peripheral's address block is an unknown access (rig.twin.machine logs it with the PC)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rig.twin.svd import Peripheral

if TYPE_CHECKING:
    from rig.twin.machine import TwinMachine


class RegisterFile:
    """One peripheral's registers, word-addressed by offset. Sub-word accesses read/merge
    the containing register (little-endian), as the bus does for 32-bit peripherals."""

    def __init__(self, svd: Peripheral, machine: TwinMachine) -> None:
        self.svd = svd
        self.name = svd.name
        self.base = svd.base
        self.size = svd.size
        self.machine = machine
        self.values: dict[int, int] = {r.offset: r.reset for r in svd.registers}
        self._names = {r.offset: r.name for r in svd.registers}

    def reset(self) -> None:
        """Registers back to the SVD's reset values (models add their own state)."""
        self.values = {r.offset: r.reset for r in self.svd.registers}

    def offset(self, name: str) -> int:
        return self.svd.register(name).offset

    def knows(self, offset: int) -> bool:
        return offset & ~3 in self.values

    # the bus side: returns None for an address that is no register
    def bus_read(self, offset: int, size: int) -> int | None:
        word = offset & ~3
        if word not in self.values:
            return None
        value = self.read(word)
        shift = 8 * (offset & 3)
        return (value >> shift) & ((1 << (8 * size)) - 1)

    def bus_write(self, offset: int, size: int, value: int) -> bool:
        word = offset & ~3
        if word not in self.values:
            return False
        if size < 4:
            shift = 8 * (offset & 3)
            mask = ((1 << (8 * size)) - 1) << shift
            value = (self.values[word] & ~mask) | ((value << shift) & mask)
        self.write(word, value & 0xFFFFFFFF)
        return True

    # what a behaviour model overrides
    def read(self, offset: int) -> int:
        return self.values[offset]

    def write(self, offset: int, value: int) -> None:
        self.values[offset] = value

    def irq_lines(self) -> tuple[int, ...]:
        """Interrupt numbers this peripheral asserts right now (level-sensitive)."""
        return ()

    def reg_name(self, offset: int) -> str:
        return f"{self.name}.{self._names.get(offset & ~3, f'+{offset:#x}')}"


class PinPort(RegisterFile):
    """A GPIO port whose driven pins (outputs, at their latch's level) the machine records:
    subclasses say which pins are driven; every write, and a reset, reports the pins whose
    driven level changed (`TwinMachine.pin_changed`). An input pin drives nothing (0)."""

    def driven(self) -> int:
        raise NotImplementedError

    def reset(self) -> None:
        before = self.driven()
        super().reset()
        self._report(before)

    def bus_write(self, offset: int, size: int, value: int) -> bool:
        before = self.driven()
        known = super().bus_write(offset, size, value)
        self._report(before)
        return known

    def _report(self, before: int) -> None:
        after = self.driven()
        changed = before ^ after
        pin = 0
        while changed:
            if changed & 1:
                self.machine.pin_changed(self, pin, after >> pin & 1)
            changed >>= 1
            pin += 1
