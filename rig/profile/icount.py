"""Exact instruction counts per training phase from QEMU, through the project's TCG plugin.

    counter = InstructionCounter.for_elf(elf, out_dir)   # marker addresses from the ELF
    counter.attach(qemu_target)                          # -plugin libtrcount.so,...
    ... run TRAIN_STEPs ...
    for rec in counter.new_records(): rec.phase("forward").insns, rec.phase("forward").classes

The firmware marks its phases with empty functions `tr_mark_<window>_{begin,end}`
(`firmware/src/tr_marker.h`); the plugin (`firmware/tools/qemu_plugin/`) counts the
instructions executed between them and histograms them by instruction class, one JSON
line per TRAIN_STEP (`rec: step`) or SELECT (`rec: select_msg`). Figures from here are
labelled `instructions (QEMU)`.

The plugin is built from source with the host C compiler on first use (`build_plugin`) into
a per-user cache keyed by the sources' hash; no QEMU headers are involved (the API is
declared in the plugin itself). The package ships the C sources, not a built library: a
QEMU plugin is a host shared object (one per host architecture and libc), the sources are
1,100 lines that build in about a second, and the wheel stays pure Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig import resources
from rig.elf import ElfImage, read_elf
from rig.errors import PluginError, ToolMissing
from rig.protocol import PHASES

LABEL = "instructions (QEMU)"
PLUGIN_SRC = resources.plugin_sources()
MARK_PREFIX = "tr_mark_"
#: windows that produce a record (a JSON line) when they close
RECORD_WINDOWS = ("step", "select_msg")
#: handlers whose instructions land in windows at wall-clock-dependent points
EXCLUDE_SUFFIX = "_Handler"
EXCLUDE_KEEP = ("Reset_Handler",)


# ------------------------------------------------------------------ markers from the ELF


def marker_windows(elf: ElfImage) -> dict[str, tuple[int, int]]:
    """{window: (begin address, end address)} from the `tr_mark_*` symbols."""
    found: dict[str, dict[str, int]] = {}
    for name, sym in elf.functions(MARK_PREFIX).items():
        stem = name[len(MARK_PREFIX):]
        for edge in ("begin", "end"):
            if stem.endswith("_" + edge):
                found.setdefault(stem[:-len(edge) - 1], {})[edge] = sym.address
    windows = {w: (e["begin"], e["end"]) for w, e in found.items() if len(e) == 2}
    broken = sorted(set(found) - set(windows))
    if broken:
        raise PluginError(f"{elf.path}: marker windows without both begin and end: {broken}")
    if "step" not in windows:
        raise PluginError(f"{elf.path}: no tr_mark_step_begin/_end symbols: this firmware "
                          f"predates the phase markers; {resources.rebuild_hint()}")
    return windows


def exclude_ranges(elf: ElfImage) -> list[tuple[int, int]]:
    """[lo, hi) of every exception handler except reset (their instructions are not part of
    any phase; an interrupt lands inside a window at a wall-clock-dependent point)."""
    out = set()
    for name, sym in elf.functions().items():
        if name.endswith(EXCLUDE_SUFFIX) and name not in EXCLUDE_KEEP and sym.size:
            out.add((sym.address, sym.address + sym.size))
    return sorted(out)


def plugin_args(elf: ElfImage, out_file: Path) -> tuple[str, ...]:
    args = [f"out={out_file}"]
    for name, (b, e) in sorted(marker_windows(elf).items()):
        args.append(f"win={name}:{b:x}:{e:x}")
    args += [f"rec={r}" for r in RECORD_WINDOWS if r in marker_windows(elf)]
    args += [f"exclude={lo:x}:{hi:x}" for lo, hi in exclude_ranges(elf)]
    return tuple(args)


# ------------------------------------------------------------------ building the plugin


def _plugin_source_hash() -> str:
    h = hashlib.sha256()
    for f in sorted(PLUGIN_SRC.iterdir()):
        if f.is_file():
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def plugin_build_dir() -> Path:
    """$TINYRIG_PLUGIN_DIR, else the checkout's firmware/build/qemu_plugin, else (an
    installed wheel) the user cache, `~/.cache/tinyrig/qemu_plugin`."""
    base = os.environ.get("TINYRIG_PLUGIN_DIR")
    if base:
        return Path(base)
    src = resources.firmware_sources()
    return src / "build" / "qemu_plugin" if src else resources.user_cache_dir() / "qemu_plugin"


def build_plugin(out_dir: Path | None = None) -> Path:
    """Build (if its sources changed) and return libtrcount.so. Needs `make` and a host C
    compiler; the result lives outside the firmware source hash (`plugin_build_dir`).
    Concurrent builders (pytest-xdist) each build in a private directory and move the
    results into place atomically."""
    out = (out_dir or plugin_build_dir()) / _plugin_source_hash()
    lib = out / "libtrcount.so"
    if lib.is_file() and (out / "libthumbclass.so").is_file():
        return lib
    for tool in ("make", os.environ.get("HOSTCC", "gcc")):
        if shutil.which(tool) is None:
            raise ToolMissing(f"{tool} not found: needed to build the QEMU plugin "
                              "(apt-get install -y build-essential)")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out))
    try:
        proc = subprocess.run(["make", "-C", str(PLUGIN_SRC), f"OUT={tmp}"],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not (tmp / "libtrcount.so").is_file():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            raise PluginError(f"building the QEMU plugin failed:\n{tail}")
        for name in ("libthumbclass.so", "libtrcount.so"):  # the plugin last: it is the flag
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return lib


def decoder_library() -> Path:
    """The plugin's instruction classifier as a plain shared library (tests, tools)."""
    return build_plugin().parent / "libthumbclass.so"


