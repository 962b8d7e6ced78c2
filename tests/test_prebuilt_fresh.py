"""The prebuilt images every QEMU test runs were built from the firmware sources of this
checkout: a firmware edit without `make -C firmware prebuilt` fails here, naming the stale
images and the command that fixes it.

No toolchain needed: the manifest records each image's source hash
(`firmware/tools/srchash.py`, what HELLO reports as build_hash), and the check recomputes
it from the sources. Byte-for-byte reproduction of the images from those sources is
tests/test_firmware_manifest.py::test_rebuild_reproduces_prebuilt (needs the cross compiler).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rig import firmware

PREBUILT = firmware.FIRMWARE_SRC / "prebuilt"


def stale_images(prebuilt: Path, firmware_dir: Path) -> list[str]:
    """One line per image of `prebuilt` whose source hash is not `firmware_dir`'s."""
    manifest = firmware.load_manifest(prebuilt)
    lines = []
    for board, image in sorted(manifest.images.items()):
        if not image.source_hash:
            lines.append(f"{board}: {image.file} has no source_hash in {manifest.path}")
            continue
        why = firmware.stale_reason(image, firmware_dir)
        if why is not None:
            lines.append(f"{board}: {why}")
    return lines


def test_prebuilt_images_are_built_from_these_sources() -> None:
    if firmware.source_hash() is None:
        pytest.skip("no firmware sources in this installation (only prebuilt images)")
    stale = stale_images(PREBUILT, firmware.FIRMWARE_SRC)
    assert not stale, (
        f"{len(stale)} prebuilt image(s) do not match the firmware sources; rebuild them "
        "and commit the result: `make -C firmware prebuilt`\n  " + "\n  ".join(stale))


def test_stale_images_are_named(tmp_path: Path) -> None:
    """The check itself: a manifest whose hash differs from the sources' names the image
    and the command; an image without a source hash is stale too."""
    current = firmware.source_hash()
    if current is None:
        pytest.skip("no firmware sources in this installation (only prebuilt images)")
    entries = [{"board": "mps2-an386", "file": "mps2-an386.elf", "sha256": "00" * 32,
                "source_hash": current},
               {"board": "microbit", "file": "microbit.elf", "sha256": "00" * 32,
                "source_hash": "ab" * 32},
               {"board": "stm32", "file": "stm32.elf", "sha256": "00" * 32}]
    (tmp_path / "manifest.json").write_text(json.dumps({"images": entries}))
    stale = stale_images(tmp_path, firmware.FIRMWARE_SRC)
    assert len(stale) == 2, stale
    assert stale[0].startswith("microbit: prebuilt microbit.elf was built from sources "
                               "abababababab")
    assert "make -C firmware prebuilt" in stale[0]
    assert stale[1].startswith("stm32: stm32.elf has no source_hash")
