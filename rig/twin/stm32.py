"""Behaviour models of the STM32F4 peripherals the NUCLEO-F429ZI image waits on or talks
through (RM0090): RCC ready flags and the clock tree it implies, clock gating of the
peripherals the board enables, and the link USART. Field positions come from the SVD;
the limits the models check are RM0090's (cited where used)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rig.twin.regs import PinPort, RegisterFile
from rig.twin.svd import Peripheral, Register

if TYPE_CHECKING:
    from rig.twin.machine import TwinMachine

HSI_HZ = 16_000_000  # RM0090 §6.2.2
HSE_HZ = 8_000_000  # NUCLEO-F429ZI: ST-LINK MCO, 8 MHz (UM1974 §6.7.1)
SYSCLK_MAX = 180_000_000  # RM0090 §6.2 (168 MHz without over-drive)
APB1_MAX, APB2_MAX = 45_000_000, 90_000_000
AHB_PRESC = {8: 2, 9: 4, 10: 8, 11: 16, 12: 64, 13: 128, 14: 256, 15: 512}
APB_PRESC = {4: 2, 5: 4, 6: 8, 7: 16}


def bits(reg: Register, prefix: str, value: int) -> int:
    """A field that the ST SVD splits into numbered one-bit fields (PLLM0..PLLM5, SW0..SW1)
    or gives whole (PLLN in some revisions): its value in `value`."""
    parts = sorted((f for f in reg.fields if f.name == prefix or
                    (f.name.startswith(prefix) and f.name[len(prefix):].isdigit())),
                   key=lambda f: f.offset)
    if not parts:
        raise KeyError(f"{reg.name} has no field {prefix}")
    lo = parts[0].offset
    width = parts[-1].offset + parts[-1].width - lo
    return (value >> lo) & ((1 << width) - 1)


def flag(reg: Register, name: str) -> int:
    return 1 << reg.field(name).offset


class Rcc(RegisterFile):
    """Oscillators and the PLL are ready as soon as they are switched on (lock time is not
    modelled); SWS follows SW when the selected source is ready. The configuration is
    checked against RM0090's limits when the PLL starts and when SYSCLK switches."""

    def __init__(self, svd: Peripheral, machine: TwinMachine, flash: RegisterFile,
                 pwr: RegisterFile) -> None:
        super().__init__(svd, machine)
        self.flash, self.pwr = flash, pwr
        self.cr = svd.register("CR")
        self.cfgr = svd.register("CFGR")
        self.pllcfgr = svd.register("PLLCFGR")

    def enabled(self, reg: str, fld: str) -> bool:
        r = self.svd.register(reg)
        return bool(self.values[r.offset] & flag(r, fld))

    def write(self, offset: int, value: int) -> None:
        if offset == self.cr.offset:
            ro = flag(self.cr, "HSIRDY") | flag(self.cr, "HSERDY") | flag(self.cr, "PLLRDY")
            value &= ~ro
            for on, rdy in (("HSION", "HSIRDY"), ("HSEON", "HSERDY"), ("PLLON", "PLLRDY")):
                if value & flag(self.cr, on):
                    value |= flag(self.cr, rdy)
            if value & flag(self.cr, "PLLON") and not self.values[offset] & flag(self.cr, "PLLON"):
                self._check_pll()
        elif offset == self.cfgr.offset:
            sw = bits(self.cfgr, "SW", value)
            ready = {0: "HSIRDY", 1: "HSERDY", 2: "PLLRDY"}.get(sw)
            sws = bits(self.cfgr, "SWS", self.values[offset])
            if ready and self.values[self.cr.offset] & flag(self.cr, ready):
                sws = sw
            lo = min(f.offset for f in self.cfgr.fields if f.name.startswith("SWS"))
            value = (value & ~(3 << lo)) | (sws << lo)
            self.values[offset] = value
            self._check_buses()
            return
        elif offset == self.pllcfgr.offset and self.values[self.cr.offset] & flag(self.cr, "PLLON"):
            self.machine.finding("RCC.PLLCFGR written while the PLL is on (RM0090 §6.3.2: "
                                 "configure it only while PLLON = 0)")
        super().write(offset, value)

    # -- the clock tree ------------------------------------------------------------------

    def pll_out(self) -> tuple[int, int, int, int]:
        """(input, VCO, P output, Q output) in Hz from PLLCFGR."""
        v = self.values[self.pllcfgr.offset]
        src = HSE_HZ if v & flag(self.pllcfgr, "PLLSRC") else HSI_HZ
        m, n = bits(self.pllcfgr, "PLLM", v), bits(self.pllcfgr, "PLLN", v)
        p = 2 * (bits(self.pllcfgr, "PLLP", v) + 1)
        q = bits(self.pllcfgr, "PLLQ", v)
        vin = src // m if m else 0
        vco = vin * n
        return vin, vco, vco // p, vco // q if q else 0

    def sysclk(self) -> int:
        sws = bits(self.cfgr, "SWS", self.values[self.cfgr.offset])
        return {0: HSI_HZ, 1: HSE_HZ}.get(sws) or self.pll_out()[2]

    def hclk(self) -> int:
        hpre = bits(self.cfgr, "HPRE", self.values[self.cfgr.offset])
        return self.sysclk() // AHB_PRESC.get(hpre, 1)

    def pclk(self, bus: int) -> int:
        ppre = bits(self.cfgr, f"PPRE{bus}", self.values[self.cfgr.offset])
        return self.hclk() // APB_PRESC.get(ppre, 1)

    def _check_pll(self) -> None:
        v = self.values[self.pllcfgr.offset]
        m, n = bits(self.pllcfgr, "PLLM", v), bits(self.pllcfgr, "PLLN", v)
        q = bits(self.pllcfgr, "PLLQ", v)
        vin, vco, p_out, q_out = self.pll_out()
        problems = []
        if not 2 <= m <= 63 or not 1_000_000 <= vin <= 2_000_000:
            problems.append(f"VCO input {vin} Hz (M = {m}) outside 1..2 MHz")
        if not 50 <= n <= 432 or not 100_000_000 <= vco <= 432_000_000:
            problems.append(f"VCO {vco} Hz (N = {n}) outside 100..432 MHz")
        if p_out > SYSCLK_MAX:
            problems.append(f"P output {p_out} Hz above {SYSCLK_MAX}")
        if not 2 <= q <= 15 or q_out > 48_000_000:
            problems.append(f"Q output {q_out} Hz (Q = {q}) above 48 MHz or Q outside 2..15")
        for p in problems:
            self.machine.finding(f"PLL started with {p} (RM0090 §6.3.2)")

    def _check_buses(self) -> None:
        hclk = self.hclk()
        ws = self.flash.values[0] & 0xF  # FLASH.ACR LATENCY
        # RM0090 Table 10, 2.7-3.6 V: one wait state per 30 MHz of HCLK
        need = max(0, -(-hclk // 30_000_000) - 1)
        if ws < need:
            self.machine.finding(f"HCLK {hclk} Hz with {ws} flash wait states (RM0090 Table 10"
                                 f" needs {need} at 2.7-3.6 V)")
        vos = bits(self.pwr.svd.register("CR"), "VOS", self.pwr.values[0])
        if hclk > 144_000_000 and vos != 3:
            self.machine.finding(f"HCLK {hclk} Hz needs PWR.CR VOS = scale 1 (3), got {vos} "
                                 "(RM0090 §5.1.4)")
        for bus, top in ((1, APB1_MAX), (2, APB2_MAX)):
            if self.pclk(bus) > top:
                self.machine.finding(f"APB{bus} at {self.pclk(bus)} Hz above {top} Hz")


class Gated(RegisterFile):
    """A peripheral whose bus clock the firmware must enable in RCC first; RM0090 §6.3:
    while the clock is off, writes are ignored and reads return 0."""

    def __init__(self, svd: Peripheral, machine: TwinMachine, rcc: Rcc, enable: str) -> None:
        super().__init__(svd, machine)
        self.rcc = rcc
        self.enable_reg, _, self.enable_field = enable.partition(".")
        reg = rcc.svd.register(self.enable_reg)
        self._en_off, self._en_bit = reg.offset, flag(reg, self.enable_field)

    def clocked(self) -> bool:
        return bool(self.rcc.values[self._en_off] & self._en_bit)

    def bus_read(self, offset: int, size: int) -> int | None:
        if self.knows(offset) and not self.clocked():
            self.machine.finding(f"read of {self.reg_name(offset)} while RCC.{self.enable_reg}."
                                 f"{self.enable_field} = 0 (no clock)")
        return super().bus_read(offset, size)

    def bus_write(self, offset: int, size: int, value: int) -> bool:
        if self.knows(offset) and not self.clocked():
            self.machine.finding(f"write of {self.reg_name(offset)} while RCC."
                                 f"{self.enable_reg}.{self.enable_field} = 0 (no clock)")
            return True
        return super().bus_write(offset, size, value)


class Gpio(Gated, PinPort):
    """A GPIO port (RM0090 §8.4): MODER/OTYPER/OSPEEDR/PUPDR/AFR are storage; ODR is the
    output latch; BSRR (write-only, reads 0) sets latch bits 0-15 and resets them with bits
    16-31, set winning when both are written. A pin in mode 01 (general-purpose output)
    drives its latch bit, and IDR reads it back; the machine records its changes (the
    measurement marker). Gated: no clock, no effect (a finding)."""

    def __init__(self, svd: Peripheral, machine: TwinMachine, rcc: Rcc, enable: str) -> None:
        super().__init__(svd, machine, rcc, enable)
        self._moder, self._odr = self.offset("MODER"), self.offset("ODR")
        self._bsrr, self._idr = self.offset("BSRR"), self.offset("IDR")

    def driven(self) -> int:
        moder, out = self.values[self._moder], 0
        for pin in range(16):
            if moder >> (2 * pin) & 3 == 1:
                out |= 1 << pin
        return self.values[self._odr] & out

    def read(self, offset: int) -> int:
        if offset == self._idr:
            return self.driven()  # inputs read 0: nothing drives them here
        return super().read(offset)

    def write(self, offset: int, value: int) -> None:
        if offset == self._bsrr:
            odr = self.values[self._odr] & ~(value >> 16) | (value & 0xFFFF)
            self.values[self._odr] = odr & 0xFFFF
            self.machine.epoch -= 1  # output levels, not configuration
            return
        if offset == self._odr:
            self.values[offset] = value & 0xFFFF
            self.machine.epoch -= 1
            return
        if offset == self._idr:
            self.machine.finding(f"{self.name}.IDR is read-only")
            return
        super().write(offset, value)


class Usart(Gated):
    """The link USART (SR/DR layout, RM0090 §30.6). TXE and TC are always set (TX has no
    baud rate); a host byte is in DR once the machine's wire says it has arrived
    (`TwinMachine.rx_pop`: paced at the baud rate, never overrun). Before the first
    byte goes out, the pins (MODER = AF, AFR = `af`), the pin port's clock and the baud
    rate at the modelled PCLK (±2 %) are checked: on a board, each of them wrong means no
    byte arrives."""

    def __init__(self, svd: Peripheral, machine: TwinMachine, rcc: Rcc, enable: str,
                 bus: int, gpio: Gated, tx_pin: int, rx_pin: int, af: int, baud: int) -> None:
        super().__init__(svd, machine, rcc, enable)
        self.bus, self.gpio, self.tx_pin, self.rx_pin, self.af = bus, gpio, tx_pin, rx_pin, af
        self.baud = baud
        self.sr, self.dr = svd.register("SR"), svd.register("DR")
        self.cr1 = svd.register("CR1")
        self.brr = svd.register("BRR")
        self.irq = svd.interrupts[0][1]
        self.rxne = flag(self.sr, "RXNE")
        self._sr_off, self._dr_off, self._cr1_off = self.sr.offset, self.dr.offset, \
            self.cr1.offset
        self._sr_clear = ~(self.rxne | flag(self.sr, "ORE"))
        self._sr_tx = flag(self.sr, "TXE") | flag(self.sr, "TC")
        self._bit = {f.name: 1 << f.offset for f in self.cr1.fields}
        self.rx_byte: int | None = None
        self._checked: int | None = None  # machine.epoch when the link was last checked

    def reset(self) -> None:
        super().reset()
        self.rx_byte = None
        self._checked = None

    def _cr1(self, name: str) -> bool:
        return bool(self.values[self._cr1_off] & self._bit[name])

    def _fill(self) -> None:
        if self.rx_byte is None and self._cr1("UE") and self._cr1("RE"):
            self.rx_byte = self.machine.rx_pop()

    def on_host_data(self) -> None:
        self._fill()

    def bus_read(self, offset: int, size: int) -> int | None:
        if offset == self._sr_off and size == 4 and self.clocked():  # the hot path
            return self.read(offset)
        return super().bus_read(offset, size)

    def bus_write(self, offset: int, size: int, value: int) -> bool:
        if offset == self._dr_off and self._checked == self.machine.epoch - 1:
            self.machine.epoch -= 1  # a data write changes no configuration
            self.machine.tx_push(value & 0xFF)
            return True
        return super().bus_write(offset, size, value)

    def read(self, offset: int) -> int:
        if offset == self._sr_off:
            if self.rx_byte is None:
                self._fill()
            sr = (self.values[offset] & self._sr_clear) | self._sr_tx
            if self.rx_byte is not None:
                sr |= self.rxne
            else:
                self.machine.note_rx_poll()
            return sr
        if offset == self._dr_off:
            byte, self.rx_byte = self.rx_byte, None
            self._fill()
            self.machine.note_rx_data(byte is not None)
            if self.rx_byte is not None and self._cr1("RXNEIE"):
                self.machine.kick()
            return 0 if byte is None else byte
        return super().read(offset)

    def write(self, offset: int, value: int) -> None:
        if offset == self._dr_off:
            if not (self._cr1("UE") and self._cr1("TE")):
                self.machine.finding(f"{self.name}.DR written while CR1.UE/TE are off: the "
                                     "byte is not sent")
                return
            self.machine.epoch -= 1  # a data write changes no configuration
            self._check_link()
            self.machine.tx_push(value & 0xFF)
            return
        if offset == self.sr.offset:  # rc_w0 flags: only clearing is possible
            self.values[offset] &= value
            return
        super().write(offset, value)
        if offset == self.cr1.offset:
            self._fill()
            self.machine.kick()

    def irq_lines(self) -> tuple[int, ...]:
        if ((self.rx_byte is not None and self._cr1("RXNEIE"))
                or self._cr1("TXEIE") or self._cr1("TCIE")):
            return (self.irq,)
        return ()

    def _check_link(self) -> None:
        """What a board needs before a byte reaches the ST-LINK VCP, checked once per
        configuration."""
        moder = self.gpio.svd.register("MODER")
        if self._checked == self.machine.epoch:
            return
        self._checked = self.machine.epoch
        if not self.gpio.clocked():
            self.machine.finding(f"{self.name} sends while {self.gpio.name} has no clock")
        for pin in (self.tx_pin, self.rx_pin):
            mode = self.gpio.values[moder.offset] >> (2 * pin) & 3
            reg = self.gpio.svd.register("AFRH" if pin >= 8 else "AFRL")
            af = self.gpio.values[reg.offset] >> (4 * (pin % 8)) & 0xF
            if mode != 2 or af != self.af:
                self.machine.finding(f"{self.name}: pin {self.gpio.name}{pin} is mode {mode}, "
                                     f"AF{af}; the link needs mode 2 (alternate), AF{self.af}")
        brr = self.values[self.brr.offset]
        over8 = self._cr1("OVER8")
        mant, frac = brr >> 4, brr & 0xF
        div16 = mant * 16 + (frac & 7) * 2 if over8 else mant * 16 + frac  # USARTDIV * 16
        pclk = self.rcc.pclk(self.bus)
        actual = pclk * 16 / ((8 if over8 else 16) * div16) if div16 else 0.0
        if abs(actual - self.baud) > 0.02 * self.baud:
            self.machine.finding(f"{self.name}: BRR {brr:#x} at PCLK{self.bus} {pclk} Hz gives "
                                 f"{actual:.0f} baud, not {self.baud} (RM0090 §30.3.4)")
