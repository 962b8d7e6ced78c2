"""The board catalogue under QEMU: every emulated board's prebuilt image boots, states the
limits its board_config.h promises, measures its stack, reports faults the way its core
can (ARMv7-M BusFault with CFSR; ARMv6-M HardFault without), moves bulk data through its
real UART model (STM32 USART RXNE one byte at a time, the nRF51's 6-byte RX FIFO), and can
be flashed over QEMU's gdbstub (including into the ROM of the flash-based machines)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rig import firmware
from rig.config import Board, load_config
from rig.device import Device
from rig.errors import DeviceFault, DeviceNak, FirmwareMismatch
from rig.link.link import Link
from rig.protocol import CounterKind
from rig.targets.qemu import QemuTarget

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                                reason="qemu-system-arm not installed")

MACHINES = ["mps2-an386", "netduinoplus2", "microbit"]
#: what each core reports for DEBUG action 1 (an unmapped load)
FAULT = {"mps2-an386": 5, "netduinoplus2": 5, "microbit": 3}


def board_of(machine: str) -> Board:
    lab = load_config()
    for board in lab.boards.values():
        if board.qemu_machine == machine:
            return board
    raise AssertionError(f"lab_config.yaml has no board for {machine}")


def manifest_entry(board: str) -> dict[str, object]:
    path = firmware.prebuilt_dir() / "manifest.json"
    for entry in json.loads(path.read_text())["images"]:
        if entry["board"] == board:
            return dict(entry)
    raise AssertionError(f"no {board} in {path}")


@pytest.fixture(params=MACHINES)
def machine(request: pytest.FixtureRequest) -> str:
    board = board_of(request.param)
    try:
        firmware.image_for(board.firmware)
    except (firmware.FirmwareNotFound, firmware.FirmwareMismatch) as exc:
        pytest.fail(f"no verified prebuilt image for {board.name}: {exc}")
    return str(request.param)


def start(machine: str, **opts: object) -> tuple[QemuTarget, Device]:
    target = QemuTarget(f"t-{machine}", {"board": board_of(machine), **opts})
    try:
        dev = Device(Link(target.start(), timeout=2.0, retries=2))
    except BaseException:
        target.close()
        raise
    return target, dev


def test_boots_with_the_promised_limits(machine: str) -> None:
    board = board_of(machine)
    target, dev = start(machine)
    with target:
        info = dev.hello()
        # start() waited for the boot line: the first HELLO was not sent into a UART that
        # was not on yet (QEMU's STM32 USART drops such bytes: a 2 s retransmission)
        assert dev.link.stats.retransmits == 0
        image = target.expected_firmware()
        assert image is not None and info.board == board.name == image.board
        assert info.build_hash == image.source_hash
        assert info.clock_hz == board.clock_hz
        assert info.counter_kind == CounterKind.SYSTICK  # QEMU has no DWT (M4) / none on M0
        stats = dev.stats()
        memory = manifest_entry(board.name)["memory"]
        assert isinstance(memory, dict)
        assert stats.stack_size == memory["stack"]
        assert stats.static_ram == memory["static_ram"]  # linker symbols = ELF sections
        assert 0 < stats.stack_used < stats.stack_size // 2


def test_training_measures_stack_and_ticks(machine: str) -> None:
    """A step of the board's own job: the SysTick phase counters advance (also on the M0),
    and the painted stack's high-water mark grows but stays well inside the stack."""
    board = board_of(machine)
    dims = tuple(board.training.get("dims", (64, 32, 10)))
    target, dev = start(machine)
    with target:
        info = dev.hello()
        before = dev.stats().stack_used
        batch = min(4, info.max_batch)
        dev.model_init(dims)
        rng = np.random.default_rng(0)
        dev.load_model([(rng.normal(0, 0.1, (o, i)).astype(np.float32),
                         np.zeros(o, np.float32)) for i, o in zip(dims[:-1], dims[1:],
                                                                  strict=True)])
        dev.train_config(0.1, 0.9, "full")
        dev.data_config(dims[0], "u8", 1 / 16, 0.0, batch)
        dev.write_samples(0, np.arange(batch) % dims[-1],
                          rng.integers(0, 17, (batch, dims[0])).astype(np.uint8))
        step = dev.train_step(np.arange(batch))
        assert sum(step.counters) > 0
        after = dev.stats()
        assert before < after.stack_used < after.stack_size // 2


