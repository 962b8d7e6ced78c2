"""The QEMU target: starts the real firmware, resets, and never leaves a process behind.

Uses `firmware/prebuilt/mps2-an386.elf` (or `firmware/build/mps2-an386/tinyrig.elf`); a
tiny echo image compiled here exercises exits the real firmware cannot (lockup)."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rig import firmware
from rig.config import Board
from rig.device import Device
from rig.errors import (
    DeviceFault,
    DeviceNak,
    FirmwareMismatch,
    LinkError,
    TargetUnavailable,
    ToolMissing,
)
from rig.firmware import check_hello
from rig.link.link import Link
from rig.targets.qemu import QemuTarget

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                                reason="qemu-system-arm not installed "
                                       "(apt-get install -y qemu-system-arm)")

BOARD = Board(name="mps2-an386", cpu="cortex-m4f", clock_hz=25_000_000,
              firmware="mps2-an386", qemu_machine="mps2-an386")


def firmware_elf() -> Path | None:
    for p in (firmware.FIRMWARE_SRC / "prebuilt" / "mps2-an386.elf",
              firmware.FIRMWARE_SRC / "build" / "mps2-an386" / "tinyrig.elf"):
        if p.is_file():
            return p
    return None


@pytest.fixture
def elf() -> Path:
    path = firmware_elf()
    if path is None:
        pytest.fail("no mps2-an386 firmware image: run `make -C firmware prebuilt`")
    return path


def opts(elf: Path, **kw: object) -> dict[str, object]:
    return {"machine": "mps2-an386", "elf": str(elf), **kw}


ECHO_C = r"""
#include <stdint.h>
#define UART(o) (*(volatile uint32_t *)(0x40004000u + (o)))
extern uint32_t _estack;
void reset_handler(void);
static void fault(void) { *(volatile uint32_t *)0xFFFFFFF0u = 0; for (;;) {} }
static void sh_exit(uint32_t code) {   /* semihosting SYS_EXIT_EXTENDED */
    volatile uint32_t block[2] = {0x20026u, code};
    register uint32_t r0 __asm__("r0") = 0x20u;
    register uint32_t r1 __asm__("r1") = (uint32_t)block;
    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {}
}
__attribute__((section(".vectors"), used)) const void *vectors[4] = {
    &_estack, reset_handler, fault, fault};
static void put(uint8_t c) { while (UART(4) & 1u) {} UART(0) = c; }
void reset_handler(void) {
    UART(0x10) = 16; UART(8) = 3;
    for (;;) {
        while (!(UART(4) & 2u)) {}
        uint8_t c = (uint8_t)UART(0);
        if (c == 'X') sh_exit(0x83);               /* as the fault handler would */
        if (c == 'L') __asm__ volatile("udf #0");  /* fault inside a fault: lockup */
        put(c);
    }
}
"""
ECHO_LD = """
MEMORY { ROM (rx) : ORIGIN = 0x0, LENGTH = 4M  RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 4M }
SECTIONS { .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) } > ROM
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM
  _estack = ORIGIN(RAM) + LENGTH(RAM); }
