"""Instruction classes shared with the QEMU plugin, and two ways to compute them here.

`CLASSES` / `EXTRAS` mirror `firmware/tools/qemu_plugin/thumb_class.h` (the plugin's JSON
uses these names). Two classifiers exist on the host so the plugin's decoder can be
checked instruction by instruction:

- `CDecoder`: the plugin's own C decoder (`libthumbclass.so`) through ctypes;
- `classify_capstone`: capstone's disassembly mapped to the same classes, written
  independently of the C decoder (capstone instruction ids and operands, no bit masks
  except telling B<c> (T1/T3) from an IT-conditional B (T2/T4), which capstone reports
  alike).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

CLASSES: tuple[str, ...] = (
    "alu", "alu_pc", "mul", "mla", "mull", "dsp_mac", "dsp_simd", "div", "load", "load_pc",
    "store", "load_dual", "store_dual", "ldm", "ldm_pc", "stm", "b", "b_cond", "bl", "bx",
    "tbb", "it", "nop", "sys", "vfp_alu", "vfp_mac", "vfp_div", "vfp_xfer", "vfp_xfer2",
    "vldr", "vstr", "vldm", "vstm", "unknown")
EXTRAS: tuple[str, ...] = (
    "ldm_regs", "stm_regs", "vldm_regs", "vstm_regs", "it_insns", "it_branch",
    "load_after_load", "store_after_load", "ldst_after_dp", "b_cond_taken", "it_branch_taken")

#: classes whose register count lives in an extra counter
REG_EXTRA = {"ldm": "ldm_regs", "ldm_pc": "ldm_regs", "stm": "stm_regs",
             "vldm": "vldm_regs", "vstm": "vstm_regs"}
#: classes an ARMv6-M (Cortex-M0) image can contain
ARMV6M_CLASSES = frozenset({"alu", "alu_pc", "mul", "load", "store", "ldm", "ldm_pc", "stm",
                            "b", "b_cond", "bl", "bx", "nop", "sys", "unknown"})


@dataclass(frozen=True)
class Classified:
    address: int
    size: int
    cls: str
    regs: int = 0  # ldm/stm/vldm/vstm: registers (32-bit words) moved
    in_it: bool = False
    mnemonic: str = ""


# ------------------------------------------------------------------ the plugin's C decoder


class _TcInsn(ctypes.Structure):
    _fields_ = [("cls", ctypes.c_uint8), ("size", ctypes.c_uint8), ("regs", ctypes.c_uint8),
                ("flags", ctypes.c_uint8), ("it_len", ctypes.c_uint8)]


class CDecoder:
    """ctypes face of `thumb_class.c` (built by `rig.profile.icount.decoder_library`)."""

    def __init__(self, library: str | Path | None = None) -> None:
        if library is None:
            from rig.profile.icount import decoder_library
            library = decoder_library()
        self.lib = ctypes.CDLL(str(library))
        self.lib.tc_decode.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                       ctypes.POINTER(_TcInsn)]
        self.lib.tc_decode.restype = ctypes.c_size_t
        self.lib.tc_class_name.restype = ctypes.c_char_p
        self.lib.tc_extra_name.restype = ctypes.c_char_p
        names = tuple(self.lib.tc_class_name(i).decode() for i in range(len(CLASSES)))
        extras = tuple(self.lib.tc_extra_name(i).decode() for i in range(len(EXTRAS)))
        if names != CLASSES or extras != EXTRAS:
            raise RuntimeError("rig.profile.isa CLASSES/EXTRAS differ from thumb_class.h")

    def decode(self, data: bytes) -> tuple[str, int, int, int, int]:
        """(class, size, regs, flags, it_len) of the instruction at the start of `data`."""
        out = _TcInsn()
        n = self.lib.tc_decode(data, len(data), ctypes.byref(out))
        if not n:
            raise ValueError("truncated instruction")
        return CLASSES[out.cls], out.size, out.regs, out.flags, out.it_len

    def sweep(self, code: bytes, address: int) -> Iterator[Classified]:
        """Decode a function body linearly (IT blocks tracked like the plugin does)."""
        off, in_it = 0, 0
        while off + 2 <= len(code):
            cls, size, regs, _flags, it_len = self.decode(code[off:off + 4])
            yield Classified(address + off, size, cls, regs, in_it > 0)
            in_it = it_len if cls == "it" else max(in_it - 1, 0)
            off += size


# ------------------------------------------------------------------ capstone


@lru_cache(maxsize=1)
def _capstone_tables() -> tuple[Any, dict[int, str], dict[str, set[int]]]:
    import capstone
    from capstone import arm_const as a

    def ids(*names: str) -> set[int]:
        return {getattr(a, f"ARM_INS_{n}") for n in names if hasattr(a, f"ARM_INS_{n}")}

    table: dict[str, set[int]] = {
        "alu": ids("ADD", "ADDW", "ADC", "ADR", "AND", "ASR", "BFC", "BFI", "BIC", "CLZ", "CMN",
                   "CMP", "EOR", "LSL", "LSR", "MOV", "MOVS", "MOVT", "MOVW", "MVN", "NEG",
                   "ORN", "ORR", "RBIT", "REV", "REV16", "REVSH", "ROR", "RRX", "RSB", "SBC",
                   "SBFX", "SSAT", "SSAT16", "SUB", "SUBW", "SXTAB", "SXTAB16", "SXTAH", "SXTB",
                   "SXTB16", "SXTH", "TEQ", "TST", "UBFX", "USAT", "USAT16", "UXTAB",
                   "UXTAB16", "UXTAH", "UXTB", "UXTB16", "UXTH", "PKHBT", "PKHTB"),
        "mul": ids("MUL"),
        "mla": ids("MLA", "MLS"),
        "mull": ids("SMULL", "UMULL", "SMLAL", "UMLAL"),
        "dsp_mac": ids("SMLABB", "SMLABT", "SMLATB", "SMLATT", "SMLAD", "SMLADX", "SMLALBB",
                       "SMLALBT", "SMLALTB", "SMLALTT", "SMLALD", "SMLALDX", "SMLAWB", "SMLAWT",
                       "SMLSD", "SMLSDX", "SMLSLD", "SMLSLDX", "SMMLA", "SMMLAR", "SMMLS",
                       "SMMLSR", "SMMUL", "SMMULR", "SMUAD", "SMUADX", "SMULBB", "SMULBT",
                       "SMULTB", "SMULTT", "SMULWB", "SMULWT", "SMUSD", "SMUSDX", "UMAAL"),
        "dsp_simd": ids("SADD16", "SADD8", "SASX", "SSAX", "SSUB16", "SSUB8", "QADD", "QADD16",
                        "QADD8", "QASX", "QSAX", "QSUB", "QSUB16", "QSUB8", "QDADD", "QDSUB",
                        "SHADD16", "SHADD8", "SHASX", "SHSAX", "SHSUB16", "SHSUB8", "UADD16",
                        "UADD8", "UASX", "USAX", "USUB16", "USUB8", "UHADD16", "UHADD8",
                        "UHASX", "UHSAX", "UHSUB16", "UHSUB8", "UQADD16", "UQADD8", "UQASX",
                        "UQSAX", "UQSUB16", "UQSUB8", "SEL", "USAD8", "USADA8"),
        "div": ids("SDIV", "UDIV"),
        "load": ids("LDR", "LDRB", "LDRH", "LDRSB", "LDRSH", "LDREX", "LDREXB", "LDREXH",
                    "LDRT", "LDRBT", "LDRHT", "LDRSBT", "LDRSHT"),
        "store": ids("STR", "STRB", "STRH", "STREX", "STREXB", "STREXH", "STRT", "STRBT",
                     "STRHT"),
        "load_dual": ids("LDRD"),
        "store_dual": ids("STRD"),
        "ldm": ids("LDM", "LDMDB", "POP"),
        "stm": ids("STM", "STMDB", "PUSH"),
        "b": ids("B"),
        "b_cond": ids("CBZ", "CBNZ"),
        "bl": ids("BL"),
        "bx": ids("BX", "BLX"),
        "tbb": ids("TBB", "TBH"),
        "it": ids("IT"),
        "nop": ids("NOP", "YIELD", "SEV", "PLD", "PLDW", "PLI", "HINT"),
        "sys": ids("MRS", "MSR", "CPS", "DMB", "DSB", "ISB", "SVC", "BKPT", "WFI", "WFE", "UDF",
                   "CLREX"),
        "vfp_alu": ids("VADD", "VSUB", "VMUL", "VNMUL", "VABS", "VNEG", "VCMP", "VCMPE",
                       "VCVT", "VCVTB", "VCVTT", "VCVTR", "FCONSTS", "FCONSTD"),
        "vfp_mac": ids("VMLA", "VMLS", "VNMLA", "VNMLS", "VFMA", "VFMS", "VFNMA", "VFNMS"),
        "vfp_div": ids("VDIV", "VSQRT"),
        "vfp_xfer": ids("VMRS", "VMSR", "FMSTAT"),
        "vldr": ids("VLDR"),
        "vstr": ids("VSTR"),
        "vldm": ids("VLDMIA", "VLDMDB", "VPOP", "FLDMIAX", "FLDMDBX"),
        "vstm": ids("VSTMIA", "VSTMDB", "VPUSH", "FSTMIAX", "FSTMDBX"),
    }
    by_id: dict[int, str] = {}
    for cls, s in table.items():
        for i in s:
            by_id[i] = cls
    md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    md.detail = True
    regs = {
        "pc": {a.ARM_REG_PC},
        "core": {getattr(a, f"ARM_REG_R{i}") for i in range(13)} | {
            a.ARM_REG_SP, a.ARM_REG_LR, a.ARM_REG_PC},
        "s": {getattr(a, f"ARM_REG_S{i}") for i in range(32)},
        "d": {getattr(a, f"ARM_REG_D{i}") for i in range(32)},
        "vmov": {a.ARM_INS_VMOV},
    }
    return md, by_id, regs


def classify_capstone(code: bytes, address: int) -> Iterator[Classified]:
    """Classes of the instructions of one function body, by capstone (independent of the
    plugin's decoder). Stops at the first byte sequence capstone cannot decode."""
    md, by_id, regs = _capstone_tables()
    in_it = 0
    for insn in md.disasm(code, address):
        ops = [o.reg for o in insn.operands if o.type == 1]  # register operands
        cls = by_id.get(insn.id, "unknown")
        if insn.id in regs["vmov"]:
            n_core = sum(r in regs["core"] for r in ops)
            cls = "vfp_xfer2" if n_core == 2 else "vfp_xfer" if n_core == 1 else "vfp_alu"
        elif cls in ("alu",) and ops and ops[0] in regs["pc"] and insn.mnemonic[:3] in (
                "add", "mov"):
            cls = "alu_pc"
        elif cls == "load" and ops and ops[0] in regs["pc"]:
            cls = "load_pc"
        elif cls == "ldm" and any(r in regs["pc"] for r in ops):
            cls = "ldm_pc"
        elif cls == "b" and in_it == 0 and insn.cc not in (0, 15):
            cls = "b_cond"  # B<c> (T1/T3); inside an IT block B is T2/T4 with the IT's cond
        elif cls == "nop" and insn.mnemonic.strip() in ("wfi", "wfe"):
            cls = "sys"  # capstone reports the 16-bit WFI/WFE (T1) as a HINT
        n_regs = 0
        if cls in REG_EXTRA:
            if cls in ("vldm", "vstm"):
                n_regs = sum(2 if r in regs["d"] else 1 for r in ops[1:] if r in regs["s"] |
                             regs["d"]) if insn.mnemonic.startswith(("vldm", "vstm", "fldm",
                                                                     "fstm")) else sum(
                    2 if r in regs["d"] else 1 for r in ops)
            elif insn.mnemonic.startswith(("pop", "push")):
                n_regs = len(ops)
            else:  # ldm/stm Rn(!), {list}
                n_regs = len(ops) - 1
        yield Classified(insn.address, insn.size, cls, n_regs, in_it > 0,
                         f"{insn.mnemonic} {insn.op_str}")
        if cls == "it":
            in_it = len(insn.mnemonic) - 1  # it, itt, ite, ittt, ... = 1 + then/else letters
        elif in_it:
            in_it -= 1
