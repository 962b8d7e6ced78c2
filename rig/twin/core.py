"""The Armv7-M System Control Space the twins model: SCB, NVIC, SysTick, DWT and the
CoreDebug registers (Armv7-M ARM, B3.2 SCS, B3.3 SysTick, B3.4 NVIC, C1.8 DWT, C1.6 debug
registers). Addresses and reset values are the architecture's; what a register *does* is
modelled only where the firmware depends on it:

- DWT CYCCNT counts executed instructions while DEMCR.TRCENA and DWT_CTRL.CYCCNTENA are
  set: one cycle per instruction, i.e. `cycles (twin model)`, not silicon timing.
- SysTick counts down at the same rate and pends exception 15 when it reaches 0 with
  TICKINT set.
- NVIC enable/pending/priority registers feed the machine's exception logic.
- DHCSR reads 0: no debugger is attached (the firmware then never uses semihosting).
- CPACR is stored; unicorn always executes VFP instructions, so an access before CP10/CP11
  are enabled (a NOCP UsageFault on silicon) is not detected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rig.twin.machine import TwinMachine

SCS_BASE = 0xE000E000
PPB = (0xE0000000, 0x100000)  # the Private Peripheral Bus the machine maps for this model

# offsets from 0xE0000000 -> (name, reset value)
ICTR, SYST_CSR, SYST_RVR, SYST_CVR, SYST_CALIB = 0xE004, 0xE010, 0xE014, 0xE018, 0xE01C
NVIC_ISER, NVIC_ICER, NVIC_ISPR, NVIC_ICPR, NVIC_IABR, NVIC_IPR = \
    0xE100, 0xE180, 0xE200, 0xE280, 0xE300, 0xE400
CPUID, ICSR, VTOR, AIRCR, SCR, CCR = 0xED00, 0xED04, 0xED08, 0xED0C, 0xED10, 0xED14
SHPR1, SHPR2, SHPR3, SHCSR, CFSR, HFSR, DFSR, MMFAR, BFAR, AFSR = \
    0xED18, 0xED1C, 0xED20, 0xED24, 0xED28, 0xED2C, 0xED30, 0xED34, 0xED38, 0xED3C
CPACR, DHCSR, DCRSR, DCRDR, DEMCR, STIR = 0xED88, 0xEDF0, 0xEDF4, 0xEDF8, 0xEDFC, 0xEF00
FPCCR, FPCAR, FPDSCR = 0xEF34, 0xEF38, 0xEF3C
DWT_CTRL, DWT_CYCCNT = 0x1000, 0x1004

#: Cortex-M4 r0p1 (the STM32F429 and the nRF52840)
CPUID_M4 = 0x410FC241

CFSR_UNDEFINSTR = 1 << 16
CFSR_IBUSERR = 1 << 8
CFSR_PRECISERR = 1 << 9
CFSR_BFARVALID = 1 << 15
HFSR_FORCED = 1 << 30
HFSR_DEBUGEVT = 1 << 31


class SystemControl:
    """SCB + NVIC + SysTick + DWT + CoreDebug of one Cortex-M4 (up to `n_irqs` IRQs)."""

    def __init__(self, machine: TwinMachine, n_irqs: int, prio_bits: int) -> None:
        self.machine = machine
        self.n_irqs = n_irqs
        self.prio_bits = prio_bits
        self.enabled: set[int] = set()
        self.pending: set[int] = set()  # software/edge pending IRQs
        self.prio = bytearray(n_irqs)
        self.values: dict[int, int] = {
            ICTR: (n_irqs + 31) // 32 - 1, CPUID: CPUID_M4, VTOR: 0, AIRCR: 0xFA050000,
            SCR: 0, CCR: 0x200, SHPR1: 0, SHPR2: 0, SHPR3: 0, SHCSR: 0, CFSR: 0, HFSR: 0,
            DFSR: 0, MMFAR: 0, BFAR: 0, AFSR: 0, CPACR: 0, DHCSR: 0, DCRSR: 0, DCRDR: 0,
            DEMCR: 0, FPCCR: 0xC0000000, FPCAR: 0, FPDSCR: 0,
            SYST_CSR: 0, SYST_RVR: 0, SYST_CALIB: 0, DWT_CTRL: 0x40000000,
        }
        # DWT CYCCNT = cyc_base + instructions since cyc_from while counting
        self.cyc_base = 0
        self.cyc_from: int | None = None
        # SysTick: while running, the counter next reaches 0 at instruction `st_next`;
        # while stopped it holds `st_held`
        self.st_next: int | None = None
        self.st_held = 0
        self.st_countflag = False
        self.st_pending = False

    # -- what the machine asks -----------------------------------------------------------

    @property
    def vtor(self) -> int:
        return self.values[VTOR]

    def sys_priority(self, exc: int) -> int:
        """Priority of system exception 4..15 (SHPR1..3, one byte each)."""
        reg = SHPR1 + (exc - 4) // 4 * 4
        return self.values[reg] >> (8 * (exc % 4)) & 0xFF

    def irq_priority(self, irq: int) -> int:
        return self.prio[irq]

    def cyccnt(self, now: int) -> int:
        if self.cyc_from is None:
            return self.cyc_base
        return (self.cyc_base + now - self.cyc_from) & 0xFFFFFFFF

    def _cyc_update(self, now: int) -> None:
        counting = bool(self.values[DEMCR] >> 24 & 1 and self.values[DWT_CTRL] & 1)
        if counting and self.cyc_from is None:
            self.cyc_from = now
        elif not counting and self.cyc_from is not None:
            self.cyc_base = self.cyccnt(now)
            self.cyc_from = None

    def systick_running(self) -> bool:
        return bool(self.values[SYST_CSR] & 1)

    def _period(self) -> int:
        return (self.values[SYST_RVR] & 0xFFFFFF) + 1

    def systick_value(self, now: int) -> int:
        if self.st_next is None:
            return self.st_held
        return (self.st_next - now) % self._period()

    def systick_due(self, now: int) -> bool:
        """Advance past every time the counter reached 0 up to `now`: COUNTFLAG, and the
        exception if TICKINT. True if it did."""
        fired = False
        while self.st_next is not None and self.st_next <= now:
            fired = True
            self.st_countflag = True
            if self.values[SYST_CSR] & 2:
                self.st_pending = True
            self.st_next += self._period()
            if self._period() <= 1:  # RVR 0: the counter stays at 0 (B3.3.1)
                self.st_next = None
        return fired

    # -- the bus -------------------------------------------------------------------------

    def knows(self, off: int) -> bool:
        off &= ~3
        return (off in self.values or off in (SYST_CVR, DWT_CYCCNT, ICSR, STIR)
                or self._nvic(off) is not None)

    def _nvic(self, off: int) -> tuple[int, int] | None:
        """(register base, index) for the NVIC arrays this core implements."""
        words = (self.n_irqs + 31) // 32
        for base in (NVIC_ISER, NVIC_ICER, NVIC_ISPR, NVIC_ICPR, NVIC_IABR):
            if base <= off < base + 4 * words:
                return base, (off - base) // 4
        if NVIC_IPR <= off < NVIC_IPR + ((self.n_irqs + 3) & ~3):
            return NVIC_IPR, off - NVIC_IPR
        return None

    def bus_read(self, off: int, size: int) -> int | None:
        word = off & ~3
        value = self._read(word)
        if value is None:
            return None
        return (value >> 8 * (off & 3)) & ((1 << 8 * size) - 1)

    def _read(self, off: int) -> int | None:
        m = self.machine
        if off == DWT_CYCCNT:
            return self.cyccnt(m.now())
        if off == SYST_CVR:
            return self.systick_value(m.now())
        if off == SYST_CSR:
            self.systick_due(m.now())
            flag = self.st_countflag
            self.st_countflag = False  # COUNTFLAG clears on read
            return self.values[SYST_CSR] | (flag << 16)
        if off == ICSR:
            active = m.active_exception()
            pend = m.highest_pending()
            return active | ((pend or 0) & 0x1FF) << 12 | (self.st_pending << 26)
        if off == STIR:
            return 0
        nv = self._nvic(off)
        if nv is not None:
            base, i = nv
            if base == NVIC_IPR:
                return int.from_bytes(self.prio[i:i + 4], "little")
            bits = {NVIC_ISER: self.enabled, NVIC_ICER: self.enabled,
                    NVIC_ISPR: m.pending_irqs(), NVIC_ICPR: m.pending_irqs(),
                    NVIC_IABR: m.active_irqs()}[base]
            return sum(1 << (n - 32 * i) for n in bits if 32 * i <= n < 32 * i + 32)
        return self.values.get(off)

    def bus_write(self, off: int, size: int, value: int) -> bool:
        word = off & ~3
        if not self.knows(word):
            return False
        nv = self._nvic(word)
        if nv is not None and nv[0] == NVIC_IPR:  # byte-accessible
            mask = (0x100 - (1 << (8 - self.prio_bits))) & 0xFF  # implemented high bits
            for b in range(size):
                i = nv[1] + (off & 3) + b
                if i < self.n_irqs:
                    self.prio[i] = (value >> 8 * b) & mask
            self.machine.kick()
            return True
        if size < 4:
            shift = 8 * (off & 3)
            old = self._read(word) or 0
            m = ((1 << 8 * size) - 1) << shift
            value = (old & ~m) | ((value << shift) & m)
        self._write(word, value & 0xFFFFFFFF)
        return True

    def _write(self, off: int, value: int) -> None:
        m = self.machine
        now = m.now()
        nv = self._nvic(off)
        if nv is not None:
            base, i = nv
            bits = {n for n in range(32 * i, min(32 * i + 32, self.n_irqs))
                    if value >> (n - 32 * i) & 1}
            if base == NVIC_ISER:
                self.enabled |= bits
            elif base == NVIC_ICER:
                self.enabled -= bits
            elif base == NVIC_ISPR:
                self.pending |= bits
            elif base == NVIC_ICPR:
                self.pending -= bits
            m.kick()
            return
        if off == STIR:
            if (value & 0x1FF) < self.n_irqs:
                self.pending.add(value & 0x1FF)
                m.kick()
            return
        if off == ICSR:
            if value & (1 << 26):
                self.st_pending = True
                m.kick()
            if value & (1 << 25):
                self.st_pending = False
            return
        if off == DWT_CYCCNT:
            self.cyc_base = value
            if self.cyc_from is not None:
                self.cyc_from = now
            return
        if off == SYST_CVR:  # any write clears the counter and COUNTFLAG
            self.st_countflag = False
            if self.st_next is None:
                self.st_held = 0
            else:  # 0 now, RVR at the next tick, 0 again RVR ticks later
                self.st_next = now + self._period()
            m.kick()
            return
        if off == SYST_CSR:
            was = self.systick_running()
            self.values[off] = value & 0x7
            if not was and value & 1:  # counting resumes from the held value
                held = self.st_held or self._period()
                self.st_next = now + held
            elif was and not value & 1:
                self.st_held = self.systick_value(now)
                self.st_next = None
            m.kick()
            return
        if off in (CFSR, HFSR, DFSR):  # write-one-to-clear
            self.values[off] &= ~value
            return
        if off in (CPUID, ICTR, SYST_CALIB):
            return  # read-only
        if off == AIRCR:
            if value >> 16 == 0x05FA and value & 4:  # SYSRESETREQ
                m.request_reset()
            self.values[off] = (self.values[off] & 0xFFFF0000) | (value & 0x0700)
            return
        if off == VTOR:
            value &= 0xFFFFFF80
        if off == DWT_CTRL:  # NUMCOMP and the NO* capability bits are read-only
            value = (self.values[off] & 0xFF000000) | (value & 0x00FFFFFF)
        self.values[off] = value
        if off in (DEMCR, DWT_CTRL):
            self._cyc_update(now)
        if off in (SHPR1, SHPR2, SHPR3, SHCSR):
            m.kick()
