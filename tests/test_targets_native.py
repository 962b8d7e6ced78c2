"""The native target: the firmware's C core as a host process on pipes."""

from __future__ import annotations

import gc
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rig import firmware
from rig.device import Device
from rig.errors import DeviceFault, LinkError, TargetUnavailable
from rig.firmware import check_hello
from rig.link.link import Link
from rig.targets.native import NativeTarget


def gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


@pytest.fixture(scope="module")
def binary(native_build: Callable[[str], Path]) -> Path:
    return native_build("native") / "tinyrig_fw"


def test_hello_and_close(binary: Path) -> None:
    target = NativeTarget("n", {"binary": str(binary)})
    try:
        info = Device(Link(target.start(), timeout=2.0)).hello()
        assert info.board == "native"
        image = target.expected_firmware()
        assert image is not None
        if firmware.stale_reason(image) is None:
            check_hello(info, image, where=target.describe())
        pid = target.pid
        assert pid is not None
    finally:
        target.close()
    assert gone(pid)
    assert target.pid is None and "native:n" in target.diagnostics()


def test_builds_on_demand_by_default(binary: Path) -> None:
    with NativeTarget("n", {}) as target:
        assert Device(Link(target.start(), timeout=2.0)).hello().board == "native"
        assert target.binary == firmware.native_binary(build=False)  # the checkout's build


def test_reset_restarts_process(binary: Path) -> None:
    with NativeTarget("n", {"binary": str(binary)}) as target:
        target.start()
        first = target.pid
        transport = target.reset()
        assert target.pid != first and first is not None and gone(first)
        assert Device(Link(transport, timeout=2.0)).hello().board == "native"


def test_fault_exit_is_decoded(binary: Path) -> None:
    with NativeTarget("n", {"binary": str(binary)}) as target:
        dev = Device(Link(target.start(), timeout=2.0))
        dev.hello()
        with pytest.raises((DeviceFault, LinkError)):
            dev.debug_fault(timeout=2.0)
        assert target._child is not None
        code = target._child.proc.wait(5)
        assert 0x80 < code < 0x90
        assert f"firmware fault, exception {code - 0x80}" in target.diagnostics()


@pytest.mark.skipif(shutil.which("cat") is None, reason="no cat")
def test_pipe_mechanics_and_gc_cleanup() -> None:
    """Any stdio program works as a 'firmware': cat echoes, which is all we need here."""
    target = NativeTarget("cat", {"binary": shutil.which("cat")})
    transport = target.start()
    transport.write(b"abc")
    data = b""
    deadline = time.monotonic() + 3
    while len(data) < 3 and time.monotonic() < deadline:
        data += transport.read(3, 0.1)
    assert data == b"abc"
    pid = target.pid
    assert pid is not None
    del target, transport
    gc.collect()
    assert gone(pid)


def test_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(TargetUnavailable, match="does not exist"):
        NativeTarget("n", {"binary": str(tmp_path / "nope")}).start()