"""


@pytest.fixture(scope="module")
def echo_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    d = tmp_path_factory.mktemp("echo")
    (d / "echo.c").write_text(ECHO_C)
    (d / "echo.ld").write_text(ECHO_LD)
    subprocess.run([gcc, "-mcpu=cortex-m4", "-mthumb", "-Os", "-nostdlib", "-ffreestanding",
                    "-T", str(d / "echo.ld"), str(d / "echo.c"), "-o", str(d / "echo.elf")],
                   check=True)
    return d / "echo.elf"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose, but only our own children can be zombies we reap
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def hello(transport: object) -> object:
    return Device(Link(transport, timeout=2.0)).hello()  # type: ignore[arg-type]


def read_exactly(transport: object, n: int, timeout: float = 3.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n and time.monotonic() < deadline:
        data += transport.read(n - len(data), 0.1)  # type: ignore[attr-defined]
    return data


def wait_exit(target: QemuTarget, timeout: float = 5.0) -> int | None:
    child = target._child
    assert child is not None
    try:
        return child.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


# --- the real firmware ------------------------------------------------------------------------


def test_start_hello_close(elf: Path) -> None:
    target = QemuTarget("t", opts(elf, board=BOARD))
    try:
        info = hello(target.start())
        assert info.board == "mps2-an386" and info.proto_version == 1
        pid = target.pid
        assert pid is not None and alive(pid)
        assert "SysTick" in target.counter_label and "QEMU" in target.counter_label
        assert "running" in target.diagnostics()
    finally:
        target.close()
    assert wait_dead(pid)
    assert "stopped by the rig" in target.diagnostics()
    target.close()  # twice is fine


def test_board_image_from_manifest_and_check_hello() -> None:
    try:
        firmware.image_for("mps2-an386")
    except (firmware.FirmwareNotFound, FirmwareMismatch) as exc:
        pytest.fail(f"no verified prebuilt image: {exc}")
    with QemuTarget("t", {"board": BOARD}) as target:
        info = hello(target.start())
        image = target.expected_firmware()
        assert image is not None and target.elf == image.path
        check_hello(info, image, where=target.describe())


def test_reset_restarts_emulator(elf: Path) -> None:
    with QemuTarget("t", opts(elf)) as target:
        dev = Device(Link(target.start(), timeout=2.0))
        dev.hello()
        dev.model_init([4, 3, 2])
        first = target.pid
        t0 = time.monotonic()
        transport = target.reset()
        took = time.monotonic() - t0
        assert target.pid != first and wait_dead(first)
        dev = Device(Link(transport, timeout=2.0))
        dev.hello()
        with pytest.raises(DeviceNak, match="BAD_STATE"):  # the model is gone
            dev.read_params(0, "weight", 1)
    assert took < 2.0


def test_no_process_left_after_exception(elf: Path) -> None:
    pid = None
    with pytest.raises(RuntimeError, match="boom"), QemuTarget("t", opts(elf)) as t:
        t.start()
        pid = t.pid
        raise RuntimeError("boom")
    assert pid is not None and wait_dead(pid)


def test_no_process_left_after_garbage_collection(elf: Path) -> None:
    target = QemuTarget("t", opts(elf))
    target.start()
    pid = target.pid
    assert pid is not None
    del target
    gc.collect()
    assert wait_dead(pid)


def run_child_script(elf: Path, log_dir: Path, tail: str) -> subprocess.Popen[str]:
    script = textwrap.dedent(f"""
        import sys, time
        from rig.targets.qemu import QemuTarget
        t = QemuTarget("t", {{"elf": {str(elf)!r}, "machine": "mps2-an386",
                              "log_dir": {str(log_dir)!r}}})
        t.start()
        print(t.pid, flush=True)
    """) + textwrap.dedent(tail)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)


def test_no_process_left_at_interpreter_exit(elf: Path, tmp_path: Path) -> None:
    proc = run_child_script(elf, tmp_path, "sys.exit(0)  # without close()\n")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert wait_dead(int(out.split()[0]))


def test_no_process_left_when_rig_is_killed(elf: Path, tmp_path: Path) -> None:
    proc = run_child_script(elf, tmp_path, "time.sleep(60)\n")
    assert proc.stdout is not None
    pid = int(proc.stdout.readline())
    assert alive(pid)
    proc.send_signal(signal.SIGKILL)  # no atexit, no finalizer: the parent-death signal
    proc.wait(10)
    assert wait_dead(pid)


def test_firmware_fault_is_decoded(elf: Path) -> None:
    with QemuTarget("t", opts(elf)) as target:
        dev = Device(Link(target.start(), timeout=2.0))
        dev.hello()
        with pytest.raises((DeviceFault, LinkError)):
            dev.debug_fault(timeout=2.0)
        code = wait_exit(target)
        assert code is not None and 0x80 < code < 0x90
        diag = target.diagnostics()
        assert f"firmware fault, exception {code - 0x80}" in diag
        assert "command: " in diag and "-kernel" in diag


def test_start_failure_reports_and_cleans_up(elf: Path) -> None:
    target = QemuTarget("t", opts(elf, extra_args=["-no-such-option"]))
    with pytest.raises(TargetUnavailable) as info:
        target.start()
    msg = str(info.value)
    assert "QEMU exited before the guest ran" in msg and "no-such-option" in msg
    assert target.pid is None


def test_missing_image(tmp_path: Path) -> None:
    with pytest.raises(firmware.FirmwareNotFound, match="not found"):
        QemuTarget("t", {"elf": str(tmp_path / "none.elf"), "machine": "mps2-an386"}).start()


def use_prebuilt_dir(tmp_path: Path, elf: Path, sha256: str,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A prebuilt directory holding elf as mps2-an386.elf, listed in its manifest with the
    given sha256; made the firmware directory for the test."""
    d = tmp_path / "pre"
    d.mkdir()
    shutil.copy(elf, d / "mps2-an386.elf")
    (d / "manifest.json").write_text(
        '{"images": [{"board": "mps2-an386", "file": "mps2-an386.elf", "sha256": "'
        + sha256 + '", "source_hash": "", "qemu_machine": "mps2-an386"}]}')
    monkeypatch.setenv(firmware.ENV_DIR, str(d))


