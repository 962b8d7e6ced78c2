"""The little of ELF32 (little-endian, ARM) the rig needs without a toolchain: the bytes a
programmer writes, i.e. the PT_LOAD segments with file contents at their physical (load)
address, so a flashed image can be read back and compared."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

PT_LOAD = 1


@dataclass(frozen=True)
class Segment:
    address: int  # p_paddr: where the bytes live in flash (the LMA of .data)
    data: bytes

    @property
    def end(self) -> int:
        return self.address + len(self.data)


def load_segments(path: str | Path) -> list[Segment]:
    """PT_LOAD segments with p_filesz > 0, by address. Raises ValueError for non-ELF32-LE."""
    raw = Path(path).read_bytes()
    if raw[:4] != b"\x7fELF" or len(raw) < 52:
        raise ValueError(f"{path}: not an ELF file")
    if raw[4] != 1 or raw[5] != 1:
        raise ValueError(f"{path}: not a 32-bit little-endian ELF file")
    phoff, = struct.unpack_from("<I", raw, 0x1C)
    phentsize, phnum = struct.unpack_from("<HH", raw, 0x2A)
    out = []
    for i in range(phnum):
        p_type, p_offset, _vaddr, p_paddr, p_filesz, _memsz, _flags, _align = \
            struct.unpack_from("<IIIIIIII", raw, phoff + i * phentsize)
        if p_type == PT_LOAD and p_filesz:
            out.append(Segment(p_paddr, raw[p_offset:p_offset + p_filesz]))
    return sorted(out, key=lambda s: s.address)
