"""The rig's one ELF reader: just enough ELF32 (little-endian, ARM) for symbols and segments.

Users: the pyocd target (`load_segments`: the bytes a programmer writes, at their load
address, to read the flash back and compare), the instruction-count tools (the marker and
handler symbols `tr_mark_<window>_{begin,end}`, `*_Handler`, and the ARM mapping symbols
`$t`/`$d` that separate code from literal pools), and the unicorn cross-check (its memory
image from the PT_LOAD segments).

Why our own ~150 lines and not pyelftools: pyelftools reaches us only as a dependency of
pyocd, which the rig imports lazily and only for real boards; the profile tools and the
tests must work without it. The format is the System V gABI (ELF header, section headers,
SHT_SYMTAB + its string table, PT_LOAD program headers); errors are `ElfError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from rig.errors import ElfError

SHT_SYMTAB = 2
PT_LOAD = 1
STT_FUNC = 2
EM_ARM = 40


@dataclass(frozen=True)
class Symbol:
    name: str
    value: int  # as stored: Thumb functions have bit 0 set
    size: int
    kind: int  # STT_*
    bind: int  # STB_*

    @property
    def address(self) -> int:
        """Code address (bit 0 cleared for Thumb functions)."""
        return self.value & ~1 if self.kind == STT_FUNC else self.value


@dataclass(frozen=True)
class Segment:
    vaddr: int
    paddr: int  # where the bytes live in flash (the LMA of .data)
    data: bytes  # file contents (filesz)
    memsz: int
    flags: int

    @property
    def address(self) -> int:
        """The load address: where a programmer writes `data`."""
        return self.paddr

    @property
    def end(self) -> int:
        return self.paddr + len(self.data)


@dataclass(frozen=True)
class ElfImage:
    path: Path
    entry: int
    symbols: dict[str, Symbol]
    segments: list[Segment]
    #: ARM ELF mapping symbols, sorted: (address, "t" Thumb code | "d" data | "a" Arm code)
    mapping: tuple[tuple[int, str], ...] = ()

    def symbol(self, name: str) -> Symbol:
        try:
            return self.symbols[name]
        except KeyError:
            raise ElfError(f"{self.path}: no symbol {name!r}") from None

    def functions(self, prefix: str = "") -> dict[str, Symbol]:
        return {n: s for n, s in self.symbols.items()
                if s.kind == STT_FUNC and n.startswith(prefix)}

    def code_ranges(self, sym: Symbol) -> list[tuple[int, int]]:
        """[lo, hi) pieces of a function that are Thumb code, not literal pools (from the
        $t / $d mapping symbols; the whole function if the image has none)."""
        lo, hi = sym.address, sym.address + sym.size
        if not self.mapping:
            return [(lo, hi)]
        state = "t"
        for addr, kind in self.mapping:  # state in force at lo
            if addr > lo:
                break
            state = kind
        out, start = [], lo if state == "t" else None
        for addr, kind in self.mapping:
            if addr <= lo or addr >= hi:
                continue
            if kind == "t" and start is None:
                start = addr
            elif kind != "t" and start is not None:
                out.append((start, addr))
                start = None
        if start is not None:
            out.append((start, hi))
        return out

    def read(self, address: int, size: int) -> bytes:
        """Bytes of the loaded image at `address` (from the segments' file contents)."""
        for seg in self.segments:
            if seg.vaddr <= address and address + size <= seg.vaddr + len(seg.data):
                off = address - seg.vaddr
                return seg.data[off:off + size]
        raise ElfError(f"{self.path}: {size} bytes at {address:#x} are not in a loaded segment")


def read_elf(path: str | Path) -> ElfImage:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ElfError(f"cannot read {p}: {exc}") from exc
    if data[:4] != b"\x7fELF" or len(data) < 52:
        raise ElfError(f"{p}: not an ELF file")
    if data[4] != 1 or data[5] != 1:
        raise ElfError(f"{p}: not a little-endian ELF32 file")
    (e_type, e_machine, _ver, entry, phoff, shoff, _flags, _ehsize, phentsize, phnum,
     shentsize, shnum, _shstrndx) = struct.unpack_from("<HHIIIIIHHHHHH", data, 16)
    del e_type
    if e_machine != EM_ARM:
        raise ElfError(f"{p}: machine {e_machine}, not ARM")
    try:
        segments = []
        for i in range(phnum):
            (p_type, p_off, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags,
             _align) = struct.unpack_from("<IIIIIIII", data, phoff + i * phentsize)
            if p_type == PT_LOAD:
                segments.append(Segment(p_vaddr, p_paddr, data[p_off:p_off + p_filesz],
                                        p_memsz, p_flags))
        sections = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize)
                    for i in range(shnum)]
        symbols: dict[str, Symbol] = {}
        mapping: list[tuple[int, str]] = []
        for sh in sections:
            if sh[1] != SHT_SYMTAB:
                continue
            off, size, link, entsize = sh[4], sh[5], sh[6], sh[9] or 16
            str_off = sections[link][4]
            for k in range(size // entsize):
                st_name, st_value, st_size, st_info, _other, _shndx = struct.unpack_from(
                    "<IIIBBH", data, off + k * entsize)
                if not st_name:
                    continue
                end = data.index(b"\0", str_off + st_name)
                name = data[str_off + st_name:end].decode("ascii", "replace")
                if name.startswith("$"):  # mapping symbols $t, $d, $a (+ ".suffix")
                    if name[1:2] in ("t", "d", "a") and (len(name) == 2 or name[2] == "."):
                        mapping.append((st_value & ~1, name[1]))
                    continue
                sym = Symbol(name, st_value, st_size, st_info & 0xF, st_info >> 4)
                # Prefer a global definition over a local one of the same name.
                if name not in symbols or (symbols[name].bind == 0 and sym.bind != 0):
                    symbols[name] = sym
    except (struct.error, ValueError, IndexError) as exc:
        raise ElfError(f"{p}: damaged ELF ({exc})") from exc
    return ElfImage(p, entry, symbols, segments, tuple(sorted(set(mapping))))


def load_segments(path: str | Path) -> list[Segment]:
    """The bytes a programmer writes: PT_LOAD segments with file contents, by load address."""
    return sorted((s for s in read_elf(path).segments if s.data), key=lambda s: s.paddr)
