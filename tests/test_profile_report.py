"""Profile analysis on synthetic records (no emulator): ratios, instructions per MAC, the
scaling flag at its threshold, per-step fits, energy labels, the plugin-log reader, and the
JSON/HTML/PNG report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rig.profile.energy import MEASURED, MODELLED, PRESETS, EnergyResult
from rig.profile.icount import PluginError, PluginLog, StepCounts, WindowCounts
from rig.profile.render import write_report
from rig.profile.report import (
    SCALING_THRESHOLD,
    ProfileRun,
    StepProfile,
    StrategyRun,
    summarize,
)
from rig.protocol import HelloInfo

PHASES = ("forward", "backward", "selection", "update")
HELLO = HelloInfo(proto_version=1, counter_kind=2, max_payload=2048, clock_hz=25_000_000,
                  param_capacity=1, data_capacity=1, max_layers=6, max_width=256,
                  max_batch=64, strategies=3, board="mps2-an386", build_hash="ab" * 32,
                  fw_version="0.1.0")


def wc(insns: int) -> WindowCounts:
    """A window of `insns` ALU instructions."""
    return WindowCounts(1, insns, {"alu": insns} if insns else {}, {})


def step(strategy: str, i: int, macs: dict[str, int], insns: dict[str, int],
         other: int = 10) -> StepProfile:
    windows = {p: wc(insns.get(p, 0)) for p in (*PHASES, "loss")}
    windows["step"] = wc(sum(insns.get(p, 0) for p in PHASES) + other)
    return StepProfile(strategy, 0, i, False, [1], [1], {p: 0 for p in PHASES}, macs,
                       StepCounts("step", i, 0, windows), 0.0, True)


def make_run(backward_ipm: float, n: int = 4) -> ProfileRun:
    run = ProfileRun("mps2-an386", "cortex-m4f", 25e6, "test", HELLO, "SysTick ticks",
                     PRESETS["mps2-an386"], icount=True)
    full = StrategyRun("full", {"dims": [4, 2]})
    sparse = StrategyRun("tinyprop", {"dims": [4, 2]})
    for i in range(1, n + 1):
        full.steps.append(step("full", i, {"forward": 100, "backward": 200, "selection": 0,
                                           "update": 50},
                               {"forward": 700, "backward": 1600, "update": 500}))
        k = 100 + 10 * i  # sparse backward MACs vary per step
        sparse.steps.append(step("tinyprop", i, {"forward": 100, "backward": k,
                                                 "selection": 20, "update": 25},
                                 {"forward": 700, "backward": int(backward_ipm * k),
                                  "selection": 300, "update": 250}))
    run.runs = [full, sparse]
    return run


def test_ratios_and_instructions_per_mac() -> None:
    s = summarize(make_run(backward_ipm=8.0))
    full, tp = s["strategies"]["full"]["phases"], s["strategies"]["tinyprop"]["phases"]
    assert full["backward"]["insns_per_mac"] == pytest.approx(8.0)
    assert tp["backward"]["insns_per_mac"] == pytest.approx(8.0)
    assert tp["backward"]["ipm_deviation"] == pytest.approx(0.0)
    assert tp["backward"]["ratio_vs_full"]["macs"] == pytest.approx(125 / 200)
    assert tp["backward"]["ratio_vs_full"]["insns"] == pytest.approx(1000 / 1600)
    assert tp["update"]["ipm_deviation"] == pytest.approx(0.0)
    assert not [f for f in s["flags"] if f["kind"] == "scaling"]
    # other = step - phases
    assert full["other"]["insns"] == 10
    # fit over the varying sparse backward steps: slope 8, no fixed part
    assert tp["backward"]["fit"]["insns_per_mac"] == pytest.approx(8.0, rel=1e-3)
    assert abs(tp["backward"]["fit"]["fixed_insns"]) < 5
    # labels and units
    assert s["labels"]["insns"] == "instructions (QEMU)"
    assert s["labels"]["cycles"] == "cycles (model, Cortex-M4)"
    assert tp["backward"]["energy_label"] == MODELLED
    cyc = full["forward"]["cycles"]["Cortex-M4"]["nominal"]
    assert cyc == 700  # ALU only: one cycle each
    assert full["forward"]["latency_s"] == pytest.approx(700 / 25e6)
    assert full["forward"]["energy_j"] == pytest.approx(PRESETS["mps2-an386"].energy_per_cycle_j
                                                        * 700)
    # selection has no reference in full
    kinds = {(f["strategy"], f["phase"], f["kind"]) for f in s["flags"]}
    assert ("tinyprop", "selection", "no-reference") in kinds


@pytest.mark.parametrize("ipm, flagged", [(8.0 * (1 + SCALING_THRESHOLD) * 0.99, False),
                                          (8.0 * (1 + SCALING_THRESHOLD) * 1.01, True),
                                          (8.0 * (1 - SCALING_THRESHOLD) * 0.99, True)])
def test_scaling_flag_threshold(ipm: float, flagged: bool) -> None:
    s = summarize(make_run(backward_ipm=ipm, n=6))
    tp = s["strategies"]["tinyprop"]["phases"]["backward"]
    assert tp["flag"] is flagged
    assert any(f["kind"] == "scaling" and f["phase"] == "backward" for f in s["flags"]) is flagged


def test_measured_energy_is_labelled_and_kept_apart() -> None:
    run = make_run(8.0)
    run.runs[1].measured = [EnergyResult(f"tinyprop step {i}", 1e-6 * i, 0.01, 0.03, MEASURED,
                                         "ppk2, gpio D0") for i in range(1, 5)]
    s = summarize(run)
    em = s["strategies"]["tinyprop"]["energy_measured"]
    assert em["label"] == MEASURED and em["windows"] == 4
    assert em["per_step_j"] == pytest.approx(2.5e-6)
    assert "energy_measured" not in s["strategies"]["full"]


def test_report_files(tmp_path: Path) -> None:
    run = make_run(9.0)
    s = summarize(run, command="rig profile --steps 4")
    paths = write_report(run, s, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["command"] == "rig profile --steps 4"
    assert len(data["runs"][1]["steps"]) == 4
    assert data["runs"][0]["steps"][0]["icount"]["windows"]["forward"]["insns"] == 700
    html = paths["html"].read_text()
    assert "instructions (QEMU)" in html and "cycles (model, Cortex-M4)" in html
    assert "energy (model)" in html and "data:image/png;base64," in html
    for name in ("phases.png", "ratios.png", "energy.png", "classes.png", "steps.png"):
        assert paths[name].read_bytes()[:4] == b"\x89PNG"


def test_plugin_log_reads_complete_lines_only(tmp_path: Path) -> None:
    f = tmp_path / "log.jsonl"
    rec = {"rec": "step", "seq": 1, "unbalanced": 0,
           "windows": {"step": {"entries": 1, "insns": 5, "classes": {"alu": 5}, "extra": {}}}}
    f.write_text('{"rec":"start","classes":[]}\n' + json.dumps(rec) + "\n" + '{"rec":"st')
    log = PluginLog(f)
    (r,) = log.new_records()
    assert r.total.insns == 5 and log.header is not None
    assert log.new_records() == []  # the partial line waits
    with open(f, "a") as fh:
        fh.write('ep","seq":2,"unbalanced":1,"windows":{}}\n')
    with pytest.raises(PluginError, match="out of order"):
        log.new_records()


def test_power_model_sources() -> None:
    from rig.config import Board, Power
    from rig.profiling import power_model

    lab = Board("bench", "cortex-m4f", 48_000_000, "x", power=Power(3.0, 0.2))
    m = power_model(lab, "bench", 48e6)
    assert (m.voltage_v, m.current_ma_per_mhz, m.clock_hz) == (3.0, 0.2, 48e6)
    assert "lab_config" in m.basis
    f429 = Board("nucleo-f429zi", "cortex-m4f", 168_000_000, "nucleo-f429zi",
                 pyocd_target="stm32f429xi")
    m = power_model(f429, "nucleo-f429zi", 168e6)
    assert m.current_ma_per_mhz == PRESETS["stm32f429"].current_ma_per_mhz
    assert m.clock_hz == 168e6
    assert power_model(None, "mystery", 0).basis.startswith("ASSUMPTION")
