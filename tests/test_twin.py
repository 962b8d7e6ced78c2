"""The twin engine on its own (rig.twin): strict mode, the models' board checks, the
cycle counter, and the exception path (RX interrupt into a ring, WFI, SysTick, FP frames)
with a tiny image built from tests/twin_images/irq_echo.c. The HIL suite runs the real
board images on the twins (`pytest -m hil --target nucleo-f429zi-twin,nrf52840dk-twin`)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from rig.firmware import FIRMWARE_SRC
from rig.twin import accel
from rig.twin.boards import BOARDS, build_machine, memory_regions
from rig.twin.machine import TwinError, TwinMachine
from rig.twin.transport import TwinTransport

PREBUILT = FIRMWARE_SRC / "prebuilt"
SNIPPET_AT = 0x20001000  # inside RAM on both boards, above the stack (8 KB from 0x20000000)
CLOCK = {"nucleo-f429zi": 168_000_000, "nrf52840dk": 64_000_000}


def booted(board: str, strict: bool = True) -> TwinMachine:
    m = build_machine(board, PREBUILT / f"{board}.elf", strict=strict)
    m.reset()
    assert m.run(time.monotonic() + 10, until_tx=False) == "idle"
    assert m.tx.startswith(b"tinyrig ")  # the boot line
    return m


def run_snippet(m: TwinMachine, code: bytes) -> str:
    """Run Thumb `code` (ending in `b .`) from RAM in thread mode."""
    m._uc.mem_write(SNIPPET_AT, code)
    m.pc = SNIPPET_AT
    m.idle = m.sleeping = False
    return m.run(time.monotonic() + 5, until_tx=False)


def thumb(*halfwords: int, literals: tuple[int, ...] = ()) -> bytes:
    code = b"".join(struct.pack("<H", h) for h in halfwords)
    code += b"\0" * (-len(code) % 4)
    return code + b"".join(struct.pack("<I", v) for v in literals)


B_SELF = 0xE7FE  # b .


def r0_is(addr: int) -> tuple[int, ...]:
    """movs/lsls/adds that put 0x4HHHH000-style `addr` in r0 without a literal load (so the
    peripheral access is the block's only load)."""
    assert addr & 0xF0000FFF == 0x40000000 and (addr >> 12) & 0xFFFF < 0x100
    return (0x2040, 0x0600, 0x2100 | (addr >> 12) & 0xFF, 0x0309, 0x1840)  # r0 = 0x40<<24
    #                                                                   + (r1 = n << 12)


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_strict_mode_stops_at_an_unknown_register(board: str) -> None:
    # USART1 (STM32) / UARTE1 (nRF52): peripherals the board's model does not have
    addr = {"nucleo-f429zi": 0x40011000, "nrf52840dk": 0x40028000}[board]
    code = thumb(*r0_is(addr), 0x6801, B_SELF)  # ldr r1, [r0]
    pc = SNIPPET_AT + 2 * len(r0_is(addr))
    m = booted(board)
    with pytest.raises(TwinError, match=rf"unknown register access: pc=0x{pc:08x}: read of "
                                        rf"0x{addr:08x} \((USART1|UARTE1)\.\w+\)"):
        run_snippet(m, code)
    lax = booted(board, strict=False)
    assert run_snippet(lax, code) == "halted"
    assert [(a.pc, a.address, a.write) for a in lax.unknown] == [(pc, addr, False)]


def test_a_wrong_baud_rate_is_a_finding() -> None:
    """BRR = 100 at PCLK1 42 MHz is 420 kbaud: on the board nothing readable arrives."""
    # r0 = USART3; movs r1,#100; str r1,[r0,#8] (BRR); movs r1,#65; str r1,[r0,#4] (DR)
    code = thumb(*r0_is(0x40004000), 0x2108, 0x0209, 0x1840,  # + 0x800: USART3 0x40004800
                 0x2164, 0x6081, 0x2141, 0x6041, B_SELF)
    m = booted("nucleo-f429zi")
    with pytest.raises(TwinError, match=r"BRR 0x64 at PCLK1 42000000 Hz gives 420000 baud"):
        run_snippet(m, code)


@pytest.mark.parametrize("compiled", [True, False], ids=["c-hook", "python-hook"])
def test_cyccnt_counts_instructions(compiled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """CYCCNT advances one per executed instruction; a read sees the count at the end of
    its translated block (unicorn keeps the PC exact only at block boundaries)."""
    if not compiled:
        monkeypatch.setattr(accel, "_tried", True)
        monkeypatch.setattr(accel, "_lib", None)
    elif accel.c_hook() is None:
        pytest.skip("no host C compiler")
    # block 1: r0 = 0xE0001004 (CYCCNT) via mvn/lsl..., ldr r1,[r0], b next
    # block 2: nop x3, ldr r2,[r0], b . (its own block, the halt)
    code = thumb(0x4804, 0x6801, 0xE7FF,           # ldr r0,[pc,#16]; ldr r1,[r0]; b +0
                 0xBF00, 0xBF00, 0xBF00, 0x6802, 0xE7FF,  # nop x3; ldr r2,[r0]; b +0
                 B_SELF, literals=(0xE0001004,))
    m = booted("nucleo-f429zi")
    assert m.accelerated is compiled
    before = m.insns
    assert run_snippet(m, code) == "halted"
    r1, r2 = (m._uc.reg_read(getattr(m._a, f"UC_ARM_REG_R{i}")) for i in (1, 2))
    assert r2 - r1 == 5  # the end of block 1 to the end of block 2: 3 nops, ldr, b
    assert m.insns - before == 9  # every instruction of the snippet, the halt loop once


def test_the_boot_configures_what_the_board_needs() -> None:
    """The nucleo image leaves the clock tree the twin computes from RCC at 168 MHz with
    APB1 at 42 MHz, and the nRF image started the HFXO; no finding, no unknown access."""
    m = booted("nucleo-f429zi")
    rcc = next(p for p in m.peripherals if p.name == "RCC")
    assert (rcc.sysclk(), rcc.pclk(1), rcc.pclk(2)) == (168_000_000, 42_000_000, 84_000_000)
    assert m.findings == [] and m.unknown == []
    n = booted("nrf52840dk")
    clock = next(p for p in n.peripherals if p.name == "CLOCK")
    stat = clock.svd.register("HFCLKSTAT")
    assert clock.values[stat.offset] == 0x10001  # Xtal, running
    assert n.findings == [] and n.unknown == []


def test_linker_memory_map_is_read_from_the_script() -> None:
    regions = {r.name: r for r in memory_regions(BOARDS["nucleo-f429zi"].linker_script())}
    assert (regions["FLASH"].base, regions["FLASH"].size) == (0x08000000, 2 << 20)
    assert (regions["RAM"].base, regions["RAM"].size, regions["CCM"].base) == \
        (0x20000000, 192 << 10, 0x10000000)
    assert not regions["FLASH"].writable and regions["RAM"].writable


# --- the exception path: a tiny interrupt-driven image ---------------------------------

GCC = shutil.which("arm-none-eabi-gcc")
IMAGE_SRC = Path(__file__).parent / "twin_images" / "irq_echo.c"
N_SUM = 3000


def build_irq_image(board: str, out: Path) -> Path:
    regions = {r.name: r for r in memory_regions(BOARDS[board].linker_script())}
    flash, ram = regions["FLASH"], regions["RAM"]
    ld = out / f"{board}.ld"
    ld.write_text(f"""MEMORY {{
  FLASH (rx) : ORIGIN = {flash.base:#x}, LENGTH = {flash.size:#x}
  RAM (rwx) : ORIGIN = {ram.base:#x}, LENGTH = {ram.size:#x}
}}
ENTRY(Reset_Handler)
SECTIONS {{
  .text : {{ KEEP(*(.isr_vector)) *(.text*) *(.rodata*) }} > FLASH
  .bss (NOLOAD) : {{ __bss_start = .; *(.bss* COMMON) . = ALIGN(4); __bss_end = .; }} > RAM
  __stack_top = ORIGIN(RAM) + LENGTH(RAM);
}}
""")
    elf = out / f"irq_echo-{board}.elf"
    define = {"nucleo-f429zi": "BOARD_NUCLEO", "nrf52840dk": "BOARD_NRF52"}[board]
    assert GCC is not None
    subprocess.run([GCC, "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
                    "-mfpu=fpv4-sp-d16", "-O2", "-ffreestanding", "-nostdlib",
                    "-ffp-contract=off", f"-D{define}", f"-DN_SUM={N_SUM}u",
                    f"-DN_IRQS={BOARDS[board].n_irqs}u", "-T", str(ld),
                    "-o", str(elf), str(IMAGE_SRC)], check=True, capture_output=True)
    return elf


def read_until(t: TwinTransport, end: bytes, timeout: float = 5.0) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while not got.endswith(end) and time.monotonic() < deadline:
        got += t.read(256, 0.2)
    return got


@pytest.mark.toolchain
@pytest.mark.skipif(GCC is None, reason="arm-none-eabi-gcc missing")
@pytest.mark.parametrize("board", sorted(BOARDS))
def test_rx_interrupt_wfi_systick_and_fp_frames(board: str, tmp_path: Path) -> None:
    elf = build_irq_image(board, tmp_path)
    m = build_machine(board, elf, strict=True)
    m.reset()
    t = TwinTransport(m, f"twin:{board}", CLOCK[board])
    assert read_until(t, b">") == b">"
    t.write(b"abc")
    assert read_until(t, b"d") == b"bcd"  # each byte taken by the RX interrupt, echoed + 1
    # asleep in WFI with nothing pending: reads give the host control, the core does not spin
    assert m.sleeping
    idle_at = m.insns
    assert t.read(16, 0.05) == b""
    assert m.insns == idle_at
    t.write(b"r?")
    line = read_until(t, b"\n").decode()
    fields = dict(re.findall(r"([TAR])([0-9a-f]{8})", line))
    ticks, acc_bits, rx = (int(fields[k], 16) for k in "TAR")
    # the float sum the main loop kept in FP registers while both handlers used theirs
    want = np.cumsum(np.arange(N_SUM, dtype=np.float32) * np.float32(0.25), dtype=np.float32)
    assert acc_bits == int(want[-1:].view(np.uint32)[0]), line
    assert ticks > 0, "SysTick never interrupted the summing loop"
    assert rx == 5  # a, b, c, r, ?: one interrupt (at least one byte) each
    assert m.unknown == [] and m.findings == []
    assert not m.active  # every exception returned


def test_a_broken_vector_table_is_a_finding() -> None:
    m = booted("nucleo-f429zi", strict=False)
    m._uc.mem_write(0x08000000 + 4 * 3, (0x08000100).to_bytes(4, "little"))  # even: ARM state
    m._check_vectors(0x20002000)
    assert m.findings == ["vector 3 = 0x8000100 is not a Thumb address in flash"]
    m.findings.clear()
    m._check_vectors(0x20002004)  # not 8-byte aligned
    assert any("initial SP 0x20002004" in f for f in m.findings)
