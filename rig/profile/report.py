"""Profile data and summary: predicted MACs vs measured instructions and model cycles, per
phase and per strategy, with energy. Rendering it (table rows, PNG charts, HTML, the files
on disk) is `rig.profile.render`.

Labels (docs/profiling.md, "label in every report": every figure says where it came from):
`MACs (golden model)`, `instructions (QEMU)`, `cycles (model, <core>)`,
`latency (model)` = model cycles / the board's clock, `energy (model)` (rig.profile.energy,
E = V·I(f)·t), `energy (measured)` (a power monitor, windows marked per TRAIN_STEP),
and the device's own counters under the label HELLO gives them.

Scaling check. The golden model predicts each phase's MACs; if a phase's cost scaled with
its MACs, its instructions per MAC would be the same for every strategy. For each phase
with MACs in both runs we compare a strategy's instructions/MAC with the `full` strategy's
(the dense reference, same data, same code path for the dense parts):

    deviation = (instr/MAC)_strategy / (instr/MAC)_full - 1,  flagged when |deviation| > X

X = 10 % (`SCALING_THRESHOLD`). Why 10 %: the forward pass runs the same code for every
strategy and differs only through data-dependent branches (ReLU, expf/logf paths); that
moves its instr/MAC by at most 1.3 % between strategies (measured on the reference task,
all seven strategies: -1.3 % .. 0.0 %, docs/profiling.md), so 10 % is almost an order of
magnitude above the noise of identical code. Per-row and per-neuron work that does not
shrink with k (mask tests over all N rows, bias sums over the full error, clearing the
previous step's record) shows up as +4 % .. +120 % in sparse backward and update phases.
A flagged phase spends more than a tenth of its cost on work the MAC count does not
predict (deviation > 0: saves less than promised; < 0: more).

Also reported per phase when the per-step MACs vary (sparse strategies): a least-squares
fit instructions = a·MACs + b over the steps: `a` the marginal instructions per MAC, `b`
the per-step cost that no MAC count predicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rig.profile.cycles import CortexM0Model, CortexM4Model, NotApplicable, model_for
from rig.profile.energy import (
    MEASURED,
    MODELLED,
    BoardPowerModel,
    EnergyResult,
    PhaseWork,
    calibrate_from_trace,
)
from rig.profile.icount import LABEL as ICOUNT_LABEL
from rig.profile.icount import StepCounts, WindowCounts
from rig.protocol import PHASES

SCALING_THRESHOLD = 0.10


# ------------------------------------------------------------------ what a run recorded


@dataclass
class StepProfile:
    strategy: str
    epoch: int
    index: int  # step number within the strategy's run, from 1
    skipped: bool
    k: list[int]
    golden_k: list[int]
    counters: dict[str, int]  # the device's phase counters (HELLO counter kind)
    macs: dict[str, int]  # predicted by the golden model for this step
    icount: StepCounts | None
    wall_s: float
    ok: bool

    @property
    def tie(self) -> bool:
        """Device and golden chose different k (near-ties in top-k): the MAC prediction
        follows the golden model's choice for this step."""
        return self.k != self.golden_k


@dataclass
class SelectProfile:
    strategy: str
    epoch: int
    macs: int
    icount: StepCounts | None


@dataclass
class StrategyRun:
    strategy: str
    spec: dict[str, Any]  # the RunSpec, as a mapping
    steps: list[StepProfile] = field(default_factory=list)
    selects: list[SelectProfile] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    ok: bool = True
    failures: str = ""
    measured: list[EnergyResult] = field(default_factory=list)  # per step, if a monitor ran
    measured_dropped: int = 0  # step windows the monitor's trace did not cover
    wall_s: float = 0.0


