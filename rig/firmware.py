"""Firmware images: where they are, whether they are intact, whether a running device
runs the one we expect, and how to rebuild them.

Prebuilt images and `manifest.json` live in `$TINYRIG_FIRMWARE_DIR` or inside the package
(`rig.resources.firmware_dir`; in a checkout that is `firmware/prebuilt/`). The manifest
names, per board, the ELF, its sha256, the toolchain, the source hash (= HELLO
`build_hash`), the protocol version and the QEMU machine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rig import resources
from rig.errors import BuildFailed, FirmwareMismatch, FirmwareNotFound, ToolMissing

ENV_DIR = resources.FIRMWARE_ENV
#: the firmware sources of a checkout (absent in an installed wheel: then nothing builds)
FIRMWARE_SRC = resources.firmware_sources() or Path(__file__).resolve().parent.parent / "firmware"

APT_ARM_GCC = "apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi"


@dataclass(frozen=True)
class FirmwareImage:
    board: str
    file: str  # as written in the manifest, relative to it
    path: Path
    sha256: str
    source_hash: str
    protocol_version: int | None = None
    qemu_machine: str | None = None
    toolchain: str = ""
    size: Any = None  # the manifest's size record ({text, data, bss}) or a byte count

    def verify(self) -> None:
        """The file exists and its sha256 is the manifest's."""
        if not self.path.is_file():
            raise FirmwareNotFound(f"firmware image {self.path} for board {self.board!r} is "
                                   "listed in the manifest but missing; "
                                   f"{resources.rebuild_hint()}")
        actual = sha256_file(self.path)
        if actual != self.sha256:
            raise FirmwareMismatch(
                f"firmware image {self.path} is corrupt or was replaced: sha256 {actual[:16]}…"
                f" but the manifest says {self.sha256[:16]}…; {resources.rebuild_hint()}")


@dataclass(frozen=True)
class Manifest:
    path: Path
    images: Mapping[str, FirmwareImage]

    def image(self, board: str) -> FirmwareImage:
        try:
            return self.images[board]
        except KeyError:
            raise FirmwareNotFound(
                f"{self.path}: no prebuilt image for board {board!r}; images: "
                f"{', '.join(self.images) or 'none'}; a new board needs its image built "
                "from a tinyrig checkout (`make -C firmware prebuilt`)") from None