def test_corrupt_prebuilt_refused_before_start(tmp_path: Path, elf: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    use_prebuilt_dir(tmp_path, elf, "0" * 64, monkeypatch)
    target = QemuTarget("t", {"board": BOARD})
    with pytest.raises(FirmwareMismatch, match="corrupt or was replaced"):
        target.start()
    assert target.pid is None


def test_machine_mismatch_with_manifest(tmp_path: Path, elf: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    use_prebuilt_dir(tmp_path, elf, firmware.sha256_file(elf), monkeypatch)
    with pytest.raises(FirmwareMismatch, match="for QEMU machine 'mps2-an386'"):
        QemuTarget("t", {"board": BOARD, "machine": "netduinoplus2"}).start()


def test_tool_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match=r"apt-get install -y qemu-system-arm"):
        QemuTarget("t", {"elf": "x.elf", "machine": "mps2-an386"}).start()


def test_icount_is_passed_and_labelled(elf: Path) -> None:
    with QemuTarget("t", opts(elf, icount=0)) as target:
        assert hello(target.start()).board == "mps2-an386"
        assert "-icount shift=0" in target.counter_label
        assert "shift=0,align=off" in target.diagnostics()


# --- flash over the gdbstub -------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("gdb-multiarch") is None, reason="gdb-multiarch missing")
def test_gdb_flash_and_reset_keep_the_emulator(elf: Path) -> None:
    with QemuTarget("t", opts(elf, board=BOARD, flash="gdb")) as target:
        transport = target.start()
        assert "matched" in target.flash_log
        dev = Device(Link(transport, timeout=2.0))
        assert dev.hello().board == "mps2-an386"
        dev.model_init([4, 3, 2])
        pid = target.pid
        assert target.reset() is transport and target.pid == pid  # a core reset, no restart
        dev = Device(Link(transport, timeout=2.0))
        dev.hello()
        with pytest.raises(DeviceNak, match="BAD_STATE"):
            dev.read_params(0, "weight", 1)
        assert "-kernel" not in target.diagnostics()


def test_gdb_mode_needs_gdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "qemu-system-arm").symlink_to(shutil.which("qemu-system-arm") or "/bin/false")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match="apt-get install -y gdb-multiarch"):
        QemuTarget("t", {"elf": "x.elf", "machine": "mps2-an386", "flash": "gdb"}).start()


# --- exits the real firmware cannot produce on purpose ------------------------------------------


def test_echo_and_semihosting_exit(echo_elf: Path) -> None:
    with QemuTarget("echo", opts(echo_elf)) as target:
        transport = target.start()
        transport.write(b"ping")
        assert read_exactly(transport, 4) == b"ping"
        transport.write(b"X")
        assert wait_exit(target) == 0x83
        assert "firmware fault, exception 3 (HardFault)" in target.diagnostics()


def test_lockup_is_decoded(echo_elf: Path) -> None:
    with QemuTarget("echo", opts(echo_elf)) as target:
        target.start().write(b"L")
        code = wait_exit(target)
        assert code in (-6, 134)
        diag = target.diagnostics()
        assert "QEMU lockup" in diag and "Lockup" in diag  # decoded, and the log tail
