"""The twin's engine: an unmodified board image on unicorn's Cortex-M4 (Thumb-2, FPU), with
the board's memory map and register models, Cortex-M exception entry/return and WFI.
One concept (the emulated core and its bus) in one module (~800 lines).

How it runs (speed matters: lockstep training executes millions of instructions):
- unicorn executes in chunks; the only hooks in the hot path are a block hook (counts
  instructions: the size of each translated block, decoded once and cached) and MMIO
  callbacks on the peripheral and System Control Space windows. No per-instruction hook.
- Instruction counts are exact for every block that runs to its end; a block cut short by
  a fault counts in full (only at faults). Instructions skipped by a failed IT condition
  count as executed (as in QEMU's plugin). A CYCCNT read is exact to the instruction: the
  count at block entry plus the instructions before the load in that block.
- Exceptions are the machine's job (unicorn has no NVIC): faults unicorn reports and
  interrupts that are pending, enabled and of sufficient priority are entered between
  chunks: the 8-word frame (26 words with the FP context once the FPU is enabled, as on a
  core whose CONTROL.FPCA is set), 8-byte stack alignment, LR = EXC_RETURN, the handler
  from the vector table at VTOR. A return to an EXC_RETURN value (unicorn reports it as an
  exception-exit) pops the frame.
- WFI ends a chunk; with nothing pending the machine is asleep and gives control back to
  the host (the transport) instead of spinning. A polled firmware is idle after two empty
  receiver polls from the same block with no byte moved in between. Host bytes arrive at
  the link's baud rate (`byte_insns` per byte); asleep or idle with a byte still on the
  wire, the clock skips to its arrival (`waited`). Otherwise time does not advance while
  the host has control: the twin's clock is its instruction count.
- A branch to itself (the firmware's halt loops) stops the machine: `halted`.

Every access into a peripheral window at an address no model declares is an unknown
access, logged with the PC; in strict mode it stops the machine with a TwinError. The same
holds for the `finding`s of the behaviour models (wrong pin, clock, baud rate).
"""

from __future__ import annotations

import ctypes
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rig.elf import ElfImage
from rig.errors import RigError
from rig.twin import core
from rig.twin.accel import Counter, c_hook, python_hook
from rig.twin.core import SystemControl
from rig.twin.regs import RegisterFile

CHUNK = 200_000  # instructions per emu_start when nothing else stops the machine
EXC_RETURN_THREAD_MSP = 0xFFFFFFF9
EXC_HARDFAULT, EXC_MEMMANAGE, EXC_BUSFAULT, EXC_USAGEFAULT = 3, 4, 5, 6
EXC_SVCALL, EXC_PENDSV, EXC_SYSTICK = 11, 14, 15
FRAME_BASIC, FRAME_FP = 0x20, 0x68


class TwinError(RigError):
    """The twin met something it must not hide: an unknown register access (strict), a
    board-code problem a model found, or a state it does not model."""


@dataclass(frozen=True)
class Access:
    pc: int
    address: int
    write: bool
    value: int
    where: str  # the SVD's name for the address, or the window

    def __str__(self) -> str:
        op = f"write {self.value:#x} to" if self.write else "read of"
        return f"pc={self.pc:#010x}: {op} {self.address:#010x} ({self.where})"


@dataclass(frozen=True)
class PinEdge:
    """A GPIO output pin changed the level it drives (a pin is driven when the firmware
    made it an output; its level is then the output latch's bit). `insns` is the twin's
    modelled time: instructions executed at the end of the storing block."""

    insns: int
    port: str  # the SVD's name: GPIOF, P1
    port_base: int
    pin: int
    level: int

    def __str__(self) -> str:
        return f"{self.port}.{self.pin} -> {self.level} at {self.insns} instructions (twin model)"


@dataclass(frozen=True)
class MemoryRegion:
    name: str
    base: int
    size: int
    writable: bool


@dataclass(frozen=True)
class Window:
    """An address range the machine maps as MMIO (peripherals or the PPB)."""

    base: int
    size: int


