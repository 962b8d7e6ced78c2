#!/usr/bin/env python3
"""Write prebuilt/manifest.json describing the prebuilt firmware images.

Usage: manifest.py --build BUILD_DIR --out PREBUILT_DIR BOARD [BOARD ...]

Per image: board, file (relative to the manifest), sha256 of the ELF, size (text/data/bss
from arm-none-eabi-size), memory (flash / static RAM / stack / RAM, tools/sizes.py),
toolchain (first line of arm-none-eabi-gcc --version),
source_hash (tools/srchash.py = HELLO build_hash), protocol_version (src/wire_ids.h),
qemu_machine and pyocd_target (boards/<board>/board.mk; null when the board has none).
No timestamps: the manifest is reproducible.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

FW = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(FW / "tools"))
from sizes import elf_sizes  # noqa: E402
from srchash import source_hash  # noqa: E402


def tool_first_line(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[0]


def elf_size(elf: Path, cross: str) -> dict[str, int]:
    out = subprocess.run([f"{cross}size", str(elf)], check=True, capture_output=True,
                         text=True).stdout.splitlines()
    text, data, bss = (int(v) for v in out[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def board_var(board: str, name: str, required: bool = True) -> str | None:
    mk = (FW / "boards" / board / "board.mk").read_text()
    m = re.search(rf"^{name}\s*:?=\s*(\S+)", mk, re.M)
    if not m:
        if required:
            raise SystemExit(f"boards/{board}/board.mk: no {name}")
        return None
    return m.group(1)


def protocol_version() -> int:
    m = re.search(r"#define TR_PROTO_VERSION (\d+)u?", (FW / "src" / "wire_ids.h").read_text())
    if not m:
        raise SystemExit("src/wire_ids.h: no TR_PROTO_VERSION")
    return int(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cross", default="arm-none-eabi-")
    ap.add_argument("boards", nargs="+")
    a = ap.parse_args()
    out = Path(a.out)
    src_hash = source_hash(FW)
    toolchain = tool_first_line([f"{a.cross}gcc", "--version"])
    images = []
    for board in sorted(a.boards):
        elf = out / f"{board}.elf"
        built = Path(a.build) / board / "tinyrig.elf"
        if elf.read_bytes() != built.read_bytes():
            raise SystemExit(f"{elf} differs from {built}")
        qemu = board_var(board, "QEMU_MACHINE")
        images.append({
            "board": board,
            "file": elf.name,
            "sha256": hashlib.sha256(elf.read_bytes()).hexdigest(),
            "size": elf_size(elf, a.cross),
            "memory": elf_sizes(elf),  # flash, static_ram, stack, ram, ram_used (sizes.py)
            "toolchain": toolchain,
            "source_hash": src_hash,
            "protocol_version": protocol_version(),
            # "none": a real board only (flashed with pyocd, PYOCD_TARGET)
            "qemu_machine": None if qemu == "none" else qemu,
            "pyocd_target": board_var(board, "PYOCD_TARGET", required=False),
        })
    manifest = {"manifest_version": 1, "images": images}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out / 'manifest.json'} ({len(images)} image(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
