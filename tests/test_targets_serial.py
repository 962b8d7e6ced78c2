"""The serial target: a device somebody else started, here QEMU serving its UART on a
loopback socket, reached through `socket://`."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig import firmware
from rig.config import Board
from rig.connection import connect
from rig.device import Device
from rig.errors import ConfigError, TargetUnavailable
from rig.link.link import Link
from rig.protocol import CounterKind
from rig.targets.serial import SerialTarget

BOARD = Board(name="mps2-an386", cpu="cortex-m4f", clock_hz=25_000_000,
              firmware="mps2-an386", qemu_machine="mps2-an386")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def qemu_socket() -> Iterator[str]:
    """QEMU running the real firmware, its UART a TCP server; yields the pyserial URL."""
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not installed (apt-get install -y qemu-system-arm)")
    elf = next((p for p in (firmware.FIRMWARE_SRC / "prebuilt" / "mps2-an386.elf",
                            firmware.FIRMWARE_SRC / "build" / "mps2-an386" / "tinyrig.elf")
                if p.is_file()), None)
    if elf is None:
        pytest.fail("no mps2-an386 firmware image: run `make -C firmware prebuilt`")
    port = free_port()
    proc = subprocess.Popen(
        ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
         "-kernel", str(elf), "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on",
         "-semihosting-config", "enable=on,target=native", "-no-reboot"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"socket://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def test_hello_reset_close(qemu_socket: str) -> None:
    target = SerialTarget("bench", {"port": qemu_socket, "board": BOARD, "open_timeout_s": 10})
    # before HELLO: what the board's silicon counts
    assert target.hardware and target.counter_label == "cycles (DWT)"
    assert target.unavailable_reason() is None  # URLs are not probed
    try:
        conn = connect(target, timeout=2.0)
        assert conn.hello.board == "mps2-an386"
        # this "board" is QEMU, which has no DWT: the label follows what HELLO reports
        assert conn.hello.counter_kind == CounterKind.SYSTICK
        assert target.counter_label == "SysTick ticks"
        dev = Device(Link(target.reset(), timeout=2.0))  # reopen: same firmware, new socket
        dev.reset()
        assert dev.hello().board == "mps2-an386"
        assert "port open" in target.diagnostics()
    finally:
        target.close()
    assert "port closed" in target.diagnostics()
    target.close()


def test_expected_firmware_is_the_boards_image() -> None:
    target = SerialTarget("bench", {"port": "socket://127.0.0.1:1", "board": BOARD})
    try:
        image = firmware.image_for("mps2-an386", verify=False)
    except firmware.FirmwareNotFound:
        assert target.expected_firmware() is None
        return
    expected = target.expected_firmware()
    assert expected is not None and expected.source_hash == image.source_hash


def test_missing_device_path(tmp_path: Path) -> None:
    target = SerialTarget("bench", {"port": str(tmp_path / "ttyACM9"), "open_timeout_s": 0.1})
    assert "does not exist" in (target.unavailable_reason() or "")
    t0 = time.monotonic()
    with pytest.raises(TargetUnavailable, match="ttyACM9"):
        target.start()
    assert time.monotonic() - t0 < 2.0
    assert "last error" in target.diagnostics()


def test_port_is_required() -> None:
    with pytest.raises(ConfigError, match="target 'bench': missing required option 'port'"):
        SerialTarget("bench", {})
    with pytest.raises(ConfigError, match="target 'bench': open_timeout_s: expected a number > 0"):
        SerialTarget("bench", {"port": "/dev/null", "open_timeout_s": 0})
    with pytest.raises(ConfigError, match=r"unknown option 'baud' \(did you mean 'baudrate'\?\)"):
        SerialTarget("bench", {"port": "/dev/null", "baud": 9600})


def test_baudrate_from_defaults() -> None:
    from rig.config import Defaults
    target = SerialTarget("b", {"port": "/dev/null", "defaults": Defaults(baudrate=921600)})
    assert target.baudrate == 921600 and "921600" in target.describe()
