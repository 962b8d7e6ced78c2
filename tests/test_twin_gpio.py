"""The twins' GPIO models (rig.twin.stm32.Gpio, rig.twin.nrf.Gpio) at the bus: the
register semantics the marker pin relies on, driven-level changes recorded with the
modelled time, clock gating, and strict mode still strict next to them. Addresses are
the reference manuals' (RM0090 §8.4 / nRF52840 PS §6.9), written here, not taken from the
firmware."""

from __future__ import annotations

import time

import pytest

from rig.firmware import FIRMWARE_SRC
from rig.twin.boards import build_machine
from rig.twin.machine import TwinError, TwinMachine

GPIOE, GPIOF, RCC_AHB1ENR = 0x4002_1000, 0x4002_1400, 0x4002_3830
MODER, IDR, ODR, BSRR = 0x00, 0x10, 0x14, 0x18
P0, P1 = 0x5000_0000, 0x5000_0300
OUT, OUTSET, OUTCLR, IN, DIR, DIRCLR, PIN_CNF = 0x504, 0x508, 0x50C, 0x510, 0x514, 0x51C, 0x700


def booted(board: str, strict: bool = False) -> TwinMachine:
    m = build_machine(board, FIRMWARE_SRC / "prebuilt" / f"{board}.elf", strict=strict)
    m.reset()
    assert m.run(time.monotonic() + 10, until_tx=False) == "idle"
    return m


def levels(m: TwinMachine, port: str, pin: int) -> list[int]:
    return [e.level for e in m.pin_edges if (e.port, e.pin) == (port, pin)]


def test_stm32_gpiof_bsrr_odr_moder_and_the_clock() -> None:
    m = booted("nucleo-f429zi")
    assert m._mmio_read(GPIOF + MODER, 4) >> 26 & 3 == 1  # the image made PF13 an output
    assert levels(m, "GPIOF", 13) == []  # low since the boot
    m._mmio_write(GPIOF + BSRR, 4, 1 << 13)
    assert levels(m, "GPIOF", 13) == [1] and m.pin_edges[-1].insns == m.insns
    assert m._mmio_read(GPIOF + BSRR, 4) == 0  # write-only
    assert m._mmio_read(GPIOF + IDR, 4) == m._mmio_read(GPIOF + ODR, 4) == 1 << 13
    m._mmio_write(GPIOF + BSRR, 4, (1 << 13) | (1 << 29))  # set wins: no change
    m._mmio_write(GPIOF + BSRR, 4, 1 << 29)
    m._mmio_write(GPIOF + ODR, 4, 1 << 13)
    assert levels(m, "GPIOF", 13) == [1, 0, 1]
    m._mmio_write(GPIOF + MODER, 4, 0)  # input: drives nothing
    assert levels(m, "GPIOF", 13) == [1, 0, 1, 0]
    assert m.unknown == [] and m.findings == []
    # clock off: the write is ignored and is a finding
    m._mmio_write(RCC_AHB1ENR, 4, m._mmio_read(RCC_AHB1ENR, 4) & ~(1 << 5))
    m._mmio_write(GPIOF + MODER, 4, 1 << 26)
    assert any("GPIOF.MODER while RCC.AHB1ENR.GPIOFEN = 0" in f for f in m.findings)
    # an unmodelled port stays unknown
    m._mmio_write(GPIOE + BSRR, 4, 1)
    assert [a.address for a in m.unknown] == [GPIOE + BSRR]


def test_nrf_p1_set_clear_dir_pin_cnf_and_the_overlapping_p0_block() -> None:
    m = booted("nrf52840dk")
    assert m._mmio_read(P1 + DIR, 4) >> 8 & 1  # the image made P1.08 an output
    m._mmio_write(P1 + OUTSET, 4, 1 << 8)
    m._mmio_write(P1 + OUTSET, 4, 1 << 8)
    assert levels(m, "P1", 8) == [1]
    assert m._mmio_read(P1 + IN, 4) >> 8 & 1 and m._mmio_read(P1 + OUT, 4) == 1 << 8
    m._mmio_write(P1 + DIRCLR, 4, 1 << 8)  # input: drives nothing
    assert levels(m, "P1", 8) == [1, 0] and m._mmio_read(P1 + PIN_CNF + 32, 4) & 1 == 0
    m._mmio_write(P1 + PIN_CNF + 32, 4, 1)  # PIN_CNF[8].DIR = output: DIR bit 8
    assert levels(m, "P1", 8) == [1, 0, 1] and m._mmio_read(P1 + DIR, 4) >> 8 & 1
    m._mmio_write(P1 + OUTCLR, 4, 1 << 8)
    assert levels(m, "P1", 8) == [1, 0, 1, 0]
    assert levels(m, "P0", 8) == []  # P0's pin 8 (the link's RX) untouched
    assert m.unknown == [] and m.findings == []
    # holes next to the ports' registers are unknown, not another port's registers
    m._mmio_read(P0 + 0x600 + 0x300, 4)  # P1 +0x600: no register
    m._mmio_read(P0 + 0x400, 4)  # P0 +0x400: no register
    assert [a.address for a in m.unknown] == [P0 + 0x900, P0 + 0x400]


@pytest.mark.parametrize("board, address", [("nucleo-f429zi", GPIOE + ODR),
                                            ("nrf52840dk", P0 + 0x400)])
def test_strict_twin_still_stops_at_an_unknown_gpio_address(board: str, address: int) -> None:
    m = booted(board, strict=True)
    m._mmio_write(address, 4, 1)
    with pytest.raises(TwinError, match=f"unknown register access: .*{address:#010x}"):
        m.run(time.monotonic() + 5, until_tx=False)
