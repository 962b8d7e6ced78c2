"""Helpers shared by the profiling tests (not a test module)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rig import firmware
from rig.elf import read_elf
from rig.errors import RigError
from rig.profile.icount import PluginError, build_plugin, marker_windows


def need_plugin() -> Path:
    """The built plugin, or skip (no host compiler)."""
    if shutil.which("make") is None or shutil.which("gcc") is None:
        pytest.skip("host gcc and make are needed to build the QEMU plugin")
    return build_plugin()


def need_qemu() -> None:
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not installed (apt-get install -y qemu-system-arm)")


def marked_image(board: str = "mps2-an386") -> Path:
    """The prebuilt image of `board`, which must carry the phase markers."""
    try:
        image = firmware.image_for(board)
    except RigError as exc:
        pytest.fail(f"no prebuilt image for {board}: {exc}")
    try:
        marker_windows(read_elf(image.path))
    except PluginError as exc:
        pytest.fail(f"{exc}")
    return image.path
