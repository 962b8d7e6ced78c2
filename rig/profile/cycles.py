"""Cycle models: estimated core cycles from an instruction-class histogram.

Input: a window's class counts and extra counters (`rig.profile.icount.WindowCounts`,
measured by the QEMU plugin). Output: `CycleEstimate` — a nominal figure and a [low, high]
band, labelled `cycles (model, <core>)`. These are estimates from published per-instruction
timings with zero-wait-state memory; they are never measurements (docs/profiling.md,
"label in every report").

Sources (cited per entry below):

- [M4] Arm Cortex-M4 Processor Technical Reference Manual r0p1 (100166_0001_00 / DDI 0439),
  §3.3.1 Table 3-1 "Processor instruction set summary" and its notes; §3.3.2 "Load/store
  timings"; and the FPU chapter's "FPU instruction set" table (cycle counts of VADD ... VSQRT,
  VLDR/VSTR/VLDM/VSTM/VPUSH/VPOP). P = pipeline refill, 1..3 cycles; the table's note: a
  taken branch with an immediate normally costs 1 cycle of refill (2 total), with a
  register operand 2 cycles (3 total); a not-taken branch 1 cycle. IT can be folded (0).
  Neighbouring single loads/stores pipeline (the second completes in one cycle);
  `STR Rx,[Ry,#imm]` is always one cycle (write buffer); a load/store whose address depends
  on the preceding data-processing result stalls one cycle.
- [M0] Arm Cortex-M0 Technical Reference Manual r0p0 (DDI 0432C), §3.3 Table 3-1
  "Cortex-M0 instruction summary": data processing 1, MULS 1 (fast multiplier, or 32 with
  the small one), LDR/STR 2, LDM/STM/PUSH/POP 1+N, POP {..,PC} 3+N, B 3 (conditional:
  1 not taken, 3 taken), BL 4, BX/BLX 3, MOV/ADD to PC 3, MRS/MSR/DMB/DSB/ISB 3-4,
  WFI/WFE 2.

What the model does not see (hence the band, not in the nominal figure): memory wait
states (flash on a real board; the MPS2 FPGA has none), interrupt latency, whether an
IT-block instruction passed its condition (counted at full cost; a failed one takes about a
cycle), data-dependent divide time (2..12), pipelining lost to address dependencies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rig.profile.isa import ARMV6M_CLASSES


@dataclass(frozen=True)
class CycleEstimate:
    """Estimated cycles of one window: nominal and a [low, high] band."""

    core: str
    nominal: float
    low: float
    high: float
    by_class: Mapping[str, float] = field(default_factory=dict)  # nominal cycles per class

    @property
    def label(self) -> str:
        return f"cycles (model, {self.core})"

    def seconds(self, clock_hz: float) -> float:
        return self.nominal / clock_hz

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "nominal": self.nominal, "low": self.low,
                "high": self.high, "by_class": dict(self.by_class)}


class NotApplicable(ValueError):
    """The histogram contains instructions this core does not have (e.g. VFP on an M0)."""


def _get(m: Mapping[str, int], k: str) -> int:
    return int(m.get(k, 0))


@dataclass(frozen=True)
class CortexM4Model:
    """[M4] timings. `p_imm` / `p_reg`: refill after a taken branch with an immediate /
    register target (TRM note: normally 1 / 2); `div`: nominal SDIV/UDIV cycles."""

    core: str = "Cortex-M4"
    p_imm: float = 1.0
    p_reg: float = 2.0
    p_min: float = 1.0
    p_max: float = 3.0
    div: float = 7.0

    def per_insn(self) -> dict[str, tuple[float, float, float]]:
        """(nominal, low, high) cycles per instruction of each class, before the
        corrections that need the extra counters (registers, pipelining, taken)."""
        one = (1.0, 1.0, 1.0)
        br_imm = (1.0 + self.p_imm, 1.0 + self.p_min, 1.0 + self.p_max)
        br_reg = (1.0 + self.p_reg, 1.0 + self.p_min, 1.0 + self.p_max)
        ld_br = (2.0 + self.p_reg, 2.0 + self.p_min, 2.0 + self.p_max)
        return {
            # data processing, multiply (MUL/MLA/MLS/long/DSP are single-cycle on the M4)
            "alu": one, "mul": one, "mla": one, "mull": one, "dsp_mac": one,
            "dsp_simd": one, "nop": one, "unknown": one,
            "it": (1.0, 0.0, 1.0),               # folded onto a 16-bit predecessor: 0
            "div": (self.div, 2.0, 12.0),        # SDIV/UDIV 2..12, operand dependent
            "sys": (1.0, 1.0, 4.0),              # MRS/MSR 1-2, barriers 1+B, CPS 1
            "load": (2.0, 1.0, 2.0),             # 1 when pipelined after a load
            "vldr": (2.0, 1.0, 2.0),
            "store": (1.0, 1.0, 2.0),            # STR Rx,[Ry,#imm] always 1 (write buffer)
            "vstr": (2.0, 1.0, 2.0),
            "load_dual": (3.0, 3.0, 3.0),        # LDRD/STRD 1+N, N = 2, never pipelined
            "store_dual": (3.0, 3.0, 3.0),
            "ldm": one, "stm": one, "vldm": one, "vstm": one,  # + N (extra counters)
            "ldm_pc": br_reg,                    # POP {..,PC}: 1+N+P
            "b": br_imm, "bl": br_imm,           # 1+P, immediate target: P normally 1
            "bx": br_reg, "alu_pc": br_reg,      # register target: P normally 2
            "load_pc": ld_br, "tbb": ld_br,      # LDR PC 2+P (>= 5), TBB/TBH 2+P (>= 6)
            "b_cond": one,                       # + P when taken (extra b_cond_taken)
            "vfp_alu": one, "vfp_xfer": one,     # VADD/VSUB/VMUL/VCMP/VCVT/VMOV/VMRS 1
            "vfp_mac": (3.0, 3.0, 3.0),          # VMLA/VMLS/VNMLA/VNMLS/VFMA.. 3
            "vfp_div": (14.0, 14.0, 14.0),       # VDIV, VSQRT 14
            "vfp_xfer2": (2.0, 2.0, 2.0),        # VMOV two core registers 2
        }

    def estimate(self, classes: Mapping[str, int], extra: Mapping[str, int]) -> CycleEstimate:
        table = self.per_insn()
        by: dict[str, float] = {}
        lo = hi = 0.0
        for k, count in classes.items():
            nom, low, high = table.get(k, (1.0, 1.0, 1.0))
            by[k] = nom * count
            lo += low * count
            hi += high * count
        x = {k: _get(extra, k) for k in extra}
        # + N registers (32-bit words) for LDM/STM/PUSH/POP/VLDM/VSTM/VPUSH/VPOP
        for cls, key in (("ldm", "ldm_regs"), ("stm", "stm_regs"), ("vldm", "vldm_regs"),
                         ("vstm", "vstm_regs")):
            by[cls] = by.get(cls, 0.0) + x.get(key, 0)
            lo += x.get(key, 0)
            hi += x.get(key, 0)
        # A single load right after a load pipelines: 1 cycle instead of 2 (nominal).
        loads = _get(classes, "load") + _get(classes, "vldr")
        piped = min(x.get("load_after_load", 0), loads)
        if loads:
            by["load"] = by.get("load", 0.0) - piped * _get(classes, "load") / loads
            by["vldr"] = by.get("vldr", 0.0) - piped * _get(classes, "vldr") / loads
        # Address dependent on the previous data-processing result: +1 (high only).
        hi += x.get("ldst_after_dp", 0)
        # Taken B<c>/CBZ/CBNZ: + P (immediate target).
        taken = x.get("b_cond_taken", 0)
        by["b_cond"] = by.get("b_cond", 0.0) + self.p_imm * taken
        lo += self.p_min * taken
        hi += self.p_max * taken
        # IT-conditional branches that did not branch: 1 cycle, not 1 + P.
        not_taken = max(x.get("it_branch", 0) - x.get("it_branch_taken", 0), 0)
        if not_taken:
            by["it_branch_not_taken"] = -self.p_imm * not_taken
            lo -= self.p_min * not_taken
            hi -= self.p_min * not_taken
        nominal = sum(by.values())
        return CycleEstimate(self.core, nominal, min(lo, nominal), max(hi, nominal),
                             {k: v for k, v in by.items() if v})


@dataclass(frozen=True)
class CortexM0Model:
    """[M0] timings, for histograms of ARMv6-M images (e.g. the microbit build). The
    Cortex-M0 has no branch predictor and a 3-stage pipeline: every taken branch refills
    it (B, BX: 3; BL: 4). `mul`: 1 (fast multiplier) or 32 (small multiplier option; which
    one a given M0 has is an implementation choice)."""

    core: str = "Cortex-M0"
    mul: float = 1.0

    def estimate(self, classes: Mapping[str, int], extra: Mapping[str, int]) -> CycleEstimate:
        foreign = sorted(k for k, v in classes.items() if v and k not in ARMV6M_CLASSES)
        if foreign:
            raise NotApplicable(f"not an ARMv6-M instruction mix (has {', '.join(foreign)}): "
                                "a Cortex-M0 model needs counts from an ARMv6-M image")
        n = {k: _get(classes, k) for k in classes}
        x = extra
        by = {
            "alu": float(n.get("alu", 0)) + float(n.get("nop", 0)) + float(n.get("unknown", 0)),
            "mul": self.mul * n.get("mul", 0),
            "load": 2.0 * n.get("load", 0),
            "store": 2.0 * n.get("store", 0),
            "ldm": float(n.get("ldm", 0)),
            "stm": float(n.get("stm", 0)) + _get(x, "stm_regs"),
            "ldm_pc": 3.0 * n.get("ldm_pc", 0),
            "b": 3.0 * n.get("b", 0),
            "b_cond": float(n.get("b_cond", 0)) + 2.0 * _get(x, "b_cond_taken"),
            "bl": 4.0 * n.get("bl", 0),
            "bx": 3.0 * n.get("bx", 0),
            "alu_pc": 3.0 * n.get("alu_pc", 0),
            "sys": 3.0 * n.get("sys", 0),
        }
        by["ldm"] += _get(x, "ldm_regs")  # ldm and ldm_pc registers: 1 per register
        nominal = sum(by.values())
        lo = nominal - 2.0 * n.get("sys", 0)          # CPS 1 vs barriers 3-4
        hi = nominal + 1.0 * n.get("sys", 0) + (32.0 - self.mul) * n.get("mul", 0)
        return CycleEstimate(self.core, nominal, lo, hi, {k: v for k, v in by.items() if v})


MODELS: dict[str, CortexM4Model | CortexM0Model] = {
    "cortex-m4": CortexM4Model(), "cortex-m4f": CortexM4Model(), "cortex-m0": CortexM0Model()}


def model_for(cpu: str) -> CortexM4Model | CortexM0Model:
    """The cycle model of a lab_config `cpu:` (cortex-m4f, cortex-m0)."""
    try:
        return MODELS[cpu]
    except KeyError:
        raise NotApplicable(f"no cycle model for cpu {cpu!r} (have {sorted(MODELS)})") from None
