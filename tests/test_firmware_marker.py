"""The measurement marker GPIO, checked on the prebuilt board images themselves.

Each board's `marker:` pin in lab_config.yaml becomes its GPIO registers through
`MarkerPin` (facts from the reference manuals: STM32F429 RM0090, GPIOx at 0x40020000 +
0x400·x, MODER +0x00 with 01 = output, BSRR +0x18, RCC_AHB1ENR 0x40023830; nRF52840 PS,
port p at 0x50000000 + 0x300·p, OUTSET/OUTCLR/DIRSET +0x508/+0x50C/+0x518). The image's
own code then runs on unicorn (an independent emulator, no QEMU involved): `hal_init`
must make the pin an output driven low, and the step markers must set and clear exactly
that pin with one store each. Last, those stores drive a simulated PPK2's D0 through
`MarkerPin.wire` — the path a board twin will use — and the pulse is measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from rig import firmware
from rig.config import load_config
from rig.elf import read_elf
from rig.errors import RigError
from rig.profile.monitors import create_monitor
from rig.profile.monitors.sim.logic import EdgeQueue, MarkedLoad, MarkerPin
from rig.profile.monitors.sim.ppk2_sim import PPK2Sim

unicorn = pytest.importorskip("unicorn")
arm = pytest.importorskip("unicorn.arm_const")

RETURN = 0x0FFF_FFF0  # LR for the called function: stop when it returns here


def _registers(pin: str) -> dict[str, tuple[int, int]]:
    """Register writes (address, value) that set, clear and configure `pin`."""
    m = MarkerPin.parse(pin)
    regs = {"set": m.set_write, "clear": m.clear_write}
    if m.family == "stm32":
        port = (m.port_base - 0x4002_0000) // 0x400
        regs |= {"clock": (0x4002_3830, 1 << port), "moder": (m.port_base, 1 << (2 * m.pin)),
                 "moder_mask": (m.port_base, 3 << (2 * m.pin))}
    else:
        regs["dir"] = (m.port_base + 0x518, 1 << m.pin)
    return regs


class _Machine:
    """A Cortex-M4 with the image's segments loaded, RAM, and peripheral pages that
    behave as plain memory while every store to them is logged."""

    def __init__(self, path) -> None:  # type: ignore[no-untyped-def]
        self.elf = read_elf(path)
        uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        mapped: set[int] = set()

        def ensure(lo: int, hi: int) -> None:
            for page in range(lo & ~0xFFF, hi, 0x1000):
                if page not in mapped:
                    uc.mem_map(page, 0x1000)
                    mapped.add(page)

        for seg in self.elf.segments:
            ensure(seg.vaddr, seg.vaddr + max(seg.memsz, len(seg.data)))
            uc.mem_write(seg.vaddr, seg.data)
            if seg.paddr != seg.vaddr:  # .data's load image
                ensure(seg.paddr, seg.paddr + len(seg.data))
                uc.mem_write(seg.paddr, seg.data)
        for lo, hi in ((0x2000_0000, 0x2004_0000), (0x1000_0000, 0x1001_0000),
                       (0x4000_0000, 0x4003_0000), (0x5000_0000, 0x5000_1000),
                       (0xE000_0000, 0xE010_0000), (RETURN & ~0xFFF, RETURN + 0x10)):
            ensure(lo, hi)
        self.writes: list[tuple[int, int]] = []
        #: address -> on_store(value), as a board twin would call them
        self.store_hooks: dict[int, Callable[[int], None]] = {}

        def on_write(_uc, _a, addr, _size, value, _d):  # type: ignore[no-untyped-def]
            self.writes.append((addr, value & 0xFFFF_FFFF))
            hook = self.store_hooks.get(addr)
            if hook is not None:
                hook(value & 0xFFFF_FFFF)

        uc.hook_add(unicorn.UC_HOOK_MEM_WRITE, on_write, begin=0x4000_0000, end=0x5FFF_FFFF)
        self.uc = uc

    def call(self, name: str, max_insns: int = 20_000_000) -> None:
        sym = self.elf.symbol(name)
        self.writes.clear()
        self.uc.reg_write(arm.UC_ARM_REG_SP, 0x2003_F000)
        self.uc.reg_write(arm.UC_ARM_REG_LR, RETURN | 1)
        self.uc.emu_start(sym.address | 1, RETURN, count=max_insns)
        assert self.uc.reg_read(arm.UC_ARM_REG_PC) == RETURN, f"{name} did not return"


def _boards_with_marker():
    lab = load_config(None)
    return [b for b in lab.boards.values() if b.marker]


@pytest.mark.parametrize("board", _boards_with_marker(), ids=lambda b: b.name)
def test_step_markers_drive_the_catalogued_pin(board):
    try:
        image = firmware.image_for(board.firmware)
    except RigError as exc:
        pytest.fail(f"no prebuilt image: {exc}")
    regs = _registers(board.marker)
    m = _Machine(image.path)
    m.call("tr_mark_step_begin")
    assert m.writes == [regs["set"]]
    m.call("tr_mark_step_end")
    assert m.writes == [regs["clear"]]
    for name in ("tr_mark_forward_begin", "tr_mark_update_end", "tr_mark_select_msg_begin"):
        m.call(name)
        assert m.writes == [], f"{name} touches a peripheral"

    m.call("hal_init")
    words: dict[int, int] = {}
    for addr, value in m.writes:
        words[addr & ~3] = value
    if "dir" in regs:  # nRF: cleared, then made an output
        i_clear = m.writes.index(regs["clear"])
        assert m.writes.index(regs["dir"]) > i_clear
    else:  # STM32: port clock on, driven low, then MODER = output for that pin only
        addr, bit = regs["clock"]
        assert words[addr] & bit
        i_low = m.writes.index(regs["clear"])
        moder_writes = [i for i, (a, _) in enumerate(m.writes) if a == regs["moder"][0]]
        assert moder_writes and moder_writes[-1] > i_low
        mask = regs["moder_mask"][1]
        assert words[regs["moder"][0]] & mask == regs["moder"][1]


def test_qemu_boards_declare_no_marker_and_their_markers_stay_empty():
    lab = load_config(None)
    for b in lab.boards.values():
        if b.qemu_machine:
            assert not b.marker, f"{b.name}: QEMU exposes no GPIO level to the host here"
    try:
        image = firmware.image_for("mps2-an386")
    except RigError as exc:
        pytest.fail(f"no prebuilt image: {exc}")
    m = _Machine(image.path)
    m.call("tr_mark_step_begin")
    m.call("tr_mark_step_end")
    assert m.writes == []


@pytest.mark.parametrize("board", _boards_with_marker(), ids=lambda b: b.name)
def test_the_firmwares_marker_stores_drive_a_simulated_ppk2(board):
    """Firmware bytes -> marker pin -> PPK2 D0 -> measured window: the marker stores of
    the prebuilt image, executed on unicorn, drive the simulator through `MarkerPin.wire`
    (what a twin does); the DUT draws 20 mA while the pin is high."""
    try:
        image = firmware.image_for(board.firmware)
    except RigError as exc:
        pytest.fail(f"no prebuilt image: {exc}")
    m = _Machine(image.path)
    edges = EdgeQueue(channel=0)
    m.store_hooks = MarkerPin.parse(board.marker).wire(edges)
    load = MarkedLoad(edges, 0.001, 0.020)
    with PPK2Sim(load, logic=edges) as sim, create_monitor("ppk2", port=sim.port) as mon:
        mon.configure(3.3, 100_000)
        mon.start()
        for label in ("step 1", "step 2"):
            time.sleep(0.02)
            with mon.window(label):
                m.call("tr_mark_step_begin")
                time.sleep(0.03)
                m.call("tr_mark_step_end")
        time.sleep(0.03)
        tr = mon.stop()
    res = tr.window_energy()
    truth = load.truth_j(3.3)
    assert [r.label for r in res] == ["step 1", "step 2"] and len(truth) == 2
    assert all("gpio marker D0" in r.detail for r in res)
    assert np.allclose([r.energy_j for r in res], truth, rtol=5e-3)
