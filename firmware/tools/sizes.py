#!/usr/bin/env python3
"""Flash, static RAM and stack of firmware images, read from the ELF itself (no toolchain).

Usage: sizes.py DIR_OR_ELF [...]   (a directory: every *.elf in it, e.g. prebuilt/)

flash      bytes programmed: every allocated section with contents (.text, .ARM.exidx,
           the load image of .data)
static_ram .data + .bss (+ .ccm): what the RAM arenas of board_config.h add up to
stack      the stack region (.stack, the linker script's STACK_SIZE)
ram        the main RAM region (linker symbols __ram_origin, __ram_size) and how much of it
           the image uses (static + stack inside it; e.g. not the Nucleo's CCM)
The numbers agree with `arm-none-eabi-size -A`; the manifest records them per image.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

SHF_WRITE, SHF_ALLOC = 0x1, 0x2
SHT_SYMTAB, SHT_NOBITS = 2, 8


def _sections(data: bytes) -> list[tuple[str, int, int, int, int, int]]:
    """(name, type, flags, addr, size, link) of every section of an ELF32 LE file."""
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise ValueError("not a 32-bit little-endian ELF file")
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    raw = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    str_off = raw[shstrndx][4]

    def name(off: int) -> str:
        end = data.index(b"\0", str_off + off)
        return data[str_off + off:end].decode()

    return [(name(s[0]), s[1], s[2], s[3], s[5], s[6]) for s in raw]


def _symbol(data: bytes, wanted: str) -> int | None:
    secs = _sections(data)
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, = struct.unpack_from("<H", data, 0x2E)
    for i, (_, typ, _, _, size, link) in enumerate(secs):
        if typ != SHT_SYMTAB:
            continue
        off = struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize)[4]
        str_off = struct.unpack_from("<IIIIIIIIII", data, shoff + link * shentsize)[4]
        for j in range(size // 16):
            st_name, st_value = struct.unpack_from("<II", data, off + 16 * j)
            end = data.index(b"\0", str_off + st_name)
            if data[str_off + st_name:end] == wanted.encode():
                return int(st_value)
    return None


def elf_sizes(path: str | Path) -> dict[str, int]:
    data = Path(path).read_bytes()
    origin = _symbol(data, "__ram_origin")
    ram = _symbol(data, "__ram_size")
    flash = static = stack = in_ram = 0
    for name, typ, flags, addr, size, _ in _sections(data):
        if not flags & SHF_ALLOC:
            continue
        if typ != SHT_NOBITS:
            flash += size
        if flags & SHF_WRITE and name != ".stack":
            static += size
        if name == ".stack":
            stack += size
        if flags & SHF_WRITE and origin is not None and ram and origin <= addr < origin + ram:
            in_ram += size
    out = {"flash": flash, "static_ram": static, "stack": stack}
    if ram and origin is not None:
        out["ram"] = ram
        out["ram_used"] = in_ram  # static + stack inside the main RAM region (not CCM)
    return out


def main(argv: list[str]) -> int:
    paths: list[Path] = []
    for arg in argv or ["prebuilt"]:
        p = Path(arg)
        paths += sorted(p.glob("*.elf")) if p.is_dir() else [p]
    print(f"{'image':16} {'flash':>8} {'static RAM':>11} {'stack':>7}   main RAM used")
    for p in paths:
        s = elf_sizes(p)
        name = p.parent.name if p.stem == "tinyrig" else p.stem
        ram = s.get("ram")
        share = (f"{s['ram_used']:>8} of {ram // 1024} K ({100 * s['ram_used'] / ram:.0f}%)"
                 if ram else "?")
        print(f"{name:16} {s['flash']:>8} {s['static_ram']:>11} {s['stack']:>7}   {share}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
