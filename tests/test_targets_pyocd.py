"""The pyocd target at the pyocd API boundary: no probe exists here, so `ConnectHelper`,
`FileProgrammer` and `list_ports` are replaced by fakes that behave like the real ones
(same signatures; the programmer parses the ELF's PT_LOAD segments with pyelftools as
pyocd does and writes them to the fake chip's flash; `session_with_chosen_probe` matches
unique ids by substring and returns None when nothing matches). Behind the fake probe a
fake board serves the wire protocol on a real pseudo-terminal, so the serial side (port
lookup by USB serial number, exclusive open, re-enumeration) is the real pyserial code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pty
import select
import struct
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import serial
from elftools.elf.elffile import ELFFile

from rig import firmware
from rig.config import Board, parse_config
from rig.connection import connect
from rig.errors import (
    FirmwareMismatch,
    FlashVerifyError,
    PortBusy,
    ProbeNotFound,
    TargetUnavailable,
    WrongTarget,
)
from rig.link.frame import FrameDecoder, Packet, encode_frame
from rig.protocol import HelloInfo, MsgType
from rig.targets import Flashable, resolve_target
from rig.targets import pyocd as pyocd_target
from rig.targets.pyocd import PyocdTarget

BOARD = Board(name="nucleo-f429zi", cpu="cortex-m4f", clock_hz=168_000_000,
              firmware="nucleo-f429zi", pyocd_target="stm32f429xi")
SRC_HASH = "5a" * 32
OLD_HASH = "0d" * 32
UID = "066DFF555150898367094540"  # an ST-LINK/V2-1 serial number
FLASH_BASE = 0x08000000


# --- a firmware image and its manifest ------------------------------------------------------


def write_elf(path: Path, segments: list[tuple[int, bytes, int]]) -> None:
    """A minimal ELF32 LE ARM executable: (paddr, data, memsz) PT_LOAD segments, no sections."""
    ph_off, ph_size = 52, 32
    data_off = ph_off + ph_size * len(segments)
    header = struct.pack("<4sBBBB8sHHIIIIIHHHHHH", b"\x7fELF", 1, 1, 1, 0, b"", 2, 40, 1,
                         segments[0][0] + 1, ph_off, 0, 0x05000400, 52, ph_size,
                         len(segments), 40, 0, 0)
    phdrs, blobs, off = b"", b"", data_off
    for paddr, data, memsz in segments:
        phdrs += struct.pack("<IIIIIIII", 1, off, paddr, paddr, len(data), memsz, 5, 4)
        blobs += data
        off += len(data)
    path.write_bytes(header + phdrs + blobs)


@pytest.fixture
def image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> firmware.FirmwareImage:
    d = tmp_path / "prebuilt"
    d.mkdir()
    text = bytes((i * 7 + 3) & 0xFF for i in range(3000))
    data = b"DATA\x01\x02\x03\x04"
    elf = d / "nucleo-f429zi.elf"
    # .text, .data's load image right after it (LMA), and a NOLOAD .bss (no file bytes)
    write_elf(elf, [(FLASH_BASE, text, len(text)),
                    (FLASH_BASE + len(text), data, len(data)), (0x20000000, b"", 4096)])
    entry = {"board": "nucleo-f429zi", "file": elf.name,
             "sha256": hashlib.sha256(elf.read_bytes()).hexdigest(), "source_hash": SRC_HASH,
             "protocol_version": 1, "qemu_machine": None, "pyocd_target": "stm32f429xi"}
    (d / "manifest.json").write_text(json.dumps({"manifest_version": 1, "images": [entry]}))
    monkeypatch.setenv(firmware.ENV_DIR, str(d))
    return firmware.image_for("nucleo-f429zi")


# --- the fake board: flash, chip id, firmware identity, a UART on a pty ---------------------


class FakeBoard:
    """What sits behind the probe. The firmware it runs follows from its flash: the image's
    bytes -> HELLO with the image's build hash; `old_firmware` -> a stale build; erased ->
    silent."""

    def __init__(self, image: firmware.FirmwareImage | None, runs: str = "old") -> None:
        self.flash: dict[int, int] = {}
        self.image = image
        self.chip_id = 0x20016419  # DBGMCU_IDCODE: REV_ID 0x2001, DEV_ID 0x419
        self.corrupt_at: int | None = None  # a flash cell that does not take writes
        self.resets = 0
        self.reenumerate_s = 0.0  # after a reset the USB port vanishes this long ...
        self.new_path_on_reset = False  # ... and comes back under another device path
        self.gone_until = 0.0
        if runs == "image":
            assert image is not None
            self.program_elf(image.path)
        self.identity = runs  # "image", "old" or "erased"
        self.uart = FakeUart(self)

    # flash
    def program_elf(self, path: str | Path) -> None:
        with open(path, "rb") as f:
            for seg in ELFFile(f).iter_segments():
                if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]:
                    for i, b in enumerate(seg.data()):
                        addr = seg["p_paddr"] + i
                        self.flash[addr] = (b ^ 0xFF) if addr == self.corrupt_at else b

    def running(self) -> str:
        if self.image is None:
            return self.identity
        ok = all(self.flash.get(s.address + i) == b
                 for s in pyocd_target.load_segments(self.image.path)
                 for i, b in enumerate(s.data))
        return "image" if ok else self.identity

    def reset(self) -> None:
        self.resets += 1
        if self.reenumerate_s:
            self.gone_until = time.monotonic() + self.reenumerate_s
        if self.new_path_on_reset:
            self.uart.replace_pty()

    def hello(self) -> HelloInfo | None:
        state = self.running()
        if state == "erased":
            return None
        build = SRC_HASH if state == "image" else OLD_HASH
        return HelloInfo(proto_version=1, counter_kind=1, max_payload=2048,
                         clock_hz=168_000_000, param_capacity=6144, data_capacity=61440,
                         max_layers=4, max_width=64, max_batch=32, strategies=0x7F,
                         board="nucleo-f429zi", build_hash=build, fw_version="0.1.0")


class FakeUart:
    """The board's UART at the far end of a pseudo-terminal: answers HELLO like the
    firmware (ignores everything else)."""

    def __init__(self, board: FakeBoard) -> None:
        self.board = board
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.master, self.slave = self._new_pty()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @staticmethod
    def _new_pty() -> tuple[int, int]:
        master, slave = pty.openpty()
        tty.setraw(master)
        return master, slave

    @property
    def path(self) -> str:
        return os.ttyname(self.slave)

    def replace_pty(self) -> None:
        with self._lock:
            old = (self.master, self.slave)
            self.master, self.slave = self._new_pty()
        for fd in old:
            os.close(fd)

    def _serve(self) -> None:
        decoder = FrameDecoder()
        while not self._stop.is_set():
            with self._lock:
                master = self.master
            try:
                ready, _, _ = select.select([master], [], [], 0.02)
                if not ready:
                    continue
                data = os.read(master, 4096)
            except OSError:
                time.sleep(0.02)
                continue
            for item in decoder.feed(data):
                if isinstance(item, Packet) and item.type == MsgType.HELLO:
                    info = self.board.hello()
                    if info is not None:
                        with contextlib.suppress(OSError):
                            os.write(master, encode_frame(
                                Packet(item.type | 0x80, item.seq, info.pack())))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


# --- fakes of the pyocd API ----------------------------------------------------------------


class BoardInfo(NamedTuple):  # pyocd.board.board_ids.BoardInfo
    name: str
    target: str
    binary: str | None


NUCLEO_INFO = BoardInfo("NUCLEO-F429ZI", "stm32f429xi", "nucleo_f429zi.bin")


class FakeProbe:
    def __init__(self, unique_id: str, board: FakeBoard | None,
                 info: BoardInfo | None = NUCLEO_INFO) -> None:
        self.unique_id = unique_id
        self.board = board
        self.associated_board_info = info
        self.description = f"{info.name if info else 'J-Link OB'} [{unique_id}]"
        self.vendor_name = "STMicroelectronics" if info else "SEGGER"
        self.product_name = "STM32 STLink" if info else "J-Link"


class FakeCoreTarget:
    def __init__(self, board: FakeBoard) -> None:
        self.board = board
        self.reads: list[tuple[int, int]] = []

    def read32(self, addr: int, now: bool = True) -> int:
        if addr == 0xE0042000:
            return self.board.chip_id
        raise AssertionError(f"unexpected read32 0x{addr:08x}")

    def read_memory_block8(self, addr: int, size: int) -> list[int]:
        self.reads.append((addr, size))
        return [self.board.flash.get(addr + i, 0xFF) for i in range(size)]

    def reset(self, reset_type: Any = None) -> None:
        self.board.reset()


class FakeSession:
    def __init__(self, probe: FakeProbe, options: dict[str, Any]) -> None:
        assert probe.board is not None
        self.probe = probe
        self.options = options
        self.board = probe.board
        self.target = FakeCoreTarget(probe.board)
        self.is_open = False

    def __enter__(self) -> FakeSession:
        self.is_open = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.is_open = False


class FakeConnectHelper:
    probes: list[FakeProbe] = []
    sessions: list[FakeSession] = []

    @classmethod
    def get_all_connected_probes(cls, blocking: bool = True, unique_id: str | None = None,
                                 print_wait_message: bool = True) -> list[FakeProbe]:
        return [p for p in cls.probes
                if unique_id is None or unique_id.lower() in p.unique_id.lower()]

    @classmethod
    def session_with_chosen_probe(cls, blocking: bool = True, return_first: bool = False,
                                  unique_id: str | None = None, auto_open: bool = True,
                                  options: dict[str, Any] | None = None,
                                  **kwargs: Any) -> FakeSession | None:
        found = cls.get_all_connected_probes(blocking, unique_id)
        if not found:
            return None  # what pyocd does with blocking=False and no matching probe
        session = FakeSession(found[0], {**(options or {}), **kwargs})
        cls.sessions.append(session)
        return session


class FakeFileProgrammer:
    calls: list[str] = []

    def __init__(self, session: FakeSession, progress: Any = None, chip_erase: Any = None,
                 smart_flash: Any = None, trust_crc: Any = None, keep_unwritten: Any = None,
                 no_reset: Any = None) -> None:
        assert session.is_open, "programming needs an open session"
        self.session = session
        self.progress = progress

    def program(self, file_or_path: str, file_format: str | None = None, **kwargs: Any) -> None:
        FakeFileProgrammer.calls.append(str(file_or_path))
        for f in (0.0, 0.5, 1.0):
            if self.progress:
                self.progress(f)
        self.session.board.program_elf(file_or_path)


class PortInfo(NamedTuple):  # the fields of serial.tools.list_ports_common.ListPortInfo used
    device: str
    serial_number: str | None
    description: str
    interface: str | None = None


class FakeListPorts:
    boards: list[tuple[str, FakeBoard]] = []

    @classmethod
    def comports(cls) -> list[PortInfo]:
        out = [PortInfo("/dev/ttyS0", None, "n/a")]
        for uid, board in cls.boards:
            if time.monotonic() >= board.gone_until:
                out.append(PortInfo(board.uart.path, uid, "STM32 STLink - ST-Link VCP Data"))
        return out


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeConnectHelper]]:
    """Install the fakes; yields the helper whose `probes` a test fills."""
    FakeConnectHelper.probes = []
    FakeConnectHelper.sessions = []
    FakeFileProgrammer.calls = []
    FakeListPorts.boards = []
    monkeypatch.setattr(pyocd_target, "ConnectHelper", FakeConnectHelper)
    monkeypatch.setattr(pyocd_target, "FileProgrammer", FakeFileProgrammer)
    monkeypatch.setattr(pyocd_target, "list_ports", FakeListPorts)
    pyocd_target.forget_probes()
    yield FakeConnectHelper
    for _, board in FakeListPorts.boards:
        board.uart.close()
    pyocd_target.forget_probes()


def attach(lab: type[FakeConnectHelper], board: FakeBoard, uid: str = UID,
           info: BoardInfo | None = NUCLEO_INFO) -> FakeProbe:
    probe = FakeProbe(uid, board, info)
    lab.probes.append(probe)
    FakeListPorts.boards.append((uid, board))
    return probe


def make(**opts: Any) -> PyocdTarget:
    return PyocdTarget("nucleo", {"board": BOARD, "open_timeout_s": 2.0, **opts})


def hello_of(target: PyocdTarget) -> HelloInfo:
    conn = connect(target, timeout=1.0, retries=1)
    try:
        return conn.hello
    finally:
        conn.close()


# --- tests ------------------------------------------------------------------------------------


def test_flash_verify_reset_then_hello(lab: type[FakeConnectHelper],
                                       image: firmware.FirmwareImage) -> None:
    board = FakeBoard(image, runs="old")
    attach(lab, board)
    seen: list[float] = []
    target = make(frequency_hz=4_000_000)
    assert isinstance(target, Flashable) and target.unavailable_reason() is None
    report = target.flash(None, seen.append, if_needed=True)  # runs "old": flashes anyway
    conn = connect(target, timeout=1.0, retries=1, started=report.transport)
    conn.close()
    info = conn.hello  # connect() checked it against the manifest
    assert info.build_hash == SRC_HASH and target.flashed and report.flashed
    assert any("verified" in line for line in report.log)
    assert FakeFileProgrammer.calls == [str(image.path)]
    assert seen[-1] == 1.0
    session = lab.sessions[-1]
    assert session.options["target_override"] == "stm32f429xi"
    assert session.options["frequency"] == 4_000_000
    # read back exactly the two loadable segments (not the NOLOAD one), then reset
    assert session.target.reads == [(FLASH_BASE, 3000), (FLASH_BASE + 3000, 8)]
    assert board.resets == 1
    assert any("verified" in e for e in target.events)


def test_skips_flashing_when_the_build_already_runs(lab: type[FakeConnectHelper],
                                                    image: firmware.FirmwareImage) -> None:
    board = FakeBoard(image, runs="image")
    attach(lab, board)
    target = make()
    assert hello_of(target).build_hash == SRC_HASH
    assert FakeFileProgrammer.calls == [] and not target.flashed and board.resets == 0
    assert any("not flashed" in e for e in target.events)
    # flash: always programs anyway
    target = make(flash="always")
    hello_of(target)
    assert FakeFileProgrammer.calls == [str(image.path)] and target.flashed


def test_erased_board_is_flashed(lab: type[FakeConnectHelper],
                                 image: firmware.FirmwareImage) -> None:
    board = FakeBoard(image, runs="erased")  # no answer to HELLO at all
    attach(lab, board)
    target = make()
    assert hello_of(target).build_hash == SRC_HASH and target.flashed


def test_verify_failure_names_the_address(lab: type[FakeConnectHelper],
                                          image: firmware.FirmwareImage) -> None:
    board = FakeBoard(image, runs="old")
    board.corrupt_at = FLASH_BASE + 1234
    attach(lab, board)
    target = make()
    with pytest.raises(FlashVerifyError) as info:
        target.start()
    msg = str(info.value)
    assert "0x08000000..0x08000bb8" in msg and "first difference at 0x080004d2" in msg
    assert isinstance(info.value, FirmwareMismatch)
    assert board.resets == 0  # not started after a failed verify


def test_no_probe(lab: type[FakeConnectHelper], image: firmware.FirmwareImage) -> None:
    target = make()
    why = target.unavailable_reason()
    assert why is not None and "no debug probe for a stm32f429xi" in why and "none" in why
    with pytest.raises(ProbeNotFound, match="no debug probe for a stm32f429xi"):
        target.start()
    named = make(probe="0669FF0000000000")
    with pytest.raises(ProbeNotFound, match="debug probe 0669FF0000000000 is not attached"):
        named.start()


def test_wrong_target(lab: type[FakeConnectHelper], image: firmware.FirmwareImage) -> None:
    nrf = FakeBoard(None, runs="old")
    attach(lab, nrf, uid="1102000044203120",
           info=BoardInfo("nRF52840-DK", "nrf52840", "l1_nrf52840-dk.bin"))
    # auto ignores a probe on another board type ...
    why = make().unavailable_reason()
    assert why is not None and "1102000044203120 (nRF52840-DK, target nrf52840)" in why
    # ... and naming it is refused before touching the chip
    with pytest.raises(WrongTarget, match=r"sits on a nRF52840-DK \(pyocd target nrf52840\)"):
        make(probe="1102000044203120").start()
    # a probe that says F429 but whose chip is not one: the chip id is read after connecting
    odd = FakeBoard(image, runs="old")
    odd.chip_id = 0x10006413  # STM32F405/407
    attach(lab, odd)
    with pytest.raises(WrongTarget, match=r"DBGMCU_IDCODE.DEV_ID = 0x413, expected 0x419"):
        make(probe=UID).start()
    assert FakeFileProgrammer.calls == []


def test_probe_without_board_info_needs_its_id(lab: type[FakeConnectHelper],
                                               image: firmware.FirmwareImage) -> None:
    board = FakeBoard(image, runs="old")
    attach(lab, board, uid="000683123456", info=None)  # a J-Link reports no board
    why = make().unavailable_reason()
    assert why is not None and "only used when named" in why and "000683123456" in why
    assert make(probe="000683123456").unavailable_reason() is None


def test_port_busy(lab: type[FakeConnectHelper], image: firmware.FirmwareImage) -> None:
    board = FakeBoard(image, runs="image")
    attach(lab, board)
    holder = serial.Serial(board.uart.path, exclusive=True)  # e.g. a terminal left open
    try:
        target = make(open_timeout_s=0.3)
        with pytest.raises(PortBusy) as info:
            target.start()
        msg = str(info.value)
        assert board.uart.path in msg and "in use by another process" in msg
        assert f"{os.getpid()} (" in msg  # who holds it
    finally:
        holder.close()
    assert FakeFileProgrammer.calls == []  # flashing would not have helped


def test_wrong_firmware_is_refused(lab: type[FakeConnectHelper],
                                   image: firmware.FirmwareImage) -> None:
    board = FakeBoard(image, runs="old")
    attach(lab, board)
    target = make(flash="never")
    with pytest.raises(FirmwareMismatch, match=r"firmware build differs .*build 0d0d0d0d0d0d"):
        connect(target, timeout=1.0, retries=1)
    assert FakeFileProgrammer.calls == []


def test_reenumeration_after_reset(lab: type[FakeConnectHelper],
                                   image: firmware.FirmwareImage) -> None:
    board = FakeBoard(image, runs="old")
    board.reenumerate_s = 0.6
    board.new_path_on_reset = True
    attach(lab, board)
    before = board.uart.path
    target = make(open_timeout_s=3.0)
    t0 = time.monotonic()
    assert hello_of(target).build_hash == SRC_HASH
    assert time.monotonic() - t0 >= 0.6  # it waited for the port to come back
    assert board.uart.path != before and target._port_url == board.uart.path
    # a port that never comes back is a clear error
    board.reenumerate_s = 60
    with pytest.raises(TargetUnavailable, match=r"did not appear within 0.5 s"):
        make(open_timeout_s=0.5, flash="always").start()


def test_reset_goes_through_the_probe(lab: type[FakeConnectHelper],
                                      image: firmware.FirmwareImage) -> None:
    board = FakeBoard(image, runs="image")
    attach(lab, board)
    target = make()
    target.start()
    transport = target.reset()
    assert board.resets == 1 and FakeFileProgrammer.calls == []
    assert transport is target._transport
    target.close()


def test_lab_config_auto_and_selection(lab: type[FakeConnectHelper],
                                       image: firmware.FirmwareImage, tmp_path: Path) -> None:
    cfg = parse_config("""
boards:
  an386: {cpu: cortex-m4f, clock_hz: 25000000, qemu_machine: mps2-an386}
  nucleo: {cpu: cortex-m4f, clock_hz: 168000000, firmware: nucleo-f429zi,
           pyocd_target: stm32f429xi}
targets:
  bench: {kind: pyocd, board: nucleo, probe: auto}
  emu: {kind: qemu, board: an386}
""", tmp_path / "lab.yaml")
    assert resolve_target(cfg).kind == "qemu"  # nothing attached: auto falls back
    attach(lab, FakeBoard(image, runs="image"))
    pyocd_target.forget_probes()
    chosen = resolve_target(cfg)
    assert isinstance(chosen, PyocdTarget) and chosen.name == "bench"


def test_board_needs_a_pyocd_target() -> None:
    with pytest.raises(Exception, match="needs a board with pyocd_target"):
        PyocdTarget("x", {"board": Board(name="b", cpu="cortex-m4f", clock_hz=1,
                                         firmware="b")})
