"""The vendors' register maps: the SVD files that ship inside pyocd, read through pyocd's
own SVD parser (`pyocd.debug.svd`), flattened into plain dataclasses.

ST's `STM32F429x.svd` and Nordic's `nrf52840.svd` / `nrf51.svd` give every peripheral's
base address, register offsets, field positions, reset values and interrupt numbers. The
twins take their memory map and reset values from here, and `tests/test_svd_boards.py`
checks the board support code's C definitions against the same data.
"""

from __future__ import annotations

import functools
import zipfile
from dataclasses import dataclass
from importlib import resources

from rig.errors import RigError

#: where pyocd keeps its built-in SVD files (inside the installed package)
SVD_ZIP = "debug/svd/svd_data.zip"


class SvdError(RigError):
    """pyocd or one of its SVD files is missing, or a name is not in the file."""


@dataclass(frozen=True)
class Field:
    name: str
    offset: int  # lowest bit
    width: int
    #: enumerated value name -> value (empty when the SVD lists none)
    values: tuple[tuple[str, int], ...] = ()

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.offset


@dataclass(frozen=True)
class Register:
    name: str
    offset: int
    size: int  # bits
    reset: int
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise SvdError(f"register {self.name} has no field {name!r} "
                       f"(has {', '.join(f.name for f in self.fields)})")


@dataclass(frozen=True)
class Peripheral:
    name: str
    base: int
    size: int  # bytes of its address block
    registers: tuple[Register, ...]
    interrupts: tuple[tuple[str, int], ...]

    def register(self, name: str) -> Register:
        for r in self.registers:
            if r.name == name:
                return r
        raise SvdError(f"peripheral {self.name} has no register {name!r}")

    def at(self, offset: int) -> Register | None:
        for r in self.registers:
            if r.offset <= offset < r.offset + r.size // 8:
                return r
        return None


@dataclass(frozen=True)
class Device:
    name: str
    peripherals: dict[str, Peripheral]

    def peripheral(self, name: str) -> Peripheral:
        try:
            return self.peripherals[name]
        except KeyError:
            raise SvdError(f"{self.name}: no peripheral {name!r}") from None

    def register(self, path: str) -> Register:
        """`"RCC.CR"` -> the register."""
        periph, _, reg = path.partition(".")
        return self.peripheral(periph).register(reg)


def _flatten_field(f: object) -> Field:
    values: list[tuple[str, int]] = []
    for group in getattr(f, "enumerated_values", None) or ():
        # pyocd gives a flat list of SVDEnumeratedValue (some SVDs nest it in a group)
        for ev in group if isinstance(group, list) else [group]:
            if getattr(ev, "value", None) is not None:
                values.append((str(ev.name), int(ev.value)))
    return Field(str(f.name), int(f.bit_offset), int(f.bit_width),  # type: ignore[attr-defined]
                 tuple(values))


@functools.cache
def load_device(svd_name: str) -> Device:
    """One of pyocd's built-in SVD files (e.g. "STM32F429x.svd"), parsed once per process."""
    try:
        from pyocd.debug.svd.parser import SVDParser
    except ImportError as exc:  # pragma: no cover - pyocd is a dependency
        raise SvdError("the vendors' SVD files come with pyocd: pip install pyocd") from exc
    try:
        with resources.files("pyocd").joinpath(SVD_ZIP).open("rb") as stream, \
                zipfile.ZipFile(stream) as zf, zf.open(svd_name) as svd:
            dev = SVDParser.for_xml_file(svd).get_device()
    except (KeyError, FileNotFoundError, zipfile.BadZipFile) as exc:
        raise SvdError(f"pyocd's {SVD_ZIP} has no usable {svd_name}: {exc}") from exc
    peripherals: dict[str, Peripheral] = {}
    for p in dev.peripherals:
        regs = []
        for r in p.registers:
            size = int(r.size or p.size or 32)
            reset = int(r.reset_value if r.reset_value is not None else (p.reset_value or 0))
            regs.append(Register(str(r.name), int(r.address_offset), size, reset,
                                 tuple(_flatten_field(f) for f in (r.fields or ()))))
        block = p.address_block
        size = int(block.size) if block is not None else 0x400
        irqs = tuple(sorted({(str(i.name), int(i.value)) for i in (p.interrupts or ())}))
        peripherals[str(p.name)] = Peripheral(str(p.name), int(p.base_address), size,
                                              tuple(sorted(regs, key=lambda r: r.offset)), irqs)
    return Device(str(dev.name), peripherals)
