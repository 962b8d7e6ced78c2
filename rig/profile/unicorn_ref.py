"""An independent emulator for the instruction counts: the firmware image on unicorn.

`UnicornFirmware` boots the same ELF on unicorn's Cortex-M4 with the FPU enabled (CPACR
CP10/CP11 full access, set before the first instruction; the firmware's reset code writes
the same value again), models the board's UART on the MMIO bus, and
is a `Transport`: the rig's own link, device client and `TrainingSession` drive it exactly
as they drive QEMU, so both emulators execute the same firmware on the same bytes. A code
hook counts every executed instruction between the same `tr_mark_*` markers the QEMU
plugin uses, with the same rule (a window's instructions are those executed after its
begin marker returns and before its end marker runs; marker bodies are not counted).
The counts must equal the plugin's, window by window (`tests/test_profile_unicorn.py`).

Unicorn shares QEMU's translator lineage but not its plugin machinery, its block
attribution, or this project's instruction decoder; the class histogram here comes from
capstone (`rig.profile.isa.classify_capstone`), another independent decoder.

Only the mps2-an386 board (CMSDK UART0) is modelled. Unicorn has no NVIC, so the one
interrupt the firmware needs is delivered by hand: the firmware receives by the UART's RX
interrupt and sleeps in `hal_wait_rx`'s WFI while its ring is empty (firmware/README.md,
"Link RX by interrupt"). The run stops before that WFI: with no input waiting the
firmware is idle; with input, `UART_RX_IRQHandler` is called there (an AAPCS function,
as every Cortex-M handler is; all registers saved and restored around it) and the
firmware resumes after the WFI, as the core does when the pending interrupt wakes it and
`cpsie i` lets it run. SysTick never fires here, which is why the QEMU plugin excludes
interrupt handlers from its windows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.elf import ElfImage, read_elf
from rig.errors import UnicornError
from rig.profile.icount import RECORD_WINDOWS, marker_windows

LABEL = "instructions (unicorn)"
#: where the RX handler "returns" (a `b .` in RAM the mps2-an386 image leaves unused)
IRQ_RETURN = 0x203FFF00


@dataclass(frozen=True)
class BoardModel:
    """Memory map and UART of one board, as far as the firmware uses them."""

    name: str
    ram: tuple[tuple[int, int], ...]  # (base, size) plain memory regions
    uart_base: int
    uart_size: int = 0x1000
    #: the firmware function that sleeps in WFI while no input is waiting
    idle_fn: str = "hal_wait_rx"
    #: the link UART's RX interrupt handler
    rx_irq_handler: str = "UART_RX_IRQHandler"


BOARDS: dict[str, BoardModel] = {
    # mps2-an386 (Arm MPS2 AN386): 4 MB code SSRAM at 0, 4 MB at 0x20000000, APB peripherals
    # from 0x40000000 (CMSDK UART0 at 0x40004000), the System Control Space at 0xE000E000.
    "mps2-an386": BoardModel(
        "mps2-an386",
        ram=((0x00000000, 0x400000), (0x20000000, 0x400000), (0x40000000, 0x4000),
             (0x40005000, 0xFB000), (0xE0000000, 0x100000)),
        uart_base=0x40004000),
}


@dataclass
class WindowTrace:
    """Per-address execution counts of one window in one record."""

    entries: int = 0
    addr_counts: Counter[int] = field(default_factory=Counter)
    cond_taken: int = 0  # conditional branches (addresses in `cond_branches`) that branched

    @property
    def insns(self) -> int:
        return sum(self.addr_counts.values())


@dataclass
class UnicornRecord:
    kind: str
    seq: int
    windows: dict[str, WindowTrace]


class UnicornFirmware:
    """The firmware on unicorn, usable as a rig `Transport` (write / read / close)."""

    def __init__(self, elf: str | Path, board: str = "mps2-an386",
                 cond_branches: Mapping[int, int] | None = None,
                 max_insns_per_read: int = 200_000_000) -> None:
        try:
            import unicorn
            from unicorn import arm_const
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise UnicornError("the unicorn cross-check needs `pip install unicorn`") from exc
        if board not in BOARDS:
            raise UnicornError(f"no unicorn model of board {board!r} (have {sorted(BOARDS)})")
        self._uc_mod, self._arm = unicorn, arm_const
        self.name = f"unicorn:{Path(elf).name}"
        self.elf: ElfImage = read_elf(elf)
        self.board = BOARDS[board]
        self.max_insns_per_read = max_insns_per_read
        self.windows = marker_windows(self.elf)
        # address -> (window, is_end)
        self._markers: dict[int, tuple[str, bool]] = {}
        for w, (b, e) in self.windows.items():
            self._markers[b] = (w, False)
            self._markers[e] = (w, True)
        self._marker_lo = min(self._markers)
        self._marker_hi = max(self._markers) + 4
        #: conditional branch address -> size (for taken counts), optional
        self.cond_branches = dict(cond_branches or {})
        self.records: list[UnicornRecord] = []
        self._seq: Counter[str] = Counter()
        self._active: set[str] = set()
        self._cur: dict[str, WindowTrace] = {}
        self._targets: list[WindowTrace] = []
        self._prev: tuple[int, int] | None = None  # last counted conditional branch
        self._prev_targets: list[WindowTrace] = []
        self.total_insns = 0
        self._it_addrs = it_instructions(self.elf)
        self._it_blocks: dict[int, list[int]] = {}
        self._it_pending: list[int] = []
        self._rx = bytearray()
        self._tx = bytearray()
        self._fault: str | None = None
        self._wfi = wfi_address(self.elf, self.board.idle_fn)
        self._rx_irq = self.elf.symbol(self.board.rx_irq_handler).address
        self._uc = self._boot()

    # ------------------------------------------------------------------ machine

    def _boot(self) -> Any:
        uc_mod, a = self._uc_mod, self._arm
        uc = uc_mod.Uc(uc_mod.UC_ARCH_ARM, uc_mod.UC_MODE_THUMB | uc_mod.UC_MODE_MCLASS)
        uc.ctl_set_cpu_model(a.UC_CPU_ARM_CORTEX_M4)
        for base, size in self.board.ram:
            uc.mem_map(base, size)
        uc.mmio_map(self.board.uart_base, self.board.uart_size, self._uart_read, None,
                    self._uart_write, None)
        for seg in self.elf.segments:  # load at the LMA, as QEMU's -kernel loader does
            if seg.data:
                uc.mem_write(seg.paddr, seg.data)
        vec = self.elf.read(0, 8)
        sp = int.from_bytes(vec[0:4], "little")
        self._pc = int.from_bytes(vec[4:8], "little")
        uc.reg_write(a.UC_ARM_REG_MSP, sp)
        uc.reg_write(a.UC_ARM_REG_SP, sp)
        # CPACR (0xE000ED88) bits 20-23: CP10/CP11 full access, as the reset code sets it.
        # Unicorn keeps the System Control Space as plain memory here, so also tell the CPU.
        uc.mem_write(0xE000ED88, (0xF << 20).to_bytes(4, "little"))
        uc.reg_write(a.UC_ARM_REG_C1_C0_2, 0xF << 20)
        if self.elf.symbol("__bss_end").address > IRQ_RETURN:
            raise UnicornError(f"{self.name}: RAM use reaches the IRQ return trampoline")
        uc.mem_write(IRQ_RETURN, b"\xfe\xe7")  # b . (see _rx_interrupt)
        text_hi = max(s.paddr + len(s.data) for s in self.elf.segments if s.paddr < 0x20000000)
        uc.hook_add(uc_mod.UC_HOOK_CODE, self._on_insn, begin=0, end=text_hi)
        uc.hook_add(uc_mod.UC_HOOK_INTR, self._on_intr)
        uc.hook_add(uc_mod.UC_HOOK_MEM_UNMAPPED, self._on_unmapped)
        return uc

    def _run(self) -> None:
        """Run until the firmware waits for input with none left to give it (it reached
        the WFI of its idle function), or faults."""
        before = self.total_insns
        while True:
            try:
                self._uc.emu_start(self._pc | 1, self._wfi, count=1_000_000)
            except self._uc_mod.UcError as exc:
                pc = self._uc.reg_read(self._arm.UC_ARM_REG_PC)
                raise UnicornError(f"{self.name}: emulation stopped at pc={pc:#x}: {exc}"
                                   + (f" ({self._fault})" if self._fault else "")) from exc
            self._pc = self._uc.reg_read(self._arm.UC_ARM_REG_PC)
            if self._fault:
                raise UnicornError(f"{self.name}: {self._fault} at pc={self._pc:#x}")
            if self.total_insns - before > self.max_insns_per_read:
                raise UnicornError(f"{self.name}: firmware did not return to its receive "
                                   f"loop within {self.max_insns_per_read} instructions")
            if self._pc == self._wfi:
                if not self._rx:
                    return  # idle: waiting for input
                self._rx_interrupt()

    def _rx_interrupt(self) -> None:
        """Run the RX handler at the WFI, then resume after it (see the module doc)."""
        uc, a = self._uc, self._arm
        regs = [getattr(a, f"UC_ARM_REG_R{i}") for i in range(13)] + [
            a.UC_ARM_REG_SP, a.UC_ARM_REG_LR, a.UC_ARM_REG_APSR, a.UC_ARM_REG_FPSCR] + [
            getattr(a, f"UC_ARM_REG_S{i}") for i in range(32)]
        saved = [uc.reg_read(r) for r in regs]
        # The handler returns to a private trampoline, never executed otherwise: unicorn
        # stops at an `until` address only in code translated while it was the exit, so
        # returning straight into cached firmware code would run on past it.
        uc.reg_write(a.UC_ARM_REG_LR, IRQ_RETURN | 1)
        try:
            uc.emu_start(self._rx_irq | 1, IRQ_RETURN, count=1_000_000)
        except self._uc_mod.UcError as exc:
            raise UnicornError(f"{self.name}: RX interrupt handler failed: {exc}") from exc
        if uc.reg_read(a.UC_ARM_REG_PC) != IRQ_RETURN:
            raise UnicornError(f"{self.name}: RX interrupt handler did not return")
        for r, v in zip(regs, saved, strict=True):
            uc.reg_write(r, v)
        self._pc = self._wfi + 2  # after the WFI (a 16-bit instruction)

    def _uart_read(self, uc: Any, offset: int, size: int, _ud: Any) -> int:
        if offset == 0x0:  # DATA
            return self._rx.pop(0) if self._rx else 0
        if offset == 0x4:  # STATE: bit0 TX full (never), bit1 RX full
            return 2 if self._rx else 0
        return 0

    def _uart_write(self, uc: Any, offset: int, size: int, value: int, _ud: Any) -> None:
        if offset == 0x0:
            self._tx.append(value & 0xFF)

    def _on_intr(self, uc: Any, intno: int, _ud: Any) -> None:
        self._fault = f"exception/interrupt {intno} (semihosting or fault)"
        uc.emu_stop()

    def _on_unmapped(self, uc: Any, access: int, address: int, size: int, value: int,
                     _ud: Any) -> bool:
        self._fault = f"unmapped memory access at {address:#x}"
        return False

    # ------------------------------------------------------------------ counting

    def _it_block(self, address: int) -> list[int]:
        """Addresses of the instructions an IT instruction at `address` covers."""
        block = self._it_blocks.get(address)
        if block is None:
            mem = bytes(self._uc.mem_read(address, 2 + 4 * 4))
            mask = mem[0] & 0xF
            n = 4 - (mask & -mask).bit_length() + 1
            block, off = [], 2
            for _ in range(n):
                block.append(address + off)
                hw = int.from_bytes(mem[off:off + 2], "little")
                off += 4 if (hw >> 11) in (0x1D, 0x1E, 0x1F) else 2
            self._it_blocks[address] = block
        return block

    def _retire_skipped(self, address: int) -> None:
        """Instructions of an IT block whose condition failed run as NOPs (ARMv7-M ARM
        A7.3.3): architecturally executed, counted like QEMU counts them, but unicorn's code
        hook does not see them. Count them when the next instruction shows up."""
        pend = self._it_pending
        while pend and pend[0] != address:
            skipped = pend.pop(0)
            self.total_insns += 1
            for t in self._targets:
                t.addr_counts[skipped] += 1
        if pend:
            pend.pop(0)

    def _on_insn(self, uc: Any, address: int, size: int, _ud: Any) -> None:
        if self._it_pending:
            self._retire_skipped(address)
        self.total_insns += 1
        prev = self._prev
        if prev is not None:
            if address != prev[0] + prev[1]:
                for t in self._prev_targets:
                    t.cond_taken += 1
            self._prev = None
        if self._marker_lo <= address < self._marker_hi:
            marker = self._markers.get(address)
            if marker is not None:
                self._on_marker(*marker)
                return
            if any(lo <= address < lo + 4 for lo in self._markers):
                return  # rest of a marker body
        if size == 2 and address in self._it_addrs:
            self._it_pending = list(self._it_block(address))
        if self._targets:
            for t in self._targets:
                t.addr_counts[address] += 1
            if address in self.cond_branches:
                self._prev = (address, size)
                self._prev_targets = self._targets

    def _on_marker(self, window: str, end: bool) -> None:
        if not end:
            if window in RECORD_WINDOWS:
                self._cur = {w: WindowTrace() for w in self.windows
                             if w not in RECORD_WINDOWS or w == window}
                self._active = set()
            if window not in self._cur:
                self._cur[window] = WindowTrace()
            self._cur[window].entries += 1
            self._active.add(window)
        else:
            self._active.discard(window)
            if window in RECORD_WINDOWS:
                self._seq[window] += 1
                self.records.append(UnicornRecord(window, self._seq[window], self._cur))
                self._active = set()
                self._cur = {}
        self._targets = [self._cur[w] for w in sorted(self._active)]

    # ------------------------------------------------------------------ Transport

    def write(self, data: bytes) -> None:
        self._rx.extend(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if not self._tx:
            self._run()
        if not self._tx:
            return b""
        out = bytes(self._tx[:max_bytes])
        del self._tx[:max_bytes]
        return out

    def close(self) -> None:
        self._rx.clear()
        self._tx.clear()

    def take_records(self) -> list[UnicornRecord]:
        out, self.records = self.records, []
        return out


def wfi_address(elf: ElfImage, function: str) -> int:
    """Address of the WFI instruction in `function` (capstone)."""
    import capstone

    sym = elf.symbol(function)
    md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    for insn in md.disasm(elf.read(sym.address, sym.size), sym.address):
        if insn.mnemonic == "wfi":
            return int(insn.address)
    raise UnicornError(f"{elf.path}: no WFI in {function} (firmware older than RX by "
                       "interrupt?)")


def it_instructions(elf: ElfImage) -> set[int]:
    """Addresses of the IT instructions in the image's code (capstone, linear sweep over
    each function symbol; literal pools sit between functions)."""
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    out: set[int] = set()
    for sym in elf.functions().values():
        if not sym.size:
            continue
        code = elf.read(sym.address, sym.size)
        for insn in md.disasm(code, sym.address):
            if insn.mnemonic.startswith("it"):
                out.add(insn.address)
    return out
