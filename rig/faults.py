"""The one Cortex-M fault table: exception numbers and the CFSR / HFSR bits, with what each
means. Read by the FAULT frame decoder (`rig.protocol.FaultInfo`) and by the targets that
explain a firmware's exit status (`rig.targets.base.describe_exit`). Standard library only.
"""

from __future__ import annotations

#: exception number -> handler name (ARMv7-M ARM B1.5.2); the firmware's fault handlers
#: report it in the FAULT frame and, under QEMU/native, exit with 0x80 + this number
EXCEPTION_NAMES = {2: "NMI", 3: "HardFault", 4: "MemManage", 5: "BusFault", 6: "UsageFault",
                   11: "SVCall", 14: "PendSV", 15: "SysTick"}

#: CFSR bit -> (name, meaning). MMFSR bits 0-7, BFSR 8-15, UFSR 16-31 (ARMv7-M ARM B3.2.15).
CFSR_BITS: dict[int, tuple[str, str]] = {
    0: ("IACCVIOL", "instruction fetch from a no-execute / protected region"),
    1: ("DACCVIOL", "data access violates the MPU"),
    3: ("MUNSTKERR", "MemManage fault on exception return unstacking"),
    4: ("MSTKERR", "MemManage fault on exception entry stacking"),
    5: ("MLSPERR", "MemManage fault during lazy FP state preservation"),
    7: ("MMARVALID", "MMFAR holds the faulting address"),
    8: ("IBUSERR", "bus error on instruction fetch"),
    9: ("PRECISERR", "precise data bus error (BFAR valid if BFARVALID)"),
    10: ("IMPRECISERR", "imprecise data bus error (the PC is not the culprit)"),
    11: ("UNSTKERR", "bus fault on exception return unstacking"),
    12: ("STKERR", "bus fault on exception entry stacking (stack overflow?)"),
    13: ("LSPERR", "bus fault during lazy FP state preservation"),
    15: ("BFARVALID", "BFAR holds the faulting address"),
    16: ("UNDEFINSTR", "undefined instruction"),
    17: ("INVSTATE", "invalid EPSR state (Thumb bit clear? bad function pointer)"),
    18: ("INVPC", "invalid EXC_RETURN / PC on exception return"),
    19: ("NOCP", "coprocessor disabled (FPU used before CPACR enabled it)"),
    24: ("UNALIGNED", "unaligned access with UNALIGN_TRP set"),
    25: ("DIVBYZERO", "divide by zero with DIV_0_TRP set"),
}

HFSR_BITS: dict[int, tuple[str, str]] = {
    1: ("VECTTBL", "bus fault reading the vector table"),
    30: ("FORCED", "escalated from a configurable fault (see CFSR)"),
    31: ("DEBUGEVT", "debug event"),
}


def exception_name(number: int) -> str:
    """`HardFault` for 3, `exception 9` for a number without a handler name."""
    return EXCEPTION_NAMES.get(number, f"exception {number}")


def flags(table: dict[int, tuple[str, str]], value: int) -> list[str]:
    """Names of the bits of `value` that `table` (CFSR_BITS, HFSR_BITS) knows."""
    return [name for bit, (name, _) in table.items() if value >> bit & 1]


def fault_summary(exception: int, pc: int, lr: int, cfsr: int, hfsr: int, mmfar: int,
                  bfar: int) -> str:
    """One paragraph a lab engineer can act on: where, which status bits and what they
    mean, and the fault address registers when their VALID bit says they hold one."""
    parts = [f"{exception_name(exception)} at pc=0x{pc:08x} (lr=0x{lr:08x})"]
    if flags(HFSR_BITS, hfsr):
        parts.append("HFSR " + ", ".join(flags(HFSR_BITS, hfsr)))
    meanings = [f"{name} ({text})" for bit, (name, text) in CFSR_BITS.items()
                if cfsr >> bit & 1 and name not in ("MMARVALID", "BFARVALID")]
    if meanings:
        parts.append("CFSR " + "; ".join(meanings))
    elif cfsr == 0:
        parts.append("CFSR clear")
    if cfsr >> 7 & 1:
        parts.append(f"MMFAR=0x{mmfar:08x}")
    if cfsr >> 15 & 1:
        parts.append(f"BFAR=0x{bfar:08x}")
    return "; ".join(parts)