class TwinMachine:
    """One board's core, memory and peripherals. Peripheral models are attached with
    `attach` before `reset`; the link UART calls `rx_pop` / `tx_push`."""

    def __init__(self, elf: ElfImage, regions: list[MemoryRegion], windows: list[Window],
                 n_irqs: int, prio_bits: int, strict: bool = True,
                 boot_alias: tuple[int, int] | None = None,
                 name_of: Callable[[int], str] | None = None, byte_insns: int = 0) -> None:
        import unicorn
        from unicorn import arm_const

        self._u, self._a = unicorn, arm_const
        self.elf = elf
        self.regions = regions
        self.windows = windows
        self.strict = strict
        self.boot_alias = boot_alias
        #: instructions one byte takes on the wire (10 bits at the link's baud rate and the
        #: core clock; 0: bytes arrive at once)
        self.byte_insns = byte_insns
        self._name_of = name_of or (lambda a: "no register")
        self.scs = SystemControl(self, n_irqs, prio_bits)
        self.peripherals: list[RegisterFile] = []
        self._index: dict[int, RegisterFile] = {}  # address >> 10 -> model
        #: bumped by every register write other than data: models cache checks against it
        self.epoch = 0
        self.unknown: list[Access] = []
        self.findings: list[str] = []
        #: every output-pin level change since construction (kept over resets)
        self.pin_edges: list[PinEdge] = []
        #: called with each PinEdge as it happens (from inside the engine: keep them short)
        self.pin_listeners: list[Callable[[PinEdge], None]] = []
        #: since construction: exceptions entered (by number), link bytes the firmware took
        #: from the UART (by the exception it was in, 0 = thread mode), WFI sleeps
        self.entered: Tally[int] = Tally()
        self.rx_taken: Tally[int] = Tally()
        self.rx_fed = 0  # host bytes put on the wire
        self.wfi_sleeps = 0
        self.rx = bytearray()  # host -> device, not yet taken by the UART
        self.tx = bytearray()  # device -> host, not yet read
        self.c = Counter()
        self._where_cache: dict[tuple[int, int, bool], int] = {}
        self._uc: Any = None
        self._buffers: list[Any] = []
        from unicorn.unicorn_py3 import unicorn as binding
        self._reg_read = binding.uclib.uc_reg_read
        self._pc_buf = ctypes.c_uint32()
        self._pc_ptr = ctypes.cast(ctypes.pointer(self._pc_buf), ctypes.c_void_p)
        self.accelerated = False
        self._wfi = _find_halfwords(elf, (0xBF30,))  # WFI (T1)
        self._cpsie = _find_halfwords(elf, (0xB662,))  # CPSIE I
        self._clear()

    def _clear(self) -> None:
        self.c.insns = self.c.halted = self.c.outside = 0
        self.c.blk_addr = self.c.blk_n = self.c.blk_size = 0
        self.pc = 0
        self.active: list[int] = []  # active exception numbers, innermost last
        self.frames: list[int] = []  # EXC_RETURN pushed for each active exception
        self.sleeping = self.idle = False
        self._wfi_at: int | None = None
        self._empty_polls = 0
        self._poll_pc = 0
        self.rx_due = 0  # instruction count at which the next host byte has arrived
        self.waited = 0  # instruction times skipped while waiting for the wire
        self.c.stop_at = CHUNK
        self._exit_pending = False
        self._fault: tuple[int, int, int] | None = None  # (exc, cfsr bits, bfar)
        self._error: str | None = None
        self._reset_requested = False

    @property
    def insns(self) -> int:
        """Instructions executed since reset (at the entry of the current block)."""
        return int(self.c.insns)

    @property
    def halted(self) -> bool:
        return bool(self.c.halted)

    # ------------------------------------------------------------------ set-up

    def attach(self, model: RegisterFile) -> None:
        """Route the 1 KB pages holding `model`'s registers to it. Pages, not the SVD's
        address block: blocks may overlap (the nRF52840's P0 block spans P1's registers)."""
        self.peripherals.append(model)
        for page in sorted({(model.base + r.offset) >> 10 for r in model.svd.registers}):
            other = self._index.get(page)
            if other is not None and other is not model:
                raise TwinError(f"{model.name} and {other.name} both have registers in "
                                f"{page << 10:#x}..+0x3ff")
            self._index[page] = model

    def reset(self) -> None:
        """Power-on: fresh memory with the image loaded at its load addresses, registers at
        their reset values, SP and PC from the vector table at address 0."""
        u, a = self._u, self._a
        uc = u.Uc(u.UC_ARCH_ARM, u.UC_MODE_THUMB | u.UC_MODE_MCLASS)
        uc.ctl_set_cpu_model(a.UC_CPU_ARM_CORTEX_M4)
        self._buffers = []
        for r in self.regions:
            perms = u.UC_PROT_ALL if r.writable else u.UC_PROT_READ | u.UC_PROT_EXEC
            buf = ctypes.create_string_buffer(r.size)
            self._buffers.append(buf)
            uc.mem_map_ptr(r.base, r.size, perms, buf)
            if self.boot_alias is not None and self.boot_alias[1] == r.base:
                uc.mem_map_ptr(self.boot_alias[0], r.size, perms, buf)  # same bytes
        for seg in self.elf.segments:
            if not seg.data:
                continue
            if not any(r.base <= seg.paddr and seg.paddr + len(seg.data) <= r.base + r.size
                       for r in self.regions):
                raise TwinError(f"{self.elf.path}: segment at {seg.paddr:#x} (+{len(seg.data)})"
                                " lies outside the board's memory (linker script)")
            uc.mem_write(seg.paddr, seg.data)
        self._uc = uc
        for w in self.windows:
            self._mmio(w.base, w.size, self._mmio_read, self._mmio_write)
        self._mmio(core.PPB[0], core.PPB[1], self._ppb_read, self._ppb_write)
        self._add_block_hook(uc)
        uc.hook_add(u.UC_HOOK_INTR, self._on_intr)
        uc.hook_add(u.UC_HOOK_MEM_UNMAPPED, self._on_unmapped)
        for addr in self._wfi:  # one-address code hooks: no cost elsewhere
            uc.hook_add(u.UC_HOOK_CODE, self._on_wfi, begin=addr, end=addr)
        for addr in self._cpsie:
            uc.hook_add(u.UC_HOOK_CODE, self._on_cpsie, begin=addr, end=addr)
        self._uc = uc
        self.scs = SystemControl(self, self.scs.n_irqs, self.scs.prio_bits)
        for p in self.peripherals:
            p.reset()
        self._clear()
        try:
            vec = bytes(uc.mem_read(0, 8))
        except u.UcError as exc:
            raise TwinError("nothing is mapped at address 0, where the core fetches its reset "
                            "vector") from exc
        sp, pc = int.from_bytes(vec[:4], "little"), int.from_bytes(vec[4:], "little")
        self._check_vectors(sp)
        if self._error is not None:
            raise TwinError(self._error)
        uc.reg_write(a.UC_ARM_REG_MSP, sp)
        uc.reg_write(a.UC_ARM_REG_SP, sp)
        self.pc = pc & ~1
        if not pc & 1:
            raise TwinError(f"reset vector {pc:#x} has bit 0 clear (not Thumb): the core "
                            "would fault on the first instruction")

    def _check_vectors(self, sp: int) -> None:
        """The vector table the core boots from (address 0): an 8-byte aligned initial SP
        inside writable memory, and every handler a Thumb address in read-only memory
        (entries 7-10 and 13 are reserved); the image's `vector_table` has one entry per
        device interrupt."""
        n = 16 + self.scs.n_irqs
        table = bytes(self._uc.mem_read(0, 4 * n))
        code = [(r.base, r.base + r.size) for r in self.regions if not r.writable]
        if self.boot_alias is not None:
            code += [(self.boot_alias[0], self.boot_alias[0] + r.size) for r in self.regions
                     if r.base == self.boot_alias[1]]
        if sp % 8 or not any(r.writable and r.base < sp <= r.base + r.size
                             for r in self.regions):
            self._record(f"initial SP {sp:#x} is not an 8-byte aligned address in RAM")
        for i in range(1, n):
            v = int.from_bytes(table[4 * i:4 * i + 4], "little")
            if i in (7, 8, 9, 10, 13) and v == 0:
                continue
            if not v & 1 or not any(lo <= v & ~1 < hi for lo, hi in code):
                self._record(f"vector {i} = {v:#x} is not a Thumb address in flash")
        sym = self.elf.symbols.get("vector_table")
        if sym is not None and sym.size != 4 * n:
            self._record(f"vector_table has {sym.size // 4} entries; the device has {n} "
                         f"(16 + {self.scs.n_irqs} interrupts)")

    def _record(self, text: str) -> None:
        self.findings.append(text)
        if self.strict:
            self._set_error(text)

    # ------------------------------------------------------------------ what models call

    def now(self) -> int:
        """Instructions executed so far, as counted at the end of the current block: what a
        CYCCNT or SysTick read inside a block sees (unicorn keeps the PC exact only at block
        boundaries, so the position inside the block is not known)."""
        return int(self.c.insns)

    def where(self, write: bool | None = None) -> int:
        """The PC of the current peripheral access: the only load (`write` False) or store
        (True) of the current block, else the block's first address."""
        c = self.c
        start, size = int(c.blk_addr), int(c.blk_size)
        if write is None or not size:
            return start
        key = (start, size, write)
        pc = self._where_cache.get(key)
        if pc is None:
            pc = _only_access(bytes(self._uc.mem_read(start, size)), start, write) or start
            self._where_cache[key] = pc
        return pc

    def _stop_soon(self) -> None:
        """Stop at the next block boundary (the block hook stops the engine): unicorn's
        state is consistent there, including the IT state of a block cut short."""
        self.c.stop_at = 0

    def kick(self) -> None:
        """Something an interrupt depends on changed: stop at the end of this block so the
        exception logic looks again."""
        self.c.stop_at = 0

    def finding(self, text: str) -> None:
        self._record(f"pc={self.where():#010x} (block): {text}")
        if self.strict:
            self._stop_soon()

    def pin_changed(self, port: RegisterFile, pin: int, level: int) -> None:
        """A GPIO model saw a driven pin change: record it with the modelled time and tell
        the listeners (a simulated instrument's logic input, a test)."""
        edge = PinEdge(self.now(), port.name, port.base, pin, level)
        self.pin_edges.append(edge)
        for listener in self.pin_listeners:
            listener(edge)

    def rx_pop(self) -> int | None:
        """The next host byte if it has arrived (the wire runs at the link's baud rate)."""
        if not self.rx:
            return None
        now = self.now()
        if now < self.rx_due:
            return None
        b = self.rx[0]
        del self.rx[0]
        self.rx_due = max(self.rx_due, now) + self.byte_insns
        return b

    def tx_push(self, byte: int) -> None:
        self.tx.append(byte)
        self._empty_polls = 0

    def note_rx_poll(self) -> None:
        """The firmware found its receiver empty. The second time in a row at the same PC
        with no byte moved in between, it is idle (waiting for the host). The PC matters:
        on the STM32 the transmitter's TXE wait reads the same status register."""
        pc = int(self.c.blk_addr)  # the polling code's block
        if pc != self._poll_pc:
            self._poll_pc, self._empty_polls = pc, 0
        self._empty_polls += 1
        if self._empty_polls >= 2:
            self.idle = True
            self._stop_soon()

    def note_rx_data(self, took: bool = True) -> None:
        """The firmware read the receiver's data register (`took`: a byte was there)."""
        self._empty_polls = 0
        if took:
            self.rx_taken[self.active[-1] if self.active else 0] += 1

    def request_reset(self) -> None:
        self._reset_requested = True
        self._stop_soon()

    def active_exception(self) -> int:
        return self.active[-1] if self.active else 0

    def active_irqs(self) -> set[int]:
        return {e - 16 for e in self.active if e >= 16}

    def pending_irqs(self) -> set[int]:
        lines = set(self.scs.pending)
        for p in self.peripherals:
            lines.update(p.irq_lines())
        return lines

    def highest_pending(self) -> int | None:
        best = self._next_exception(ignore_mask=True)
        return best[1] if best else None

    # ------------------------------------------------------------------ the host side

    def feed(self, data: bytes) -> None:
        """Host bytes onto the wire: the first arrives one byte time from now, the rest
        one byte time after the firmware took the previous one."""
        if not self.rx:
            self.rx_due = max(self.rx_due, self.insns + self.byte_insns)
        self.rx.extend(data)
        self.rx_fed += len(data)
        self.idle = False
        self._empty_polls = 0
        self._host_data()

    def _host_data(self) -> None:
        for p in self.peripherals:
            hook = getattr(p, "on_host_data", None)
            if hook is not None:
                hook()

    def run(self, deadline: float, until_tx: bool = True, until_insns: int | None = None
            ) -> str:
        """Execute until there is output (`until_tx`), the firmware waits for the host
        ("idle": WFI with nothing pending, or polling an empty receiver), it halts, the
        instruction count reaches `until_insns` ("budget") or the wall-clock `deadline`
        passes ("timeout"). Returns the reason."""
        u, a = self._u, self._a
        uc = self._uc
        while True:
            if self._error is not None:
                raise TwinError(self._error)
            if self._reset_requested:
                self.reset()
                return "reset"
            if self.halted:
                return "halted"
            self.scs.systick_due(self.insns)
            if self.rx and self.insns >= self.rx_due:
                self._host_data()
            if self._deliver():
                self.sleeping = False
            if (self.sleeping or self.idle) and self.rx and self.insns < self.rx_due:
                # waiting for a byte still on the wire: the time passes, then it arrives
                self.waited += self.rx_due - self.insns
                self.c.insns = self.rx_due
                self._host_data()
                self.idle = False
                continue
            if self.sleeping:
                if self._next_exception(ignore_mask=True) is None:
                    return "idle"
                self.sleeping = False  # WFI wakes on a pending interrupt even if masked
            if self.idle:
                if not self.rx:
                    return "idle"
                self.idle = False
            if until_tx and self.tx:
                return "tx"
            if time.monotonic() >= deadline:
                return "timeout"
            if until_insns is not None and self.insns >= until_insns:
                return "budget"
            c = self.c
            c.blk_addr = c.blk_n = c.blk_size = 0
            self._wfi_at = None
            stop_at = self.insns + CHUNK
            if until_insns is not None:
                stop_at = min(stop_at, until_insns)
            if self.rx and self.rx_due > self.insns:  # stop when the next byte arrives
                stop_at = min(stop_at, self.rx_due)
            nxt = self.scs.st_next
            if nxt is not None and self.scs.values[core.SYST_CSR] & 2:
                stop_at = min(stop_at, max(nxt, self.insns + 1))
            c.stop_at = stop_at
            try:
                uc.emu_start(self.pc | 1, 0xFFFFFFFF)
            except u.UcError as exc:
                self._on_uc_error(exc)
            self.pc = uc.reg_read(a.UC_ARM_REG_PC)
            if self.c.outside:
                self._set_error(f"code executed at {self.c.outside & ~1:#x}, outside the "
                                "board's memory regions")
            if self._exit_pending:
                self._exit_pending = False
                self._exception_return(self.pc | 1)
            elif self._fault is not None:
                exc_n, cfsr, bfar = self._fault
                self._fault = None
                self._take_fault(exc_n, cfsr, bfar)
            elif self._wfi_at is not None and self.pc == self._wfi_at + 2:
                self.sleeping = True
                self.wfi_sleeps += 1

    # ------------------------------------------------------------------ hooks

    def _count(self, addr: int, size: int) -> int:
        """Thumb instructions in [addr, addr + size): 32-bit when the first halfword's top
        five bits are 0b11101, 0b11110 or 0b11111."""
        code = bytes(self._uc.mem_read(addr, size)) if size else b""
        n = i = 0
        while i < size:
            hw = code[i] | (code[i + 1] << 8) if i + 1 < size else 0
            i += 4 if (hw >> 11) >= 0x1D else 2
            n += 1
        return n

    def _add_block_hook(self, uc: Any) -> None:
        """The block hook is the one callback on the hot path (once per translated block
        executed): C if a compiler is available (rig.twin.accel), else Python; either way
        registered with unicorn's C API directly, without the binding's wrapper layers."""
        from unicorn.unicorn_py3 import unicorn as binding

        c = self.c
        lib = c_hook()
        stop = binding.uclib.uc_emu_stop
        if lib is not None:
            pairs = list(zip(self.regions, self._buffers, strict=True))
            regions = [(r.base, r.size, buf) for r, buf in pairs]
            if self.boot_alias is not None:
                regions += [(self.boot_alias[0], r.size, buf) for r, buf in pairs
                            if r.base == self.boot_alias[1]]
            c.n_regions = len(regions)
            for i, (base, size, buf) in enumerate(regions):
                c.base[i], c.size[i], c.mem[i] = base, size, ctypes.addressof(buf)
            c.stop = ctypes.cast(stop, ctypes.c_void_p).value
            fptr: Any = ctypes.cast(lib.twin_on_block, ctypes.c_void_p)
            user: Any = ctypes.cast(ctypes.pointer(c), ctypes.c_void_p)
        else:
            uch = uc._uch
            fptr = binding.HOOK_CODE_CFUNC(python_hook(
                c, lambda addr, size: bytes(uc.mem_read(addr, size)), lambda: stop(uch)))
            user = None
        self.accelerated = lib is not None
        handle = binding.uc_hook_h()
        status = binding.uclib.uc_hook_add(uc._uch, ctypes.byref(handle), self._u.UC_HOOK_BLOCK,
                                           fptr, user, ctypes.c_uint64(1), ctypes.c_uint64(0))
        if status != self._u.UC_ERR_OK:
            raise TwinError(f"unicorn refused the block hook: {self._u.UcError(status)}")
        uc._callbacks[handle.value] = fptr  # alive as long as the engine

    def _mmio(self, base: int, size: int, read: Callable[[int, int], int],
              write: Callable[[int, int, int], None]) -> None:
        """An MMIO window with raw ctypes callbacks (the binding's wrappers cost as much as
        the models). A callback must not raise into C: errors stop the machine."""
        from unicorn.unicorn_py3 import unicorn as binding

        def on_read(_h: Any, offset: int, size: int, _ud: Any) -> int:
            try:
                return read(base + offset, size)
            except Exception as exc:  # noqa: BLE001 - reported by run()
                self._set_error(f"model error reading {base + offset:#x}: {exc!r}")
                self._stop_soon()
                return 0

        def on_write(_h: Any, offset: int, size: int, value: int, _ud: Any) -> None:
            try:
                write(base + offset, size, value)
            except Exception as exc:  # noqa: BLE001 - reported by run()
                self._set_error(f"model error writing {base + offset:#x}: {exc!r}")
                self._stop_soon()

        r, w = binding.MMIO_READ_CFUNC(on_read), binding.MMIO_WRITE_CFUNC(on_write)
        status = binding.uclib.uc_mmio_map(self._uc._uch, base, size, r, None, w, None)
        if status != self._u.UC_ERR_OK:
            raise TwinError(f"cannot map MMIO at {base:#x}+{size:#x}: {self._u.UcError(status)}")
        self._uc._mmio_callbacks[(base, base + size)] = (r, w)

    def _on_intr(self, uc: Any, intno: int, _ud: Any) -> None:
        # QEMU's EXCP_* numbers: 2 SWI, 7 BKPT, 8 EXCEPTION_EXIT, 18 INVSTATE
        if intno == 8:
            self._exit_pending = True
        elif intno == 2:
            self._fault = (EXC_SVCALL, 0, 0)
        elif intno == 7:  # BKPT without a debugger: HardFault (DEBUGEVT)
            self._fault = (EXC_HARDFAULT, -1, 0)
        elif intno == 18:
            self._fault = (EXC_USAGEFAULT, 1 << 17, 0)  # INVSTATE
        else:
            self._set_error(f"unmodelled core exception (QEMU EXCP {intno})")
        uc.emu_stop()

    def _on_unmapped(self, uc: Any, access: int, address: int, size: int, value: int,
                     _ud: Any) -> bool:
        fetch = access == self._u.UC_MEM_FETCH_UNMAPPED
        if fetch and address >= 0xFFFFFF00:
            return False  # an EXC_RETURN branch outside handler mode: reported by intr
        self._fault = (EXC_BUSFAULT, core.CFSR_IBUSERR if fetch else
                       core.CFSR_PRECISERR | core.CFSR_BFARVALID, address)
        return False

    def _on_uc_error(self, exc: Exception) -> None:
        err = getattr(exc, "errno", None)
        u = self._u
        if err == u.UC_ERR_INSN_INVALID:
            self._fault = (EXC_USAGEFAULT, core.CFSR_UNDEFINSTR, 0)
        elif self._fault is not None or self._exit_pending:
            pass
        elif err in (u.UC_ERR_WRITE_PROT, u.UC_ERR_FETCH_PROT):
            pc = self._uc.reg_read(self._a.UC_ARM_REG_PC)
            self._set_error(f"pc={pc:#010x}: {exc} (a write to flash, or code run from RAM "
                            "that is not executable)")
        else:
            pc = self._uc.reg_read(self._a.UC_ARM_REG_PC)
            self._set_error(f"pc={pc:#010x}: unicorn stopped: {exc}")

    def _set_error(self, text: str) -> None:
        if self._error is None:
            self._error = text

    def _on_wfi(self, uc: Any, addr: int, size: int, _ud: Any) -> None:
        self._wfi_at = addr  # unicorn ends emu_start after a WFI: run() sees PC = addr + 2

    def _on_cpsie(self, uc: Any, addr: int, size: int, _ud: Any) -> None:
        self.c.stop_at = 0  # interrupts unmasked: look for a pending one after this block

    # -- MMIO --------------------------------------------------------------------------

    def _pc(self) -> int:
        """PC without the binding's register dispatch (called per UART poll)."""
        self._reg_read(self._uc._uch, self._a.UC_ARM_REG_PC, self._pc_ptr)
        return self._pc_buf.value

    def _unknown(self, address: int, write: bool, value: int) -> None:
        acc = Access(self.where(write), address, write, value, self._name_of(address))
        self.unknown.append(acc)
        if self.strict:
            self._set_error(f"unknown register access: {acc}")
            self._stop_soon()

    def _mmio_read(self, addr: int, size: int) -> int:
        model = self._index.get(addr >> 10)
        value = None
        if model is not None and addr - model.base < model.size:
            value = model.bus_read(addr - model.base, size)
        if value is None:
            self._unknown(addr, False, 0)
            return 0
        return value

    def _mmio_write(self, addr: int, size: int, value: int) -> None:
        self.epoch += 1
        model = self._index.get(addr >> 10)
        if model is None or addr - model.base >= model.size or \
                not model.bus_write(addr - model.base, size, value):
            self._unknown(addr, True, value)

    def _ppb_read(self, addr: int, size: int) -> int:
        value = self.scs.bus_read(addr - core.PPB[0], size)
        if value is None:
            self._unknown(addr, False, 0)
            return 0
        return value

    def _ppb_write(self, addr: int, size: int, value: int) -> None:
        if not self.scs.bus_write(addr - core.PPB[0], size, value):
            self._unknown(addr, True, value)

    # ------------------------------------------------------------------ exceptions

    def _priority(self, exc: int) -> int:
        if exc == EXC_HARDFAULT:
            return -1
        if exc >= 16:
            return self.scs.irq_priority(exc - 16)
        return self.scs.sys_priority(exc)

    def _running_priority(self) -> int:
        prio = min((self._priority(e) for e in self.active), default=256)
        basepri = self._uc.reg_read(self._a.UC_ARM_REG_BASEPRI) & 0xFF
        if basepri:
            prio = min(prio, basepri)
        if self._uc.reg_read(self._a.UC_ARM_REG_PRIMASK) & 1:
            prio = min(prio, 0)
        return prio

    def _next_exception(self, ignore_mask: bool = False) -> tuple[int, int] | None:
        """(priority, exception number) of the interrupt to take now, or None."""
        cands = []
        if self.scs.st_pending:
            cands.append((self._priority(EXC_SYSTICK), EXC_SYSTICK))
        for irq in self.pending_irqs():
            if irq in self.scs.enabled and irq + 16 not in self.active:
                cands.append((self._priority(irq + 16), irq + 16))
        if not cands:
            return None
        best = min(cands)
        if ignore_mask:
            return best
        return best if best[0] < self._running_priority() else None

    def _deliver(self) -> bool:
        best = self._next_exception()
        if best is None:
            return False
        exc = best[1]
        if exc == EXC_SYSTICK:
            self.scs.st_pending = False
        else:
            self.scs.pending.discard(exc - 16)
        self._enter(exc, self.pc)
        return True

    def _take_fault(self, exc: int, cfsr: int, bfar: int) -> None:
        scs = self.scs
        enable_bit = {EXC_MEMMANAGE: 16, EXC_BUSFAULT: 17, EXC_USAGEFAULT: 18}.get(exc)
        if cfsr == -1:  # BKPT
            scs.values[core.HFSR] |= core.HFSR_DEBUGEVT
            cfsr = 0
        scs.values[core.CFSR] |= cfsr
        if cfsr & core.CFSR_BFARVALID:
            scs.values[core.BFAR] = bfar
        if enable_bit is not None and not scs.values[core.SHCSR] >> enable_bit & 1:
            exc = EXC_HARDFAULT
            scs.values[core.HFSR] |= core.HFSR_FORCED
        if exc in self.active or (self.active and self._priority(exc) >=
                                  self._running_priority() and exc != EXC_SVCALL):
            if EXC_HARDFAULT in self.active or exc == EXC_HARDFAULT:
                raise TwinError(f"lockup: fault {exc} at pc={self.pc:#010x} inside exception "
                                f"{self.active[-1]} (a core stops here)")
            exc = EXC_HARDFAULT
            scs.values[core.HFSR] |= core.HFSR_FORCED
        # faults return to the faulting instruction; SVC to the one after it
        self._enter(exc, self.pc)

    def _fp_on(self) -> bool:
        return (self.scs.values[core.CPACR] >> 20 & 0xF) == 0xF

    def _enter(self, exc: int, return_pc: int) -> None:
        uc, a = self._uc, self._a
        if uc.reg_read(a.UC_ARM_REG_CONTROL) & 2:
            raise TwinError("exception entry from a thread on the process stack (PSP) is not "
                            "modelled")
        sp = uc.reg_read(a.UC_ARM_REG_MSP)
        xpsr = uc.reg_read(a.UC_ARM_REG_XPSR)
        fp = self._fp_on()
        size = FRAME_FP if fp else FRAME_BASIC
        pad = 4 if (sp - size) & 4 else 0  # CCR.STKALIGN: 8-byte aligned frame
        frame_sp = sp - size - pad
        words = [uc.reg_read(r) for r in (a.UC_ARM_REG_R0, a.UC_ARM_REG_R1, a.UC_ARM_REG_R2,
                                          a.UC_ARM_REG_R3, a.UC_ARM_REG_R12, a.UC_ARM_REG_LR)]
        words += [return_pc & ~1, (xpsr & ~0x200) | (0x200 if pad else 0) | (1 << 24)]
        if fp:
            words += [uc.reg_read(getattr(a, f"UC_ARM_REG_S{i}")) for i in range(16)]
            words += [uc.reg_read(a.UC_ARM_REG_FPSCR), 0]
        try:
            uc.mem_write(frame_sp, b"".join(w.to_bytes(4, "little") for w in words))
            vector = int.from_bytes(uc.mem_read(self.scs.vtor + 4 * exc, 4), "little")
        except self._u.UcError as e:
            raise TwinError(f"exception {exc} entry failed (stack {frame_sp:#x}, vector table "
                            f"at VTOR {self.scs.vtor:#x}): {e}") from e
        if not vector & 1:
            raise TwinError(f"vector {exc} at {self.scs.vtor + 4 * exc:#x} is {vector:#x}: not "
                            "a Thumb address (the core would HardFault)")
        exc_return = (0xFFFFFFF1 if self.active else EXC_RETURN_THREAD_MSP) & \
            (~0x10 if fp else 0xFFFFFFFF)
        uc.reg_write(a.UC_ARM_REG_MSP, frame_sp)
        uc.reg_write(a.UC_ARM_REG_SP, frame_sp)
        uc.reg_write(a.UC_ARM_REG_LR, exc_return & 0xFFFFFFFF)
        uc.reg_write(a.UC_ARM_REG_XPSR, (1 << 24) | exc)
        self.active.append(exc)
        self.entered[exc] += 1
        self.frames.append(exc_return & 0xFFFFFFFF)
        self.pc = vector & ~1

    def _exception_return(self, exc_return: int) -> None:
        uc, a = self._uc, self._a
        if not self.active:
            raise TwinError(f"exception return ({exc_return:#x}) with no active exception")
        pushed = self.frames.pop()
        exc = self.active.pop()
        if exc_return != pushed:
            raise TwinError(f"exception {exc} returned with EXC_RETURN {exc_return:#x}, "
                            f"entered with {pushed:#x}")
        sp = uc.reg_read(a.UC_ARM_REG_MSP)
        fp = not exc_return & 0x10
        size = FRAME_FP if fp else FRAME_BASIC
        raw = bytes(uc.mem_read(sp, size))
        w = [int.from_bytes(raw[i:i + 4], "little") for i in range(0, size, 4)]
        for reg, v in zip((a.UC_ARM_REG_R0, a.UC_ARM_REG_R1, a.UC_ARM_REG_R2, a.UC_ARM_REG_R3,
                           a.UC_ARM_REG_R12, a.UC_ARM_REG_LR), w, strict=False):
            uc.reg_write(reg, v)
        if fp:
            for i in range(16):
                uc.reg_write(getattr(a, f"UC_ARM_REG_S{i}"), w[8 + i])
            uc.reg_write(a.UC_ARM_REG_FPSCR, w[24])
        xpsr = w[7]
        new_sp = sp + size + (4 if xpsr & 0x200 else 0)
        uc.reg_write(a.UC_ARM_REG_MSP, new_sp)
        uc.reg_write(a.UC_ARM_REG_SP, new_sp)
        uc.reg_write(a.UC_ARM_REG_XPSR, xpsr & ~0x200)
        self.pc = w[6] & ~1


def _only_access(code: bytes, address: int, write: bool) -> int | None:
    """Address of the single load (or store) instruction in `code`, None if not exactly one
    (capstone decodes; LDM/POP and STM/PUSH count)."""
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    prefixes = ("str", "stm", "push", "vstr", "vstm", "vpush") if write else \
        ("ldr", "ldm", "pop", "vldr", "vldm", "vpop")
    hits = [i.address for i in md.disasm(code, address) if i.mnemonic.startswith(prefixes)]
    return hits[0] if len(hits) == 1 else None


def _find_halfwords(elf: ElfImage, values: tuple[int, ...]) -> list[int]:
    """Addresses of the halfwords with one of `values` in the image's function code. A
    match inside a literal or a 32-bit instruction only costs an idle code hook."""
    out = []
    for sym in elf.functions().values():
        if not sym.size:
            continue
        code = elf.read(sym.address, sym.size)
        for i in range(0, len(code) - 1, 2):
            if code[i] | code[i + 1] << 8 in values:
                out.append(sym.address + i)
    return sorted(set(out))