def test_bulk_data_through_the_uart_model(machine: str) -> None:
    """Max-size frames both ways, many times: nothing dropped or reordered by the STM32
    USART (one byte per RXNE), the nRF51 UART (6-byte FIFO) or the CMSDK UART."""
    target, dev = start(machine)
    with target:
        n = dev.hello().max_payload
        rng = np.random.default_rng(1)
        for _ in range(8):
            data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            assert dev.echo(data) == data
        assert dev.link.stats.retransmits == 0 and dev.link.stats.decode_errors == 0


def test_fault_is_reported_as_the_core_can(machine: str) -> None:
    target, dev = start(machine)
    with target:
        dev.hello()
        with pytest.raises(DeviceFault) as info:
            dev.debug_fault(timeout=2.0)
        regs = info.value.registers
        assert regs["exception"] == FAULT[machine]
        if machine == "microbit":
            # ARMv6-M: HardFault only; CFSR/HFSR/BFAR do not exist and are sent as 0 (the
            # handler must not read them: that would fault again, a lockup)
            assert regs["cfsr"] == regs["hfsr"] == regs["bfar"] == 0
        else:
            assert regs["bfar"] == 0x70000000 and regs["cfsr"] & (1 << 15)  # BFARVALID
        assert regs["pc"] != 0  # the stacked frame was read
        child = target._child
        assert child is not None
        assert child.proc.wait(5) == 0x80 + FAULT[machine]


@pytest.mark.skipif(shutil.which("gdb-multiarch") is None, reason="gdb-multiarch missing")
def test_flash_over_the_gdbstub(machine: str) -> None:
    """Empty halted machine, gdb `load` (into ROM on netduinoplus2 at 0x08000000 and on the
    microbit at 0x0: QEMU's debug writes may write ROM), compare-sections, system reset,
    HELLO; then a reset through the gdbstub keeps the flashed image."""
    target, dev = start(machine, flash="gdb")
    with target:
        log = target.flash_log
        assert log.count("matched") >= 2 and "MIS-MATCHED" not in log  # .text and .data
        assert "-kernel" not in target.diagnostics()
        assert dev.hello().board == board_of(machine).name
        dev.model_init([4, 3, 2])
        pid = target.pid
        transport = target.reset()
        assert target.pid == pid  # a core reset, no new emulator
        dev = Device(Link(transport, timeout=2.0))
        dev.hello()
        with pytest.raises(DeviceNak, match="BAD_STATE"):
            dev.read_params(0, "weight", 1)


@pytest.mark.skipif(shutil.which("gdb-multiarch") is None, reason="gdb-multiarch missing")
def test_gdb_verify_catches_a_wrong_image(tmp_path: Path) -> None:
    """compare-sections against an ELF whose bytes differ from what was loaded fails
    with FirmwareMismatch (the flashing path's verify is real)."""
    board = board_of("netduinoplus2")
    elf = firmware.image_for(board.firmware, verify=False).path
    target = QemuTarget("t", {"elf": str(elf), "machine": "netduinoplus2", "flash": "gdb"})
    with target:
        target.start()
        other = tmp_path / "other.elf"
        data = bytearray(elf.read_bytes())
        # flip one byte inside .text's file image: same layout, different contents
        off = _text_offset(elf) + 0x200
        data[off] ^= 0xFF
        other.write_bytes(bytes(data))
        target.elf = other
        with pytest.raises(FirmwareMismatch, match="verify after flashing failed"):
            target._gdb(target_gdb(), ["compare-sections"])


def target_gdb() -> str:
    from rig.targets.qemu import find_gdb

    return find_gdb()


def _text_offset(elf: Path) -> int:
    """File offset of the first loadable segment (.text) of `elf`."""
    from rig.elf import load_segments

    return elf.read_bytes().index(load_segments(elf)[0].data[:64])