# ------------------------------------------------------------------ records


@dataclass(frozen=True)
class WindowCounts:
    """Instructions of one window in one record, with their class histogram."""

    entries: int
    insns: int
    classes: Mapping[str, int]
    extra: Mapping[str, int]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> WindowCounts:
        return cls(int(d["entries"]), int(d["insns"]), dict(d.get("classes", {})),
                   dict(d.get("extra", {})))

    @classmethod
    def zero(cls) -> WindowCounts:
        return cls(0, 0, {}, {})

    def __add__(self, other: WindowCounts) -> WindowCounts:
        def merge(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
            return {k: a.get(k, 0) + b.get(k, 0) for k in sorted(set(a) | set(b))}
        return WindowCounts(self.entries + other.entries, self.insns + other.insns,
                            merge(self.classes, other.classes), merge(self.extra, other.extra))

    def __sub__(self, other: WindowCounts) -> WindowCounts:
        def diff(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
            return {k: a.get(k, 0) - b.get(k, 0) for k in sorted(set(a) | set(b))
                    if a.get(k, 0) - b.get(k, 0)}
        return WindowCounts(self.entries, self.insns - other.insns,
                            diff(self.classes, other.classes), diff(self.extra, other.extra))

    def as_dict(self) -> dict[str, Any]:
        return {"entries": self.entries, "insns": self.insns, "classes": dict(self.classes),
                "extra": dict(self.extra)}


@dataclass(frozen=True)
class StepCounts:
    """One plugin record: a TRAIN_STEP (`kind == "step"`) or a SELECT."""

    kind: str
    seq: int
    unbalanced: int
    windows: Mapping[str, WindowCounts]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> StepCounts:
        return cls(str(d["rec"]), int(d["seq"]), int(d.get("unbalanced", 0)),
                   {k: WindowCounts.from_json(v) for k, v in d["windows"].items()})

    @property
    def total(self) -> WindowCounts:
        """The record window itself: everything from step begin to step end."""
        return self.windows[self.kind]

    def phase(self, name: str) -> WindowCounts:
        return self.windows.get(name, WindowCounts.zero())

    @property
    def other(self) -> WindowCounts:
        """Inside the record but in no phase: counter reads, marker calls, the mask scan
        that finds the lowest selected layer."""
        inside = WindowCounts.zero()
        for p in PHASES:
            inside = inside + self.phase(p)
        return self.total - inside

    def phase_insns(self) -> dict[str, int]:
        return {p: self.phase(p).insns for p in PHASES}

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "seq": self.seq, "unbalanced": self.unbalanced,
                "windows": {k: v.as_dict() for k, v in self.windows.items()}}


@dataclass
class PluginLog:
    """Reads the plugin's JSON lines as they are appended (one QEMU run may restart)."""

    path: Path
    _offset: int = 0
    header: dict[str, Any] | None = None
    exits: list[dict[str, Any]] = field(default_factory=list)

    def _lines(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            while True:
                line = f.readline()
                if not line or not line.endswith(b"\n"):  # a partial line: read it later
                    break
                self._offset += len(line)
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise PluginError(f"{self.path}: bad plugin output line: {exc}") from exc

    def new_records(self) -> list[StepCounts]:
        out = []
        for d in self._lines():
            kind = d.get("rec")
            if kind == "start":
                self.header = d
            elif kind == "exit":
                self.exits.append(d)
            else:
                rec = StepCounts.from_json(d)
                if rec.unbalanced:
                    raise PluginError(f"{self.path}: record {kind} #{rec.seq}: phase markers "
                                      f"out of order ({rec.unbalanced}x); firmware and plugin "
                                      "disagree about the windows")
                out.append(rec)
        return out


# ------------------------------------------------------------------ attaching to QEMU


class InstructionCounter:
    """Owns the plugin output file of one QEMU target and reads it step by step."""

    def __init__(self, elf: str | Path, out_file: Path) -> None:
        self.elf = read_elf(elf)
        self.windows = marker_windows(self.elf)
        self.out_file = Path(out_file)
        self.out_file.parent.mkdir(parents=True, exist_ok=True)
        if self.out_file.exists():
            self.out_file.unlink()
        self.log = PluginLog(self.out_file)
        self.library = build_plugin()

    @property
    def args(self) -> tuple[str, ...]:
        return plugin_args(self.elf, self.out_file)

    def attach(self, target: Any) -> None:
        """Make a QEMU target load the plugin when it (re)starts."""
        if not hasattr(target, "set_plugin"):
            raise PluginError(f"{target.describe()}: instruction counts need a QEMU target "
                              "(kind qemu); this one reports device counters only")
        target.set_plugin(self.library, self.args)

    def new_records(self) -> list[StepCounts]:
        return self.log.new_records()

    def take_step(self) -> StepCounts:
        """The record of the TRAIN_STEP that just ran (exactly one must have appeared)."""
        recs = [r for r in self.new_records() if r.kind == "step"]
        if len(recs) != 1:
            raise PluginError(f"{self.out_file}: expected one new step record, found "
                              f"{len(recs)} (did the target restart, or the step fail?)")
        return recs[0]
