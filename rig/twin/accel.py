"""The block-counting hook: C when a host compiler is there (built once per source version
into the temp directory), else the same logic in Python. Both fill one `Counter` struct, so
the machine reads the count the same way either way."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("blockcount.c")
REGIONS = 6


class Counter(ctypes.Structure):
    _fields_ = [("insns", ctypes.c_uint64), ("stop_at", ctypes.c_uint64),
                ("blk_addr", ctypes.c_uint64), ("blk_n", ctypes.c_uint32),
                ("blk_size", ctypes.c_uint32), ("halted", ctypes.c_uint32),
                ("n_regions", ctypes.c_uint32), ("outside", ctypes.c_uint64),
                ("base", ctypes.c_uint64 * REGIONS), ("size", ctypes.c_uint64 * REGIONS),
                ("mem", ctypes.c_void_p * REGIONS), ("stop", ctypes.c_void_p)]


_lib: Any = None
_tried = False


def c_hook() -> Any | None:
    """The compiled `twin_on_block`, or None (no compiler, or it failed)."""
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return None
    src = SOURCE.read_bytes()
    tag = hashlib.sha256(src).hexdigest()[:12]
    so = Path(tempfile.gettempdir()) / f"tinyrig-twin-blockcount-{tag}-{os.getuid()}.so"
    if not so.is_file():
        tmp = so.with_suffix(f".{os.getpid()}.tmp")
        proc = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(SOURCE)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            return None
        os.replace(tmp, so)
    _lib = ctypes.CDLL(str(so))
    return _lib


def python_hook(counter: Counter, read: Callable[[int, int], bytes], stop: Callable[[], Any]
                ) -> Callable[[Any, int, int, Any], None]:
    """The same hook in Python (decoded blocks cached by address and size)."""
    cache: dict[tuple[int, int], tuple[int, bool]] = {}

    def on_block(_h: Any, addr: int, size: int, _ud: Any) -> None:
        info = cache.get((addr, size))
        if info is None:
            code = read(addr, size)
            n = i = 0
            while i < size:
                hw = code[i] | (code[i + 1] << 8 if i + 1 < size else 0)
                i += 4 if hw >> 11 >= 0x1D else 2
                n += 1
            info = cache[(addr, size)] = (n, code in (b"\xfe\xe7", b"\xff\xf7\xfe\xbf"))
        n, loop = info
        counter.insns += n
        counter.blk_addr, counter.blk_n, counter.blk_size = addr, n, size
        if loop:
            counter.halted = 1
            stop()
        elif counter.insns >= counter.stop_at:
            stop()

    return on_block
