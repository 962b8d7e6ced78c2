#!/usr/bin/env python3
"""Print the source hash of the firmware tree: sha256 over the sorted relative paths and
contents of every file under firmware/, except build outputs (build/, prebuilt/), the
fuzzing harness and its corpus (fuzz/: never part of an image) and __pycache__. The
firmware reports it in HELLO as build_hash; the manifest calls it source_hash.
Deterministic: independent of checkout location, mtimes and file order.

Usage: srchash.py [FIRMWARE_DIR]   (default: the directory above this script)
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

EXCLUDED_TOP = {"build", "prebuilt", "fuzz"}
EXCLUDED_ANY = {"__pycache__"}


def source_files(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = [
            d for d in dirnames
            if d not in EXCLUDED_ANY and not (rel_dir == Path(".") and d in EXCLUDED_TOP)
        ]
        for name in filenames:
            if name.endswith(".pyc"):
                continue
            out.append((rel_dir / name).as_posix())
    return sorted(out)


def source_hash(root: Path) -> str:
    h = hashlib.sha256()
    for rel in source_files(root):
        data = (root / rel).read_bytes()
        # Length-prefixed records so no two different trees serialise alike.
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    print(source_hash(root.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
