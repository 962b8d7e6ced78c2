"""The figures a test run reports as JUnit properties: one flat `(name, value)` list per
training run (`run_properties`) and per session (`suite_properties`), each name prefixed
`rig_`. The pytest plugin writes them; they are plain data so a CI dashboard can chart them.

Per run: the verdict, max loss relative error, max |Δparam|, mask agreement, near-ties,
steps, skipped steps, the device counters per phase with their label, the build hash.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import TYPE_CHECKING

from rig.compare import TIE
from rig.protocol import PHASES

if TYPE_CHECKING:
    from rig.session import RunReport

Property = tuple[str, str]

_JACCARD = re.compile(r"J=([0-9.]+)")


def _g(x: float) -> str:
    return f"{x:.6g}"


def run_properties(report: RunReport, prefix: str = "rig_") -> list[Property]:
    """The figures of one finished (or partly run) training session."""
    checks = [c for v in report.all_verdicts for c in v.checks]
    masks = [c for c in checks if c.name.startswith(("rows[", "bias["))]
    jaccards = [float(m.group(1)) for c in masks if (m := _JACCARD.match(c.value))]
    identical = sum(1 for c in masks if c.status == "pass")
    skipped = sum(1 for s in report.steps if s.device.skipped)
    counters = {p: 0 for p in PHASES}
    for s in report.steps:
        for phase, value in s.device.phase_counters.items():
            counters[phase] = counters.get(phase, 0) + value
    out: list[Property] = [
        ("verdict", "ok" if report.ok else "fail"),
        ("board", report.hello.board),
        ("build_hash", report.hello.build_hash),
        ("strategy", report.spec.strategy),
        ("steps", str(len(report.steps))),
        ("skipped_steps", str(skipped)),
        ("max_loss_rel_error", _g(report.max_loss_rel)),
        ("max_abs_dparam", _g(max((e.max_param_abs for e in report.epochs), default=0.0))),
        ("near_ties", str(sum(1 for c in checks if c.status == TIE))),
    ]
    if masks:
        out.append(("mask_agreement", f"{identical}/{len(masks)} identical, min Jaccard "
                                      f"{min(jaccards, default=1.0):.4f}"))
    out.append(("counter_label", report.counter_label))
    out += [(f"counter_{phase}", str(value)) for phase, value in counters.items()]
    return [(prefix + name, value) for name, value in out]


def qemu_version(binary: str = "qemu-system-arm") -> str | None:
    """`qemu-system-arm --version`'s first line, or None when QEMU is not installed."""
    path = shutil.which(binary)
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.splitlines()[0].strip() if out.stdout else None
