"""Prebuilt images and their manifest: lookup, sha256 verification, HELLO identity checks,
source hash, rebuilding."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rig import firmware
from rig.errors import FirmwareMismatch, ToolMissing
from rig.firmware import (
    FirmwareImage,
    FirmwareNotFound,
    check_hello,
    image_for,
    load_manifest,
)

ELF = b"\x7fELF fake image for the manifest tests"
SRC_HASH = "ab" * 32


def make_prebuilt(directory: Path, board: str = "mps2-an386", data: bytes = ELF,
                  **override: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{board}.elf").write_bytes(data)
    entry = {"board": board, "file": f"{board}.elf",
             "sha256": hashlib.sha256(data).hexdigest(),
             "size": {"text": 10, "data": 0, "bss": 0}, "toolchain": "gcc",
             "source_hash": SRC_HASH, "protocol_version": 1, "qemu_machine": board,
             **override}
    (directory / "manifest.json").write_text(json.dumps({"manifest_version": 1,
                                                         "images": [entry]}))
    return directory


def hello(**kw: object) -> dict[str, object]:
    return {"board": "mps2-an386", "build_hash": SRC_HASH, "proto_version": 1,
            "fw_version": "0.1.0", **kw}


def test_image_for_verifies(tmp_path: Path) -> None:
    d = make_prebuilt(tmp_path)
    img = image_for("mps2-an386", d)
    assert img.path == d / "mps2-an386.elf" and img.protocol_version == 1
    assert img.qemu_machine == "mps2-an386" and img.size["text"] == 10


def test_env_var_selects_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_prebuilt(tmp_path / "fw")
    monkeypatch.setenv(firmware.ENV_DIR, str(tmp_path / "fw"))
    assert firmware.prebuilt_dir() == tmp_path / "fw"
    assert image_for("mps2-an386").path == tmp_path / "fw" / "mps2-an386.elf"


def test_sha_mismatch(tmp_path: Path) -> None:
    d = make_prebuilt(tmp_path)
    (d / "mps2-an386.elf").write_bytes(ELF + b"tampered")
    with pytest.raises(FirmwareMismatch, match=r"corrupt or was replaced.*make -C firmware "
                                               r"prebuilt"):
        image_for("mps2-an386", d)
    assert image_for("mps2-an386", d, verify=False).board == "mps2-an386"


def test_missing_image_file(tmp_path: Path) -> None:
    d = make_prebuilt(tmp_path)
    (d / "mps2-an386.elf").unlink()
    with pytest.raises(FirmwareNotFound, match="listed in the manifest but missing"):
        image_for("mps2-an386", d)


def test_unknown_board_lists_images(tmp_path: Path) -> None:
    with pytest.raises(FirmwareNotFound, match=r"no prebuilt image for board 'microbit'; "
                                               r"images: mps2-an386"):
        image_for("microbit", make_prebuilt(tmp_path))


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(FirmwareNotFound, match="no firmware manifest.*make -C firmware"):
        load_manifest(tmp_path)


def test_malformed_manifest(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"images": [{"board": "x"}]}))
    with pytest.raises(FirmwareNotFound, match="image 0 lacks field 'file'"):
        load_manifest(tmp_path)


# --- check_hello ------------------------------------------------------------------------------


@pytest.fixture
def image(tmp_path: Path) -> FirmwareImage:
    return image_for("mps2-an386", make_prebuilt(tmp_path))


def test_check_hello_accepts_matching(image: FirmwareImage) -> None:
    check_hello(hello(), image)


def test_check_hello_accepts_protocol_hello_info(image: FirmwareImage) -> None:
    protocol = pytest.importorskip("rig.protocol")
    info = protocol.HelloInfo(proto_version=1, counter_kind=2, max_payload=1024,
                              clock_hz=25_000_000, param_capacity=1, data_capacity=1,
                              max_layers=4, max_width=64, max_batch=32, strategies=1,
                              board="mps2-an386", build_hash=SRC_HASH, fw_version="0.1")
    check_hello(info, image)
    with pytest.raises(FirmwareMismatch):
        check_hello(protocol.HelloInfo(**{**info.__dict__, "board": "microbit"}), image)


def test_board_mismatch(image: FirmwareImage) -> None:
    with pytest.raises(FirmwareMismatch) as info:
        check_hello(hello(board="netduinoplus2"), image, where="qemu:x")
    msg = str(info.value)
    assert "wrong firmware on qemu:x" in msg
    assert "'netduinoplus2'" in msg and "expected board 'mps2-an386'" in msg
    assert "rig flash" in msg


def test_build_hash_mismatch(image: FirmwareImage) -> None:
    with pytest.raises(FirmwareMismatch) as info:
        check_hello(hello(build_hash="cd" * 32), image)
    msg = str(info.value)
    assert "firmware build differs" in msg
    assert "build cdcdcdcdcdcd" in msg and "build abababababab" in msg
    assert "rig flash" in msg and "make -C firmware prebuilt" in msg


def test_protocol_mismatch(image: FirmwareImage) -> None:
    with pytest.raises(FirmwareMismatch, match="firmware speaks 2, the host expects 1"):
        check_hello(hello(proto_version=2), image)


# --- the repository's own firmware -------------------------------------------------------------


def test_repo_manifest_images_verify() -> None:
    if not (firmware.FIRMWARE_SRC / "prebuilt" / "manifest.json").is_file():
        pytest.fail("no firmware/prebuilt/manifest.json in this checkout: run "
                    "`make -C firmware prebuilt`")
    manifest = load_manifest(firmware.FIRMWARE_SRC / "prebuilt")
    assert manifest.images
    for img in manifest.images.values():
        img.verify()


def test_source_hash_agrees_with_tool() -> None:
    tool = firmware.FIRMWARE_SRC / "tools" / "srchash.py"
    if not tool.is_file():
        pytest.skip("firmware sources not present")
    out = subprocess.run([sys.executable, str(tool)], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert firmware.source_hash() == out


def test_source_hash_none_without_sources(tmp_path: Path) -> None:
    assert firmware.source_hash(tmp_path) is None


def test_stale_reason(tmp_path: Path) -> None:
    fw = tmp_path / "firmware"
    (fw / "tools").mkdir(parents=True)
    (fw / "tools" / "srchash.py").write_text("def source_hash(root):\n    return 'ef' * 32\n")
    img = image_for("mps2-an386", make_prebuilt(tmp_path / "pre"))
    assert "make -C firmware prebuilt" in (firmware.stale_reason(img, fw) or "")
    same = FirmwareImage(**{**img.__dict__, "source_hash": "ef" * 32})
    assert firmware.stale_reason(same, fw) is None


def test_rebuild_needs_cross_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match="apt-get install -y gcc-arm-none-eabi"):
        firmware.rebuild("mps2-an386", tmp_path / "build")


def makefile_boards() -> list[str]:
    """`BOARDS` of firmware/Makefile: what `make -C firmware prebuilt` builds."""
    mk = firmware.FIRMWARE_SRC / "Makefile"
    if not mk.is_file():
        return ["mps2-an386"]
    m = re.search(r"^BOARDS\s*:=\s*(.+)$", mk.read_text(), re.M)
    return m.group(1).split() if m else ["mps2-an386"]


@pytest.mark.slow
@pytest.mark.toolchain
@pytest.mark.parametrize("board", makefile_boards())
def test_rebuild_reproduces_prebuilt(tmp_path: Path, board: str) -> None:
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    if not (firmware.FIRMWARE_SRC / "Makefile").is_file():
        pytest.skip("firmware sources not present")
    elf = firmware.rebuild(board, tmp_path / "build")
    assert elf == tmp_path / "build" / board / "tinyrig.elf" and elf.stat().st_size
    try:
        img = image_for(board)
    except (FirmwareNotFound, FirmwareMismatch):
        return
    if firmware.stale_reason(img) is None:  # same sources: reproducible, same bytes
        assert firmware.sha256_file(elf) == img.sha256


def test_manifest_has_every_board_with_its_memory() -> None:
    """`make prebuilt` builds every board of the Makefile, and the manifest's memory record
    (flash / static RAM / stack) is what tools/sizes.py reads from the image itself."""
    pre = firmware.FIRMWARE_SRC / "prebuilt"
    tool = firmware.FIRMWARE_SRC / "tools" / "sizes.py"
    if not (pre / "manifest.json").is_file() or not tool.is_file():
        pytest.skip("no prebuilt images or firmware tools in this checkout")
    entries = {e["board"]: e for e in json.loads((pre / "manifest.json").read_text())["images"]}
    assert set(makefile_boards()) <= set(entries)
    spec = importlib.util.spec_from_file_location("tinyrig_sizes", tool)
    assert spec is not None and spec.loader is not None
    sizes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sizes)
    for board, entry in entries.items():
        mem = entry.get("memory")
        assert mem == sizes.elf_sizes(pre / entry["file"]), board
        assert mem["ram_used"] <= mem["ram"], f"{board} does not fit its RAM"
        # real boards have no QEMU machine but a pyocd target, and vice versa
        assert (entry["qemu_machine"] is None) == (entry["pyocd_target"] is not None), board


def test_native_binary() -> None:
    if shutil.which("gcc") is None or not (firmware.FIRMWARE_SRC / "Makefile").is_file():
        pytest.skip("host gcc or firmware sources missing")
    exe = firmware.native_binary()
    assert exe.name == "tinyrig_fw" and os.access(exe, os.X_OK)
