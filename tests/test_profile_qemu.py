"""Instruction counts from QEMU through the project's TCG plugin: deterministic, equal to an
independent emulator's (unicorn) window by window, consistent with the device's own counters
under -icount, and loud about bad plugin arguments.

Each test boots the prebuilt mps2-an386 image (which carries the tr_mark_* markers) and
runs a few TRAIN_STEPs of `full` and `tinyprop` on the same data."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _profile_util import marked_image, need_plugin, need_qemu

from rig.config import Board
from rig.connection import connect
from rig.device import Device
from rig.elf import read_elf
from rig.profile.icount import InstructionCounter, StepCounts, marker_windows, plugin_args
from rig.profile.isa import REG_EXTRA, classify_capstone
from rig.profile.unicorn_ref import UnicornRecord
from rig.profiling import run_on_unicorn
from rig.session import RunSpec, TrainingSession
from rig.targets.qemu import QemuTarget

BOARD = Board(name="mps2-an386", cpu="cortex-m4f", clock_hz=25_000_000,
              firmware="mps2-an386", qemu_machine="mps2-an386")
SPEC = RunSpec(dims=(64, 32, 10), lr=0.2, batch=16, epochs=1, train_samples=64,
               test_samples=16)
STRATEGIES = ("full", "tinyprop")
STEPS = 3


@pytest.fixture(scope="module")
def elf() -> Path:
    need_qemu()
    need_plugin()
    return marked_image()


def drive(device: Any, after_step: Callable[[], Any]) -> list[Any]:
    """STEPS TRAIN_STEPs per strategy on fixed batches; after_step() collects the record."""
    out = []
    for strategy in STRATEGIES:
        session = TrainingSession(device, replace(SPEC, strategy=strategy))
        session.prepare()
        for k in range(STEPS):
            session.step(np.arange(16 * k, 16 * k + 16))
            out.append(after_step())
    return out


def record_results(dev: Any) -> list[Any]:
    """Wrap dev.train_step so every result is also appended to the returned list."""
    results: list[Any] = []
    orig = dev.train_step

    def train_step(*a: Any, **kw: Any) -> Any:
        r = orig(*a, **kw)
        results.append(r)
        return r
    dev.train_step = train_step  # type: ignore[method-assign]
    return results


def qemu_records(elf: Path, tmp: Path, **options: Any) -> tuple[list[StepCounts], list[Any]]:
    target = QemuTarget("profile-test", {"board": BOARD, "elf": str(elf), **options})
    counter = InstructionCounter(elf, tmp / "icount.jsonl")
    counter.attach(target)
    with connect(target, check_firmware=False) as conn:
        dev = conn.device
        results = record_results(dev)
        recs = drive(dev, counter.take_step)
    return recs, results


@pytest.fixture(scope="module")
def first_run(elf: Path, tmp_path_factory: pytest.TempPathFactory) -> list[StepCounts]:
    return qemu_records(elf, tmp_path_factory.mktemp("icount1"))[0]


def test_counts_are_deterministic(elf: Path, first_run: list[StepCounts], tmp_path: Path) -> None:
    second, _ = qemu_records(elf, tmp_path)
    assert len(first_run) == len(second) == STEPS * len(STRATEGIES)
    for a, b in zip(first_run, second, strict=True):
        assert a.as_dict()["windows"] == b.as_dict()["windows"]
    full, tiny = first_run[0], first_run[STEPS]
    # 64-32-10 at batch 16: 37,888 MACs; the forward pass retires at least one instruction each
    assert full.phase("forward").insns > 37_888
    assert full.phase("selection").insns == 0
    assert tiny.phase("selection").insns > 0
    assert tiny.phase("backward").insns < full.phase("backward").insns
    assert full.phase("loss").insns < full.phase("forward").insns  # nested in forward
    assert full.other.insns >= 0 and full.other.insns < 0.01 * full.total.insns
    assert full.phase("backward").entries == len(SPEC.dims) - 1
    assert full.phase("forward").classes.get("unknown", 0) == 0


def _class_map(elf: Path) -> dict[int, Any]:
    image = read_elf(elf)
    out = {}
    for sym in image.functions().values():
        for lo, hi in image.code_ranges(sym):
            for c in classify_capstone(image.read(lo, hi - lo), lo):
                out[c.address] = c
    return out


@pytest.mark.slow
def test_unicorn_counts_equal_qemu(elf: Path, first_run: list[StepCounts]) -> None:
    """The cross-check: the same firmware and bytes on unicorn give the same instruction
    count in every window of every step; the class histogram of unicorn's executed
    addresses, classified by capstone, equals the plugin's; so do the taken conditional
    branches and the registers moved by LDM/STM/VLDM/VSTM."""
    pytest.importorskip("unicorn")
    pytest.importorskip("capstone")
    classes = _class_map(elf)
    cond = {a: c.size for a, c in classes.items() if c.cls == "b_cond"}

    def body(device: Device, fw: Any) -> None:
        body.records = drive(device, lambda: fw.take_records()[-1])  # type: ignore[attr-defined]

    run_on_unicorn(elf, body, cond_branches=cond)
    uni: list[UnicornRecord] = body.records  # type: ignore[attr-defined]
    assert len(uni) == len(first_run)
    for q, u in zip(first_run, uni, strict=True):
        assert u.kind == q.kind
        for name, trace in u.windows.items():
            wq = q.windows[name]
            assert (name, trace.insns, trace.entries) == (name, wq.insns, wq.entries)
            hist: Counter[str] = Counter()
            regs: Counter[str] = Counter()
            for addr, n in trace.addr_counts.items():
                c = classes[addr]
                hist[c.cls] += n
                if c.cls in REG_EXTRA:
                    regs[REG_EXTRA[c.cls]] += n * c.regs
            assert dict(hist) == dict(wq.classes), name
            assert {k: v for k, v in regs.items() if v} == {
                k: wq.extra[k] for k in set(REG_EXTRA.values()) if wq.extra.get(k)}, name
            assert trace.cond_taken == wq.extra.get("b_cond_taken", 0), name


def test_device_counters_follow_instructions_under_icount(elf: Path, tmp_path: Path,
                                                          first_run: list[StepCounts]) -> None:
    """Counters check: with -icount shift=0 QEMU's clock advances 1 ns per instruction and
    SysTick (25 MHz core clock) ticks once per 40 instructions, so each phase counter must
    equal that phase's instructions / 40, up to the counter-read and marker instructions
    inside the counter window and one tick of quantisation. (No plugin in this run: under
    -icount QEMU may re-execute the start of a block at an MMIO access.)"""
    target = QemuTarget("profile-icount", {"board": BOARD, "elf": str(elf), "icount": 0})
    with connect(target, check_firmware=False) as conn:
        dev = conn.device
        results = record_results(dev)
        drive(dev, lambda: None)
    assert conn.hello.counter_kind == 2  # SysTick: QEMU has no DWT
    for rec, res in zip(first_run, results, strict=True):
        for phase, ticks in res.phase_counters.items():
            insns = rec.phase(phase).insns
            entries = max(rec.phase(phase).entries, 1)
            # per entry: ~20 instructions of counter read + 2 marker calls, and +-1 tick
            assert insns / 40 - 1 <= ticks <= (insns + 60 * entries) / 40 + 1 + entries, \
                (phase, ticks, insns)


def test_bad_plugin_arguments_stop_qemu(elf: Path, tmp_path: Path) -> None:
    lib = need_plugin()
    args = plugin_args(read_elf(elf), tmp_path / "x.jsonl")
    assert any(a.startswith("win=step:") for a in args) and "rec=step" in args
    assert set(marker_windows(read_elf(elf))) >= {"step", "forward", "backward", "selection",
                                                  "update", "loss", "select_msg"}
    proc = subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor",
                           "none", "-serial", "none", "-kernel", str(elf),
                           "-plugin", f"{lib},out={tmp_path / 'y.jsonl'},win=oops"],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode != 0
    assert "trcount: bad argument 'win=oops'" in proc.stderr


def test_measured_energy_windows_follow_train_steps(elf: Path, tmp_path: Path) -> None:
    """With a power monitor (the simulated PPK2, constant 10 mA) the profile marks a window
    around every TRAIN_STEP and reports `energy (measured)` per step next to the model."""
    from rig.config import load_config
    from rig.profile.energy import MEASURED
    from rig.profile.monitors import create_monitor
    from rig.profile.monitors.sim.ppk2_sim import PPK2Sim
    from rig.profile.monitors.sim.waveform import Segment, Waveform
    from rig.profile.report import summarize
    from rig.profiling import profile_target

    lab = load_config()
    target = QemuTarget("profile-monitor", {"board": BOARD, "elf": str(elf)})
    with PPK2Sim(Waveform([Segment(1000.0, 0.010)])) as sim, \
            create_monitor("ppk2", port=sim.port, timeout_s=2.0, marker_channel=None) as mon:
        run = profile_target(target, lab, ["full", "tinyprop"], SPEC, tmp_path,
                             overrides={"epochs": 1}, max_steps=2, monitor=mon,
                             monitor_voltage_v=3.3, monitor_rate_hz=10_000)
    for sr in run.runs:
        assert [e.label for e in sr.measured] == [f"{sr.strategy} step {i}" for i in (1, 2)]
        for e in sr.measured:
            assert e.source == MEASURED and e.duration_s > 0
            assert e.energy_j == pytest.approx(3.3 * 0.010 * e.duration_s, rel=0.02)
    s = summarize(run)
    em = s["strategies"]["full"]["energy_measured"]
    assert em["label"] == "energy (measured)" and em["windows"] == 2
    assert s["strategies"]["full"]["phases"]["step"]["energy_label"] == "energy (model)"


def test_cli_profile_writes_the_report(elf: Path, tmp_path: Path) -> None:
    """`rig profile` end to end on the lab's default target (QEMU + plugin)."""
    import json

    from rig.cli import main

    out = tmp_path / "prof"
    assert main(["profile", "--steps", "2", "--train-samples", "32", "--test-samples", "16",
                 "--no-charts", "--out", str(out)]) == 0
    summary = json.loads((out / "profile.json").read_text())
    assert set(summary["strategies"]) == {"full", "tinyprop"}
    assert summary["strategies"]["full"]["steps"] == 2
    assert summary["labels"]["insns"] == "instructions (QEMU)"
    assert (out / "report.html").stat().st_size > 1000
