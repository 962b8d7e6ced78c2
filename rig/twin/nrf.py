"""Behaviour models of the Nordic peripherals the nRF52840-DK image waits on or talks
through (nRF52840 Product Specification v1.7): CLOCK start tasks and their events, the
GPIO set/clear aliases, and the legacy UART0 (§6.33; ENABLE = 4) that carries the link.

Tasks are write-1 triggers, events are set by the model and cleared by writing 0; an
interrupt line is (event AND its INTEN bit), level-sensitive, as on the chip."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rig.twin.regs import PinPort, RegisterFile
from rig.twin.svd import Peripheral

if TYPE_CHECKING:
    from rig.twin.machine import TwinMachine


class Clock(RegisterFile):
    """HFXO / LFCLK start at once: the STARTED event is set by the task (the crystal's
    start-up time, ~0.3 ms for the HFXO, is not modelled)."""

    def write(self, offset: int, value: int) -> None:
        reg = self.svd.at(offset)
        name = reg.name if reg else ""
        if name == "TASKS_HFCLKSTART" and value & 1:
            self.values[self.offset("EVENTS_HFCLKSTARTED")] = 1
            stat = self.svd.register("HFCLKSTAT")
            self.values[stat.offset] = (1 << stat.field("SRC").offset
                                        | 1 << stat.field("STATE").offset)
            return
        if name == "TASKS_LFCLKSTART" and value & 1:
            self.values[self.offset("EVENTS_LFCLKSTARTED")] = 1
            return
        if name.startswith("TASKS_"):
            return  # other tasks: nothing the firmware waits on
        super().write(offset, value)


class Gpio(PinPort):
    """A GPIO port (PS §6.9): OUT/DIR with their SET/CLR aliases (write 1 to set/clear;
    reads give the register); PIN_CNF[n].DIR is DIR's bit n (one physical bit, PS §6.9.2).
    A pin with DIR = 1 drives its OUT bit, and IN reads it back; the machine records its
    changes (the measurement marker on P1)."""

    ALIASES = {"OUTSET": ("OUT", 1), "OUTCLR": ("OUT", 0),
               "DIRSET": ("DIR", 1), "DIRCLR": ("DIR", 0)}

    def __init__(self, svd: Peripheral, machine: TwinMachine) -> None:
        super().__init__(svd, machine)
        self._out, self._dir, self._in = self.offset("OUT"), self.offset("DIR"), \
            self.offset("IN")
        self._cnf0 = self.offset("PIN_CNF[0]")

    def driven(self) -> int:
        return self.values[self._out] & self.values[self._dir]

    def read(self, offset: int) -> int:
        if offset == self._in:
            return self.driven()  # inputs read 0: nothing drives them here
        reg = self.svd.at(offset)
        if reg is not None and reg.name in self.ALIASES:
            return self.values[self.offset(self.ALIASES[reg.name][0])]
        return super().read(offset)

    def write(self, offset: int, value: int) -> None:
        reg = self.svd.at(offset)
        name = reg.name if reg is not None else ""
        if name in self.ALIASES:
            target, on = self.ALIASES[name]
            t = self.offset(target)
            self.values[t] = self.values[t] | value if on else self.values[t] & ~value
            if target == "OUT":
                self.machine.epoch -= 1  # output levels, not configuration
        elif name == "IN":
            self.machine.finding(f"{self.name}.IN is read-only")
            return
        else:
            super().write(offset, value)
            if name == "OUT":
                self.machine.epoch -= 1
        if name.startswith("PIN_CNF["):
            pin = (offset - self._cnf0) // 4
            d = self.values[self._dir] & ~(1 << pin) | (value & 1) << pin
            self.values[self._dir] = d
        elif name.startswith("DIR"):
            d = self.values[self._dir]
            for pin in range(32):
                off = self._cnf0 + 4 * pin
                self.values[off] = self.values[off] & ~1 | (d >> pin & 1)

    def is_output(self, pin: int) -> bool:
        return bool(self.values[self._dir] >> pin & 1)


class Uart(RegisterFile):
    """Legacy UART (nRF52840 PS §6.33, the nRF51's UART0 too). TXD written while TX is
    started sends the byte and sets EVENTS_TXDRDY; a host byte moves into RXD (and sets
    EVENTS_RXDRDY) when it has arrived (the machine paces the wire at the baud rate), RXD
    is free and RX is started; reading RXD frees it (no overruns). Before the first byte
    goes out, ENABLE, the pin selects, the TX pin's direction, BAUDRATE (the SVD's
    enumerated value for `baud`) and CONFIG (no flow control, no parity) are checked."""

    #: register names differ between the nRF52 (PSEL_TXD) and nRF51 (PSELTXD) SVDs
    def __init__(self, svd: Peripheral, machine: TwinMachine, gpio: Gpio, tx_pin: int,
                 rx_pin: int, baud: int) -> None:
        super().__init__(svd, machine)
        self.gpio, self.tx_pin, self.rx_pin, self.baud = gpio, tx_pin, rx_pin, baud
        self.names = {r.offset: r.name.replace("PSEL_", "PSEL") for r in svd.registers}
        self.off = {n: o for o, n in self.names.items()}
        self.irq = svd.interrupts[0][1]
        self.tx_on = self.rx_on = False
        self.rxd: int | None = None
        self.inten = 0
        inten = svd.register("INTENSET")
        self.bit = {f.name: 1 << f.offset for f in inten.fields}
        self.baud_value = dict(svd.register("BAUDRATE").field("BAUDRATE").values).get(
            f"Baud{baud}")
        self._checked: int | None = None  # machine.epoch when the link was last checked

    def reset(self) -> None:
        super().reset()
        self.tx_on = self.rx_on = False
        self.rxd = None
        self.inten = 0
        self._checked = None

    def _enabled(self) -> bool:
        return self.values[self.off["ENABLE"]] == 4

    def _fill(self) -> None:
        if self.rxd is None and self.rx_on and self._enabled():
            byte = self.machine.rx_pop()
            if byte is not None:
                self.rxd = byte
                self.values[self.off["EVENTS_RXDRDY"]] = 1

    def on_host_data(self) -> None:
        self._fill()
        if self.rxd is not None:
            self.machine.kick()

    def read(self, offset: int) -> int:
        name = self.names.get(offset)
        if name == "EVENTS_RXDRDY":
            self._fill()
            value = self.values[offset]
            if not value:
                self.machine.note_rx_poll()
            return value
        if name == "RXD":
            byte, self.rxd = self.rxd, None
            self.machine.note_rx_data(byte is not None)
            self._fill()
            if self.rxd is not None and self.inten & self.bit["RXDRDY"]:
                self.machine.kick()
            return 0 if byte is None else byte
        if name in ("INTENSET", "INTENCLR"):
            return self.inten
        return super().read(offset)

    def write(self, offset: int, value: int) -> None:
        name = self.names.get(offset, "")
        if name.startswith("EVENTS_"):  # clearing an event changes no configuration
            self.values[offset] = value
            self.machine.epoch -= 1
            return
        if name == "TASKS_STARTTX" and value & 1:
            self.tx_on = True
        elif name == "TASKS_STOPTX" and value & 1:
            self.tx_on = False
        elif name == "TASKS_STARTRX" and value & 1:
            self.rx_on = True
            self._fill()
        elif name == "TASKS_STOPRX" and value & 1:
            self.rx_on = False
        elif name.startswith("TASKS_"):
            pass
        elif name == "INTENSET":
            self.inten |= value
            self.machine.kick()
        elif name == "INTENCLR":
            self.inten &= ~value
        elif name == "TXD":
            if not (self._enabled() and self.tx_on):
                self.machine.finding(f"{self.name}.TXD written while ENABLE != 4 or TX not "
                                     "started: the byte is not sent")
                return
            self.machine.epoch -= 1  # a data write changes no configuration
            self._check_link()
            self.machine.tx_push(value & 0xFF)
            self.values[self.off["EVENTS_TXDRDY"]] = 1
        elif name == "ERRORSRC":  # write 1 to clear
            self.values[offset] &= ~value
        elif name == "RXD":
            self.machine.finding(f"{self.name}.RXD is read-only")
        else:
            super().write(offset, value)
            if name == "ENABLE":
                if value not in (0, 4):
                    self.machine.finding(f"{self.name}.ENABLE = {value}: this twin models the "
                                         "legacy UART (4), which the image is built for")
                self._fill()

    def irq_lines(self) -> tuple[int, ...]:
        for ev, bit in (("EVENTS_RXDRDY", "RXDRDY"), ("EVENTS_TXDRDY", "TXDRDY"),
                        ("EVENTS_ERROR", "ERROR")):
            if self.values[self.off[ev]] and self.inten & self.bit[bit]:
                return (self.irq,)
        return ()

    def _check_link(self) -> None:
        if self._checked == self.machine.epoch:
            return
        self._checked = self.machine.epoch
        keys = ("PSELTXD", "PSELRXD", "PSELRTS", "PSELCTS", "BAUDRATE", "CONFIG")
        txd, rxd, rts, cts, baud, config = (self.values[self.off[k]] for k in keys)
        for what, got, want in (("PSELTXD", txd, self.tx_pin), ("PSELRXD", rxd, self.rx_pin)):
            if got != want:  # port 0, CONNECT = 0: the value is the pin number
                self.machine.finding(f"{self.name}.{what} = {got:#x}; the link is on P0."
                                     f"{want:02d}")
        for what, got in (("PSELRTS", rts), ("PSELCTS", cts)):
            if not got >> 31 & 1:
                self.machine.finding(f"{self.name}.{what} = {got:#x} connects a flow-control "
                                     "pin the link does not have")
        if config != 0:
            self.machine.finding(f"{self.name}.CONFIG = {config:#x}: the link is 8N1 without "
                                 "flow control")
        if self.baud_value is None:
            self.machine.finding(f"{self.name}: the SVD has no Baud{self.baud} value")
        elif baud != self.baud_value:
            self.machine.finding(f"{self.name}.BAUDRATE = {baud:#x}, not the SVD's Baud"
                                 f"{self.baud} ({self.baud_value:#x})")
        if not self.gpio.is_output(self.tx_pin):
            self.machine.finding(f"TX pin P0.{self.tx_pin:02d} is not an output (DIR): the "
                                 "line floats until the UART takes it")
