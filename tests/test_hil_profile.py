"""HIL profile: train `full` and `tinyprop` on each target and record the per-phase figures
as JUnit properties (predicted MACs, instructions (QEMU), cycles (model), latency and
energy (model), the sparse/full ratios), so CI keeps a history of them.

QEMU targets run with the instruction-count plugin; a real board reports its own counters
(DWT cycles) only; the native build has no counter and is skipped. The target is started
here (not from the shared pool) because the plugin has to be loaded when QEMU starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _profile_util import need_plugin

from rig.config import LabConfig
from rig.errors import TargetUnavailable
from rig.profile.report import summarize
from rig.profiling import profile_target
from rig.protocol import PHASES
from rig.session import RunSpec
from rig.targets import resolve_target

pytestmark = pytest.mark.hil

STEPS = 4


def test_profile_full_vs_tinyprop(rig_lab: LabConfig, rig_target_name: str, tmp_path: Path,
                                  rig_record_property: Callable[[str, Any], None]) -> None:
    try:
        target = resolve_target(rig_lab, rig_target_name)
    except TargetUnavailable as exc:
        pytest.skip(f"target {rig_target_name!r} not available: {exc}")
    board = getattr(target, "board", None)
    if board is not None and board.cpu == "host":
        pytest.skip("the native build has no cycle counter and no instruction counts")
    why = target.unavailable_reason()
    if why is not None:
        pytest.skip(f"target {rig_target_name!r} not available: {why}")
    qemu = hasattr(target, "set_plugin")
    if qemu:
        need_plugin()
    spec = RunSpec.from_training(rig_lab.training)
    run = profile_target(target, rig_lab, ["full", "tinyprop"], spec, tmp_path,
                         overrides={"epochs": 1, "train_samples": 64, "test_samples": 16},
                         max_steps=STEPS)
    summary = summarize(run, command=("pytest tests/test_hil_profile.py "
                                     f"--rig-target {rig_target_name}"))
    labels = summary["labels"]
    core = labels["cycles"].split(", ", 1)[1].rstrip(")")
    rig_record_property("profile_board", summary["board"])
    rig_record_property("profile_labels", "; ".join(f"{k}={v}" for k, v in labels.items()))
    for strategy, st in summary["strategies"].items():
        assert st["ok"], st["failures"]
        assert st["steps"] == STEPS
        for phase in (*PHASES, "loss", "step"):
            ph = st["phases"][phase]
            key = f"profile_{strategy}_{phase}"
            rig_record_property(f"{key}_macs", round(ph["macs"]))
            if phase in PHASES:
                rig_record_property(f"{key}_device_counter", round(ph["device_counter"]))
            if qemu:
                cyc = ph["cycles"].get(core, {})
                rig_record_property(f"{key}_insns", round(ph["insns"]))
                if "nominal" in cyc:
                    rig_record_property(f"{key}_cycles_model", round(cyc["nominal"]))
                    rig_record_property(f"{key}_latency_model_us", round(ph["latency_s"] * 1e6, 2))
                    rig_record_property(f"{key}_energy_model_uj", round(ph["energy_j"] * 1e6, 3))
                if ph.get("insns_per_mac") is not None:
                    rig_record_property(f"{key}_insns_per_mac", round(ph["insns_per_mac"], 3))
        ratio = st.get("step_ratio_vs_full")
        if ratio:
            for k, v in ratio.items():
                if v is not None:
                    rig_record_property(f"profile_{strategy}_step_ratio_{k}", round(v, 4))
    rig_record_property("profile_flags", len(summary["flags"]))
    full = summary["strategies"]["full"]["phases"]
    tiny = summary["strategies"]["tinyprop"]["phases"]
    if qemu:
        # same forward code and data: within 1 %; TinyProp's sparse backward is cheaper
        assert tiny["forward"]["insns"] == pytest.approx(full["forward"]["insns"], rel=0.01)
        assert tiny["backward"]["insns"] < full["backward"]["insns"]
        assert tiny["selection"]["insns"] > 0 == full["selection"]["insns"]
        assert full["step"]["energy_j"] > 0
        assert tiny["backward"]["macs"] < full["backward"]["macs"]
