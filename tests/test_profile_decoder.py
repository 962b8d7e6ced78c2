"""The plugin's instruction classifier (firmware/tools/qemu_plugin/thumb_class.c) against
capstone, an independent decoder: every instruction of every prebuilt image, plus an
assembled sample of every class; and the static extra counters of a block."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from _profile_util import need_plugin

from rig import firmware
from rig.elf import read_elf
from rig.errors import RigError
from rig.profile.icount import decoder_library
from rig.profile.isa import CLASSES, EXTRAS, CDecoder, classify_capstone

capstone = pytest.importorskip("capstone")


@pytest.fixture(scope="module")
def dec() -> CDecoder:
    need_plugin()
    return CDecoder(decoder_library())


def compare_image(dec: CDecoder, path: Path) -> tuple[int, Counter[tuple[str, ...]], Counter[str]]:
    elf = read_elf(path)
    total, bad, seen = 0, Counter(), Counter()
    for name, sym in sorted(elf.functions().items()):
        for lo, hi in elf.code_ranges(sym):
            code = elf.read(lo, hi - lo)
            ref = {c.address: c for c in classify_capstone(code, lo)}
            for c in dec.sweep(code, lo):
                k = ref.get(c.address)
                assert k is not None, f"{path.name}:{name}@{c.address:#x}: capstone desynced"
                total += 1
                seen[c.cls] += 1
                if (k.cls, k.regs, k.in_it) != (c.cls, c.regs, c.in_it):
                    bad[(name, hex(c.address), k.mnemonic, k.cls, c.cls)] += 1
    return total, bad, seen


def test_names_match_the_header(dec: CDecoder) -> None:
    assert dec.lib.tc_class_name(len(CLASSES) - 1).decode() == "unknown"
    assert len(EXTRAS) == 11


def test_every_prebuilt_image_decodes_like_capstone(dec: CDecoder) -> None:
    try:
        manifest = firmware.load_manifest()
    except RigError as exc:
        pytest.fail(f"no prebuilt images: {exc}")
    images = [img.path for img in manifest.images.values() if img.path.is_file()]
    assert images
    grand = 0
    for path in images:
        total, bad, seen = compare_image(dec, path)
        assert not bad, f"{path.name}: {sorted(bad)[:10]}"
        assert seen["unknown"] == 0, path.name
        grand += total
    assert grand > 5000


SAMPLE = """
    .syntax unified
    .thumb
    .cpu cortex-m4
    .fpu fpv4-sp-d16
    adds r0, r1, r2          @ alu
    mov pc, lr               @ alu_pc
    muls r0, r1, r0          @ mul
    mla r0, r1, r2, r3       @ mla
    umull r0, r1, r2, r3     @ mull
    smlad r0, r1, r2, r3     @ dsp_mac
    sadd16 r0, r1, r2        @ dsp_simd
    sdiv r0, r1, r2          @ div
    ldr r0, [r1, #4]         @ load
    ldr pc, [r1]             @ load_pc
    strh r0, [r1, r2]        @ store
    ldrd r0, r1, [r2]        @ load_dual
    strd r0, r1, [r2, #8]    @ store_dual
    ldmia r0!, {r1, r2, r3}  @ ldm
    pop {r4, r5, pc}         @ ldm_pc
    push {r4, r5, r6, lr}    @ stm
    b.w 1f                   @ b
1:  bne 1b                   @ b_cond
    bl 1b                    @ bl
    bx lr                    @ bx
    tbb [r0, r1]             @ tbb
    ite eq                   @ it
    nopeq                    @ nop (in IT)
    movne r0, r1             @ alu (in IT)
    dsb                      @ sys
    vadd.f32 s0, s1, s2      @ vfp_alu
    vfma.f32 s0, s1, s2      @ vfp_mac
    vsqrt.f32 s0, s1         @ vfp_div
    vmov r0, s1              @ vfp_xfer
    vmov r0, r1, d3          @ vfp_xfer2
    vldr s0, [r0, #8]        @ vldr
    vstr d1, [r0]            @ vstr
    vpop {d8, d9}            @ vldm (4 words)
    vstmia r0!, {s0-s2}      @ vstm (3 words)
"""
EXPECTED = ["alu", "alu_pc", "mul", "mla", "mull", "dsp_mac", "dsp_simd", "div", "load",
            "load_pc", "store", "load_dual", "store_dual", "ldm", "ldm_pc", "stm", "b",
            "b_cond", "bl", "bx", "tbb", "it", "nop", "alu", "sys", "vfp_alu", "vfp_mac", "vfp_div",
            "vfp_xfer", "vfp_xfer2", "vldr", "vstr", "vldm", "vstm"]


@pytest.mark.toolchain
def test_assembled_sample_of_every_class(dec: CDecoder, tmp_path: Path) -> None:
    if shutil.which("arm-none-eabi-as") is None:
        pytest.skip("arm-none-eabi-as not installed")
    (tmp_path / "s.s").write_text(SAMPLE)
    subprocess.run(["arm-none-eabi-as", "-o", str(tmp_path / "s.o"), str(tmp_path / "s.s")],
                   check=True)
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", "-j", ".text", str(tmp_path / "s.o"),
                    str(tmp_path / "s.bin")], check=True)
    code = (tmp_path / "s.bin").read_bytes()
    mine = list(dec.sweep(code, 0))
    ref = list(classify_capstone(code, 0))
    assert [c.cls for c in mine] == EXPECTED
    assert [c.cls for c in ref] == EXPECTED
    assert {c.cls: c.regs for c in mine if c.regs} == {
        "ldm": 3, "ldm_pc": 3, "stm": 4, "vldm": 4, "vstm": 3}
    assert [c.in_it for c in mine[21:25]] == [False, True, True, False]
    assert set(EXPECTED) == set(CLASSES) - {"unknown"}


def test_block_extras(dec: CDecoder) -> None:
    """tc_block's static extras: pipelining neighbours, address dependency, IT membership."""
    words = [bytes.fromhex(h) for h in (
        "4868",      # ldr r0, [r1, #4]
        "8868",      # ldr r0, [r1, #8]    load after load
        "0860",      # str r0, [r1]        store after load
        "0844",      # add r0, r1          alu
        "0868",      # ldr r0, [r1]        ld/st after data processing
        "08bf",      # it eq
        "7047",      # bxeq lr             IT-conditional branch
    )]
    lib = dec.lib
    n = len(words)
    bufs = [ctypes.create_string_buffer(w, len(w)) for w in words]
    ptrs = (ctypes.c_char_p * n)(*[ctypes.cast(b, ctypes.c_char_p) for b in bufs])
    lens = (ctypes.c_size_t * n)(*[len(w) for w in words])
    counters = (ctypes.c_uint64 * (len(CLASSES) + len(EXTRAS)))()
    last_flags = ctypes.c_uint8()
    last_in_it = ctypes.c_int()
    lib.tc_block.restype = ctypes.c_size_t
    assert lib.tc_block(ptrs, lens, ctypes.c_size_t(n), counters, ctypes.byref(last_flags),
                        ctypes.byref(last_in_it)) == n
    cls = {c: counters[i] for i, c in enumerate(CLASSES) if counters[i]}
    extra = {e: counters[len(CLASSES) + i] for i, e in enumerate(EXTRAS)
             if counters[len(CLASSES) + i]}
    assert cls == {"load": 3, "store": 1, "alu": 1, "it": 1, "bx": 1}
    assert extra == {"load_after_load": 1, "store_after_load": 1, "ldst_after_dp": 1,
                     "it_insns": 1, "it_branch": 1}
    assert last_in_it.value == 1 and last_flags.value & 0x01