@dataclass
class ProfileRun:
    board: str
    cpu: str
    clock_hz: float
    target: str
    hello: Any  # rig.protocol.HelloInfo
    counter_label: str
    power: BoardPowerModel
    icount: bool  # instruction counts (QEMU plugin) recorded
    runs: list[StrategyRun] = field(default_factory=list)
    monitor: str | None = None
    notes: list[str] = field(default_factory=list)  # how the run was adapted to the board
    #: measurements that could not be trusted (e.g. marker pulses != steps): exit 2
    measurement_errors: list[str] = field(default_factory=list)

    def run_of(self, strategy: str) -> StrategyRun:
        for r in self.runs:
            if r.strategy == strategy:
                return r
        raise KeyError(strategy)


def as_jsonable(obj: Any) -> Any:
    """Dataclasses, numpy scalars and paths as plain JSON values."""
    if hasattr(obj, "as_dict"):
        return as_jsonable(obj.as_dict())
    if hasattr(obj, "__dataclass_fields__"):
        return {k: as_jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): as_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [as_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


MACS_LABEL = "MACs (golden model)"
#: windows reported besides the four phases: loss is inside forward; other = in the step,
#: in no phase; step = the whole TRAIN_STEP
EXTRA_WINDOWS = ("loss", "other", "step")


@dataclass(frozen=True)
class Flag:
    strategy: str
    phase: str
    kind: str  # "scaling", "no-reference", "unmodelled", "tie", "verdict"
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"strategy": self.strategy, "phase": self.phase, "kind": self.kind,
                "message": self.message}


def _sum_counts(items: Sequence[WindowCounts]) -> WindowCounts:
    total = WindowCounts.zero()
    for w in items:
        total = total + w
    return total


def _window(step: Any, name: str) -> WindowCounts:
    ic = step.icount
    if ic is None:
        return WindowCounts.zero()
    if name == "other":
        return ic.other
    if name == "step":
        return ic.total
    return ic.phase(name)


def cycle_models(cpu: str) -> list[CortexM4Model | CortexM0Model]:
    try:
        return [model_for(cpu)]
    except NotApplicable:
        return [CortexM4Model()]