def prebuilt_dir() -> Path:
    return resources.firmware_dir()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(directory: Path | None = None) -> Manifest:
    """Read `manifest.json` from `directory` (default: `prebuilt_dir()`)."""
    where = f" (from ${ENV_DIR})" if directory is None and os.environ.get(ENV_DIR) else ""
    directory = Path(directory) if directory is not None else prebuilt_dir()
    path = directory / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FirmwareNotFound(f"{path}: no firmware manifest{where}; "
                               f"{resources.rebuild_hint()}") from None
    except (OSError, ValueError) as exc:
        raise FirmwareNotFound(f"{path}: unreadable manifest: {exc}") from exc
    entries = data.get("images", data) if isinstance(data, dict) else data
    if isinstance(entries, dict):  # also accept {board: {...}}
        entries = [{"board": b, **e} for b, e in entries.items()]
    if not isinstance(entries, list):
        raise FirmwareNotFound(f"{path}: expected a list of images under 'images'")
    images: dict[str, FirmwareImage] = {}
    for i, e in enumerate(entries):
        try:
            images[e["board"]] = FirmwareImage(
                board=e["board"], file=e["file"], path=directory / e["file"],
                sha256=e["sha256"].lower(), source_hash=e.get("source_hash", ""),
                protocol_version=e.get("protocol_version"),
                qemu_machine=e.get("qemu_machine"), toolchain=e.get("toolchain", ""),
                size=e.get("size"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise FirmwareNotFound(f"{path}: image {i} lacks field {exc}; expected board, "
                                   "file, sha256, source_hash") from None
    return Manifest(path, images)


def image_for(board: str, directory: Path | None = None, verify: bool = True) -> FirmwareImage:
    """The prebuilt image for `board` (a manifest board name), sha256-verified."""
    image = load_manifest(directory).image(board)
    if verify:
        image.verify()
    return image


# --- source hash --------------------------------------------------------------------------


def source_hash(firmware_dir: Path | None = None) -> str | None:
    """Hash of the firmware sources as `firmware/tools/srchash.py` computes it (what HELLO
    reports as build_hash); None when the sources are not present (an installed rig)."""
    root = Path(firmware_dir) if firmware_dir is not None else FIRMWARE_SRC
    tool = root / "tools" / "srchash.py"
    if not tool.is_file():
        return None
    try:
        return str(_srchash_module(str(tool)).source_hash(root.resolve()))
    except Exception:  # an incompatible tool version: fall back to its command line
        out = subprocess.run([sys.executable, str(tool), str(root)], capture_output=True,
                             text=True, timeout=60)
        digest = out.stdout.strip().splitlines()[-1:] if out.returncode == 0 else []
        return digest[0] if digest else None


@lru_cache(maxsize=4)
def _srchash_module(tool: str) -> Any:
    spec = importlib.util.spec_from_file_location("tinyrig_srchash", tool)
    if spec is None or spec.loader is None:
        raise ImportError(tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stale_reason(image: FirmwareImage, firmware_dir: Path | None = None) -> str | None:
    """Why the prebuilt image does not match the current sources, or None if it does
    (or the sources are absent, so nothing can be said)."""
    current = source_hash(firmware_dir)
    if current is None or not image.source_hash or current == image.source_hash:
        return None
    return (f"prebuilt {image.file} was built from sources {image.source_hash[:12]}…, but "
            f"firmware/ now hashes to {current[:12]}…; run `make -C firmware prebuilt`")


# --- identity check -----------------------------------------------------------------------


def _hello_field(hello: Any, *names: str) -> Any:
    for name in names:
        if isinstance(hello, Mapping) and name in hello:
            return hello[name]
        if hasattr(hello, name):
            return getattr(hello, name)
    return None


def check_hello(hello: Any, image: FirmwareImage, where: str = "the target") -> None:
    """Raise FirmwareMismatch unless the HELLO (a `rig.protocol.HelloInfo` or a mapping)
    identifies the firmware `image` describes: board, build hash, protocol version."""
    board = _hello_field(hello, "board")
    build = _hello_field(hello, "build_hash", "source_hash") or ""
    proto = _hello_field(hello, "proto_version", "protocol_version")
    version = _hello_field(hello, "fw_version") or "?"
    running = f"board {board!r}, build {str(build)[:12]}…, fw {version}, protocol {proto}"
    expected = (f"board {image.board!r}, build {image.source_hash[:12]}…, protocol "
                f"{image.protocol_version} ({image.path})")
    fix = "flash the expected image with `rig flash`"
    if board != image.board:
        raise FirmwareMismatch(f"wrong firmware on {where}: it runs the image for {running};"
                               f" expected {expected}. Wrong board or wrong image: {fix}")
    if image.protocol_version is not None and proto != image.protocol_version:
        raise FirmwareMismatch(f"protocol version differs on {where}: firmware speaks "
                               f"{proto}, the host expects {image.protocol_version} "
                               f"(running {running}; expected {expected}). {fix}")
    if image.source_hash and build != image.source_hash:
        stale = stale_reason(image)
        hint = (f"; also, {stale}" if stale else
                "; if the sources changed, rebuild with `make -C firmware prebuilt`"
                if resources.firmware_sources() else "")
        raise FirmwareMismatch(f"firmware build differs on {where}: running {running}; "
                               f"expected {expected}. {fix.capitalize()}{hint}")


# --- building -----------------------------------------------------------------------------


def _need_tool(name: str, install: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} not found on PATH; install it with `{install}`")
    return path


def _make(args: list[str], what: str, timeout: float = 600) -> None:
    make = _need_tool("make", "apt-get install -y make")
    if not (FIRMWARE_SRC / "Makefile").is_file():
        raise FirmwareNotFound(f"{FIRMWARE_SRC}: no firmware sources here (an installed rig "
                               f"has only prebuilt images); cannot build {what}")
    cmd = [make, "-C", str(FIRMWARE_SRC), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BuildFailed(f"building {what} failed (`{' '.join(cmd)}`, exit "
                          f"{proc.returncode}):\n{tail}")


def rebuild(board: str, build_dir: Path | None = None) -> Path:
    """Build the board image from source; returns `<build_dir>/<board>/tinyrig.elf`."""
    _need_tool("arm-none-eabi-gcc", APT_ARM_GCC)
    build = Path(build_dir).resolve() if build_dir is not None else FIRMWARE_SRC / "build"
    _make([f"BOARD={board}", f"BUILD={build}"], f"the {board} image")
    elf = build / board / "tinyrig.elf"
    if not elf.is_file():
        raise BuildFailed(f"make succeeded but {elf} does not exist")
    return elf


def make_native(goal: str = "native", build_dir: Path | None = None) -> Path:
    """`make -C firmware <goal> BUILD=<build_dir>` with the host gcc (`native`: the firmware
    and libtinyrig_core.so; `kernels-native`: the kernel libraries). Returns the directory
    the host outputs land in, `<build_dir>/native`. make decides what is out of date."""
    root = Path(build_dir).resolve() if build_dir is not None else FIRMWARE_SRC / "build"
    _need_tool(os.environ.get("HOSTCC", "gcc"), "apt-get install -y gcc")
    _make([f"BUILD={root}", goal], f"the host build `{goal}`")
    return root / "native"


def native_binary(build_dir: Path | None = None, build: bool = True) -> Path:
    """The host-native firmware (`firmware/build/native/tinyrig_fw`), built on demand with
    the host gcc. make decides whether it is out of date, so calling this is cheap."""
    root = Path(build_dir).resolve() if build_dir is not None else FIRMWARE_SRC / "build"
    exe = root / "native" / "tinyrig_fw"
    if build and (FIRMWARE_SRC / "Makefile").is_file():
        make_native("native", root)
    if not exe.is_file():
        how = ("build it with `make -C firmware native`" if resources.firmware_sources()
               else "the native build needs a tinyrig checkout (firmware sources)")
        raise FirmwareNotFound(f"{exe}: no native firmware; {how}")
    return exe
