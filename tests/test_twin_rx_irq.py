"""The merged board images' interrupt-driven link RX and WFI idle (firmware/README.md "Link
RX by interrupt, WFI when idle") executed on the board twins (emulated): every host byte
is taken from the UART inside the UART's interrupt handler (the interrupt number from the
vendor's SVD, not from the firmware), the core sleeps in WFI when it waits for the host,
the answers are right, and nothing overran or was unknown to the twin's models."""

from __future__ import annotations

import time

import pytest

from rig.device import Device
from rig.firmware import FIRMWARE_SRC
from rig.link.link import Link
from rig.twin.boards import build_machine
from rig.twin.transport import TwinTransport

CLOCK = {"nucleo-f429zi": 168_000_000, "nrf52840dk": 64_000_000}
UART = {"nucleo-f429zi": "USART3", "nrf52840dk": "UART0"}


@pytest.mark.parametrize("board", sorted(CLOCK))
def test_link_rx_by_interrupt_and_wfi_on_the_prebuilt_image(board: str) -> None:
    m = build_machine(board, FIRMWARE_SRC / "prebuilt" / f"{board}.elf", strict=True)
    m.reset()
    assert m.run(time.monotonic() + 10, until_tx=False) == "idle"
    # idle means asleep in WFI inside hal_wait_rx, not polling
    wait = m.elf.symbols["hal_wait_rx"]
    assert m.sleeping and wait.address <= m.pc < wait.address + wait.size
    m.tx.clear()  # the boot line
    irq = next(p for p in m.peripherals if p.name == UART[board]).irq  # type: ignore[attr-defined]
    transport = TwinTransport(m, f"twin:{board}", CLOCK[board], wall_factor=20.0)
    dev = Device(Link(transport, timeout=5.0, retries=0))
    assert dev.hello().board == board
    payload = bytes(range(256)) * 4  # > the 256-slot RX ring: the wire's pace, no overrun
    payload = payload[:min(len(payload), dev.max_payload - 16)]
    assert dev.echo(payload) == payload
    stats = dev.stats()
    assert (stats.rx_overruns, stats.rx_ring_full) == (0, 0)
    assert m.rx_fed > len(payload)
    assert dict(m.rx_taken) == {16 + irq: m.rx_fed}  # every byte, and only in the handler
    assert m.entered[16 + irq] >= 3 and m.wfi_sleeps >= 3
    assert m.unknown == [] and m.findings == []