def _fit(macs: np.ndarray, insns: np.ndarray) -> dict[str, float] | None:
    if len(macs) < 3 or float(np.ptp(macs)) == 0.0:
        return None
    a, b = np.polyfit(macs.astype(float), insns.astype(float), 1)
    pred = a * macs + b
    ss_res = float(np.sum((insns - pred) ** 2))
    ss_tot = float(np.sum((insns - insns.mean()) ** 2))
    return {"insns_per_mac": float(a), "fixed_insns": float(b),
            "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0}


def summarize_strategy(run: ProfileRun, sr: StrategyRun) -> dict[str, Any]:
    n = max(len(sr.steps), 1)
    models = cycle_models(run.cpu)
    out: dict[str, Any] = {"steps": len(sr.steps), "skipped": sum(s.skipped for s in sr.steps),
                           "ties": sum(s.tie for s in sr.steps), "ok": sr.ok,
                           "failures": sr.failures.strip()[:2000], "epochs": sr.epochs,
                           "wall_s": sr.wall_s, "phases": {}}
    for name in (*PHASES, *EXTRA_WINDOWS):
        macs_steps = np.array([s.macs.get(name, 0) if name in PHASES else
                               (sum(s.macs.values()) if name == "step" else 0)
                               for s in sr.steps], dtype=np.int64)
        wins = [_window(s, name) for s in sr.steps]
        total = _sum_counts(wins)
        insn_steps = np.array([w.insns for w in wins], dtype=np.int64)
        ph: dict[str, Any] = {
            "macs": float(macs_steps.sum()) / n,
            "macs_total": int(macs_steps.sum()),
            "insns": total.insns / n if run.icount else None,
            "insns_total": total.insns if run.icount else None,
            "insns_per_mac": (total.insns / float(macs_steps.sum())
                              if run.icount and macs_steps.sum() else None),
            "classes": {k: v / n for k, v in total.classes.items()},
            "extra": {k: v / n for k, v in total.extra.items()},
            "cycles": {},
        }
        if run.icount:
            for m in models:
                try:
                    est = m.estimate(total.classes, total.extra)
                except NotApplicable as exc:
                    ph["cycles"][m.core] = {"label": f"cycles (model, {m.core})",
                                            "not_applicable": str(exc)}
                    continue
                ph["cycles"][m.core] = {"label": est.label, "nominal": est.nominal / n,
                                        "low": est.low / n, "high": est.high / n,
                                        "by_class": {k: v / n for k, v in
                                                     est.by_class.items()}}
            main = next((c for c in ph["cycles"].values() if "nominal" in c), None)
            if main is not None and run.clock_hz:
                ph["latency_s"] = main["nominal"] / run.clock_hz
                e = run.power.phase(name, PhaseWork(cycles=main["nominal"],
                                                    origin=main["label"]))
                ph["energy_j"] = e.energy_j
                ph["energy_label"] = MODELLED
            fit = _fit(macs_steps, insn_steps) if name in PHASES else None
            if fit is not None:
                ph["fit"] = fit
        if name in (*PHASES, "step"):
            cnt = np.array([sum(s.counters.get(p, 0) for p in PHASES) if name == "step"
                            else s.counters.get(name, 0) for s in sr.steps], dtype=np.float64)
            ph["device_counter"] = float(cnt.mean()) if len(cnt) else 0.0
            if not run.icount and "DWT" in run.counter_label and run.clock_hz:
                # a board's cycle counter is the measurement: latency and energy from it
                ph["latency_s"] = ph["device_counter"] / run.clock_hz
                e = run.power.phase(name, PhaseWork(cycles=ph["device_counter"],
                                                    origin=run.counter_label))
                ph["energy_j"] = e.energy_j
                ph["energy_label"] = MODELLED
        out["phases"][name] = ph
    if sr.selects:
        sel = [s.icount.total for s in sr.selects if s.icount is not None]
        out["select"] = {"count": len(sr.selects),
                         "macs": float(np.mean([s.macs for s in sr.selects])),
                         "insns": (_sum_counts(sel).insns / len(sel)) if sel else None}
    if sr.measured:
        per_step = [e.energy_j for e in sr.measured]
        out["energy_measured"] = {"label": MEASURED, "windows": len(per_step),
                                  "dropped_windows": sr.measured_dropped,
                                  "per_step_j": float(np.mean(per_step)),
                                  "detail": sr.measured[0].detail,
                                  "mean_duration_s": float(np.mean([e.duration_s for e in
                                                                    sr.measured]))}
        step_model_j = out["phases"].get("step", {}).get("energy_j")
        if step_model_j:  # the model, calibrated on this run's measured steps
            em = out["energy_measured"]
            cycles = step_model_j / run.power.energy_per_cycle_j
            fitted = calibrate_from_trace(
                run.power, EnergyResult("step", em["per_step_j"], em["mean_duration_s"],
                                        0.0, MEASURED, em["detail"]), cycles)
            em["measured_over_model"] = em["per_step_j"] / step_model_j
            em["calibrated_model"] = {"current_ma_per_mhz": fitted.current_ma_per_mhz,
                                      "static_current_ma": fitted.static_current_ma,
                                      "voltage_v": fitted.voltage_v,
                                      "basis": "calibrated from energy (measured) per step "
                                               f"over {cycles:.0f} model/device cycles"}
    return out


def summarize(run: ProfileRun, threshold: float = SCALING_THRESHOLD,
              command: str = "") -> dict[str, Any]:
    models = cycle_models(run.cpu)
    main_core = models[0].core
    summary: dict[str, Any] = {
        "command": command,
        "board": run.board, "cpu": run.cpu, "clock_hz": run.clock_hz, "target": run.target,
        "build_hash": run.hello.build_hash, "counter_label": run.counter_label,
        "power_model": {"board": run.power.board, "voltage_v": run.power.voltage_v,
                        "current_ma_per_mhz": run.power.current_ma_per_mhz,
                        "clock_hz": run.power.clock_hz, "basis": run.power.basis},
        "labels": {"macs": MACS_LABEL, "insns": ICOUNT_LABEL,
                   "cycles": f"cycles (model, {main_core})",
                   "latency": f"latency (model) at {run.clock_hz / 1e6:g} MHz",
                   "energy": MODELLED, "energy_measured": MEASURED,
                   "counters": run.counter_label},
        "scaling_threshold": threshold,
        "spec": as_jsonable(run.runs[0].spec) if run.runs else {},
        "strategies": {sr.strategy: summarize_strategy(run, sr) for sr in run.runs},
        "monitor": run.monitor,
        "notes": list(run.notes),
        "measurement_errors": list(run.measurement_errors),
    }
    flags: list[Flag] = []
    strategies = summary["strategies"]
    ref = strategies.get("full")
    for name, st in strategies.items():
        if not st["ok"]:
            flags.append(Flag(name, "-", "verdict", "device and golden model disagree: "
                              + st["failures"].splitlines()[0] if st["failures"] else ""))
        if st["ties"]:
            flags.append(Flag(name, "-", "tie", f"{st['ties']} step(s) where device and golden "
                              "chose different k (near-ties); MACs follow the golden choice"))
        for ph in PHASES:
            cur = st["phases"][ph]
            cyc = cur["cycles"].get(main_core, {}).get("nominal")
            if ref is not None:
                rp = ref["phases"][ph]
                cur["ratio_vs_full"] = {
                    "macs": cur["macs"] / rp["macs"] if rp["macs"] else None,
                    "counter": (cur["device_counter"] / rp["device_counter"])
                    if rp.get("device_counter") else None,
                    "insns": (cur["insns"] / rp["insns"]) if run.icount and rp["insns"]
                    else None,
                    "cycles": (cyc / rp["cycles"][main_core]["nominal"])
                    if cyc is not None and rp["cycles"].get(main_core, {}).get("nominal")
                    else None,
                }
            if not run.icount:
                continue
            ipm = cur["insns_per_mac"]
            if ipm is None:
                if cur["insns"]:
                    flags.append(Flag(name, ph, "unmodelled",
                                      f"{cur['insns']:.0f} instructions/step with no predicted "
                                      "MACs"))
                continue
            if ref is None or name == "full":
                continue
            ref_ipm = ref["phases"][ph]["insns_per_mac"]
            if ref_ipm is None:
                fwd = st["phases"]["forward"]["insns_per_mac"]
                flags.append(Flag(name, ph, "no-reference",
                                  f"{ipm:.2f} instr/MAC (its forward: {fwd or 0:.2f}); full "
                                  f"has no {ph} phase to compare with"))
                continue
            dev = ipm / ref_ipm - 1.0
            cur["ipm_deviation"] = dev
            cur["flag"] = abs(dev) > threshold
            if cur["flag"]:
                flags.append(Flag(name, ph, "scaling",
                                  f"{ipm:.2f} instr/MAC vs {ref_ipm:.2f} for full "
                                  f"({dev:+.0%}, threshold ±{threshold:.0%}): cost does "
                                  f"not scale with the predicted MACs"))
        if ref is not None and name != "full" and run.icount:
            s_tot = st["phases"]["step"]
            r_tot = ref["phases"]["step"]
            st["step_ratio_vs_full"] = {
                "macs": s_tot["macs"] / r_tot["macs"] if r_tot["macs"] else None,
                "insns": s_tot["insns"] / r_tot["insns"] if r_tot["insns"] else None,
                "cycles": (s_tot["cycles"][main_core]["nominal"] /
                           r_tot["cycles"][main_core]["nominal"])
                if "nominal" in s_tot["cycles"].get(main_core, {}) else None,
            }
    summary["flags"] = [f.as_dict() for f in flags]
    return summary


# ------------------------------------------------------------------ rendering
