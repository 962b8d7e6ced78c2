"""Cycle models: hand-computed cases from the TRM tables, bounds, linearity, and the M0
model refusing an ARMv7E-M mix."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.profile.cycles import CortexM0Model, CortexM4Model, NotApplicable, model_for
from rig.profile.isa import ARMV6M_CLASSES, CLASSES

M4 = CortexM4Model()
M0 = CortexM0Model()


def test_m4_hand_computed() -> None:
    # 10 ALU (1), 4 loads of which 3 follow a load (2+1+1+1), 2 STR imm (1), one
    # PUSH {4 regs} (1+4), one POP {r4,pc} (1+2+P_reg 2), 5 B<c> of which 3 taken (5 + 3*1),
    # 2 BL (1+1), VMLA (3), VDIV (14), IT (1).
    classes = {"alu": 10, "load": 4, "store": 2, "stm": 1, "ldm_pc": 1, "b_cond": 5, "bl": 2,
               "vfp_mac": 1, "vfp_div": 1, "it": 1}
    extra = {"load_after_load": 3, "stm_regs": 4, "ldm_regs": 2, "b_cond_taken": 3}
    e = M4.estimate(classes, extra)
    assert e.nominal == 10 + 5 + 2 + 5 + 5 + 8 + 4 + 3 + 14 + 1
    assert e.label == "cycles (model, Cortex-M4)"
    assert e.low <= e.nominal <= e.high
    # low: loads all 1, IT folded, P = 1; high: loads and stores 2, P = 3
    assert e.low == 10 + 4 + 2 + 5 + (1 + 2 + 1) + (5 + 3) + 2 * 2 + 3 + 14 + 0
    assert e.high == 10 + 8 + 4 + 5 + (1 + 2 + 3) + (5 + 9) + 2 * 4 + 3 + 14 + 1


def test_m4_untaken_it_branch_costs_one_cycle() -> None:
    taken = M4.estimate({"bx": 2}, {"it_branch": 2, "it_branch_taken": 2})
    untaken = M4.estimate({"bx": 2}, {"it_branch": 2, "it_branch_taken": 0})
    assert taken.nominal == 2 * (1 + M4.p_reg)
    assert untaken.nominal < taken.nominal and untaken.low == 2


def test_m0_hand_computed() -> None:
    classes = {"alu": 10, "load": 3, "store": 2, "ldm_pc": 1, "b_cond": 4, "bl": 1, "bx": 1}
    extra = {"ldm_regs": 3, "b_cond_taken": 2}
    e = M0.estimate(classes, extra)
    assert e.nominal == 10 + 6 + 4 + (3 + 3) + (4 + 2 * 2) + 4 + 3
    assert e.label == "cycles (model, Cortex-M0)"


def test_m0_refuses_armv7em_mix() -> None:
    with pytest.raises(NotApplicable, match="vfp_alu"):
        M0.estimate({"alu": 3, "vfp_alu": 1}, {})
    assert model_for("cortex-m0").core == "Cortex-M0"
    assert model_for("cortex-m4f").core == "Cortex-M4"
    with pytest.raises(NotApplicable):
        model_for("riscv")


counts = st.dictionaries(st.sampled_from(CLASSES), st.integers(0, 10_000), max_size=12)


@given(counts, st.integers(0, 10_000), st.integers(0, 10_000))
def test_m4_bounds_and_linearity(classes: dict[str, int], lal: int, taken: int) -> None:
    extra = {"load_after_load": min(lal, classes.get("load", 0) + classes.get("vldr", 0)),
             "b_cond_taken": min(taken, classes.get("b_cond", 0))}
    e = M4.estimate(classes, extra)
    assert e.low <= e.nominal <= e.high
    assert e.nominal >= 0 and e.nominal == pytest.approx(sum(e.by_class.values()))
    double = M4.estimate({k: 2 * v for k, v in classes.items()},
                         {k: 2 * v for k, v in extra.items()})
    assert double.nominal == pytest.approx(2 * e.nominal)


@given(st.dictionaries(st.sampled_from(sorted(ARMV6M_CLASSES)), st.integers(0, 1000),
                       max_size=8))
def test_m0_bounds(classes: dict[str, int]) -> None:
    e = M0.estimate(classes, {})
    assert e.low <= e.nominal <= e.high
