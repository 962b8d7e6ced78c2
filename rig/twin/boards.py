"""The boards the twins know: which SVD, which peripherals are modelled (everything else
in the peripheral space is an unknown access), where the link UART's pins are, and the
memory map, read from the board's linker script (`MEMORY { ... }`).

The pins and the link's baud rate are board facts from the boards' user manuals
(NUCLEO-F429ZI UM1974: USART3 on PD8/PD9, AF7, to the ST-LINK virtual COM port;
nRF52840-DK: P0.06 TX / P0.08 RX to the J-Link OB virtual COM port), not read from the
firmware, so a firmware that uses other pins fails on the twin as it would on the board.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rig.elf import read_elf
from rig.errors import ConfigError
from rig.firmware import FIRMWARE_SRC
from rig.twin import nrf, stm32
from rig.twin.machine import MemoryRegion, TwinMachine, Window
from rig.twin.regs import RegisterFile
from rig.twin.svd import Device, load_device

LINK_BAUD = 115_200


@dataclass(frozen=True)
class TwinBoard:
    name: str
    svd: str  # one of pyocd's built-in SVD files
    n_irqs: int  # device interrupts (the vector table's entries after the 16 system ones)
    prio_bits: int  # implemented NVIC priority bits
    clock_hz: int  # the core clock the image runs at (one instruction per cycle)
    #: (alias base, region origin): memory that also appears at the alias (boot mapping)
    boot_alias: tuple[int, int] | None
    models: Callable[[TwinMachine, Device], list[RegisterFile]]

    def linker_script(self) -> Path:
        return FIRMWARE_SRC / "boards" / self.name / "linker.ld"


def _nucleo_f429zi(m: TwinMachine, dev: Device) -> list[RegisterFile]:
    flash = RegisterFile(dev.peripheral("FLASH"), m)
    rcc = stm32.Rcc(dev.peripheral("RCC"), m, flash, RegisterFile(dev.peripheral("PWR"), m))
    pwr = stm32.Gated(dev.peripheral("PWR"), m, rcc, "APB1ENR.PWREN")
    rcc.pwr = pwr
    gpiod = stm32.Gpio(dev.peripheral("GPIOD"), m, rcc, "AHB1ENR.GPIODEN")
    usart3 = stm32.Usart(dev.peripheral("USART3"), m, rcc, "APB1ENR.USART3EN", bus=1,
                         gpio=gpiod, tx_pin=8, rx_pin=9, af=7, baud=LINK_BAUD)
    gpiof = stm32.Gpio(dev.peripheral("GPIOF"), m, rcc, "AHB1ENR.GPIOFEN")  # marker PF13
    return [rcc, flash, pwr, gpiod, usart3, gpiof]


def _nrf52840dk(m: TwinMachine, dev: Device) -> list[RegisterFile]:
    gpio = nrf.Gpio(dev.peripheral("P0"), m)
    uart = nrf.Uart(dev.peripheral("UART0"), m, gpio, tx_pin=6, rx_pin=8, baud=LINK_BAUD)
    p1 = nrf.Gpio(dev.peripheral("P1"), m)  # the measurement marker, P1.08
    return [nrf.Clock(dev.peripheral("CLOCK"), m), gpio, uart, p1]


BOARDS: dict[str, TwinBoard] = {
    # STM32F429ZI: 91 device vectors, 4 priority bits (RM0090 §12.1); flash at 0x08000000
    # appears at 0 when booting from main flash (BOOT0 = 0, RM0090 §2.4)
    "nucleo-f429zi": TwinBoard("nucleo-f429zi", "STM32F429x.svd", 91, 4, 168_000_000,
                               (0x00000000, 0x08000000), _nucleo_f429zi),
    # nRF52840: 48 device vectors, 3 priority bits (PS §6.1 / §5.3.1); flash at 0
    "nrf52840dk": TwinBoard("nrf52840dk", "nrf52840.svd", 48, 3, 64_000_000, None,
                            _nrf52840dk),
}

_MEMORY = re.compile(r"MEMORY\s*\{(.*?)\}", re.S)
_REGION = re.compile(r"(\w+)\s*\(([rwx!]+)\)\s*:\s*ORIGIN\s*=\s*(0x[0-9a-fA-F]+|\d+)\s*,"
                     r"\s*LENGTH\s*=\s*(0x[0-9a-fA-F]+|\d+)\s*([KM]?)")


def memory_regions(linker_script: Path) -> list[MemoryRegion]:
    """The MEMORY regions of a GNU ld script: name, origin, length, writable."""
    text = re.sub(r"/\*.*?\*/", "", linker_script.read_text(), flags=re.S)
    block = _MEMORY.search(text)
    if block is None:
        raise ConfigError(f"{linker_script}: no MEMORY block")
    out = []
    for name, attrs, origin, length, unit in _REGION.findall(block.group(1)):
        size = int(length, 0) * {"": 1, "K": 1024, "M": 1024 * 1024}[unit]
        out.append(MemoryRegion(name, int(origin, 0), size, "w" in attrs))
    if not out:
        raise ConfigError(f"{linker_script}: MEMORY block without regions")
    return out


def peripheral_windows(dev: Device) -> list[Window]:
    """The MMIO windows covering every peripheral of the SVD (4 KB pages, merged)."""
    pages = sorted({a >> 12 for p in dev.peripherals.values() if p.base < 0xE0000000
                    for a in range(p.base, p.base + max(p.size, 1), 0x1000)})
    windows: list[Window] = []
    for page in pages:
        if windows and windows[-1].base + windows[-1].size == page << 12:
            last = windows.pop()
            windows.append(Window(last.base, last.size + 0x1000))
        else:
            windows.append(Window(page << 12, 0x1000))
    return windows


def svd_name_of(dev: Device) -> Callable[[int], str]:
    """address -> "PERIPH.REGISTER" (or "PERIPH+offset", or "no peripheral")."""
    def name(addr: int) -> str:
        for p in dev.peripherals.values():
            if p.base <= addr < p.base + max(p.size, 4):
                reg = p.at(addr - p.base)
                return f"{p.name}.{reg.name}" if reg else f"{p.name}+{addr - p.base:#x}"
        if 0xE0000000 <= addr < 0xE0100000:
            return "System Control Space"
        return "no peripheral"
    return name


def build_machine(board: str, elf: str | Path, strict: bool = True) -> TwinMachine:
    """A powered-off twin of `board` holding `elf` (call `reset()` to power it on)."""
    try:
        tb = BOARDS[board]
    except KeyError:
        raise ConfigError(f"no twin of board {board!r}; twins exist for "
                          f"{', '.join(sorted(BOARDS))}") from None
    dev = load_device(tb.svd)
    image = read_elf(elf)
    m = TwinMachine(image, memory_regions(tb.linker_script()), peripheral_windows(dev),
                    tb.n_irqs, tb.prio_bits, strict=strict, boot_alias=tb.boot_alias,
                    name_of=svd_name_of(dev), byte_insns=tb.clock_hz * 10 // LINK_BAUD)
    for model in tb.models(m, dev):
        m.attach(model)
    return m
