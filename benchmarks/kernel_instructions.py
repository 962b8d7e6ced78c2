#!/usr/bin/env python3
"""Exact retired instructions per multiply-accumulate of the int8 kernels on QEMU
mps2-an386 (Cortex-M4F), next to plain-C reference loops and Arm's CMSIS-NN.

Builds firmware/bench/ (a small image that runs each case once between two marker
functions; compiled with the firmware's flags, arm-none-eabi-gcc 12.2 -O2) in two
variants — our kernels on the Cortex-M4 DSP path and the same sources on their plain-C
path — and the insn_window TCG plugin (firmware/tools/qemu_plugin/insn_window.c, host gcc),
then runs each image under QEMU with the plugin counting every executed instruction
between the markers. A case's count is its window minus the empty window (the markers'
own instructions), so it includes argument setup, the call and the return. MACs are
nominal (padding taps included for convolutions).

The CMSIS-NN column holds CMSIS-NN commit 99f736a measured exactly this way (same gcc,
flags, data and plugin; CMSIS-NN is not part of this repository). With
`--cmsis-nn-root PATH` (or $CMSIS_NN_ROOT) a third image links the user's CMSIS-NN copy
(arm_fully_connected_s8, arm_convolve_wrapper_s8) and the column is measured live.

    python benchmarks/kernel_instructions.py [--json out.json] [--build DIR]
                                             [--cmsis-nn-root PATH]

Figures are `instructions (QEMU)`, not cycles: QEMU does not model the pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "firmware" / "bench"

#: CMSIS-NN commit 99f736a on mps2-an386 at -O2, instructions per MAC counted with this
#: project's plugin on these shapes (arm_fully_connected_s8; convolutions through
#: arm_convolve_wrapper_s8, which takes arm_convolve_1x1_s8_fast for the 1x1 ones).
CMSIS_NN_REFERENCE = {"fc 256x128": 2.07, "fc 512x10": 2.00, "fc 64x32": 2.72,
                      "conv 16x16x16-k3-o32": 2.138, "conv 8x8x1-k3-o16": 10.414,
                      "conv 4x4x16-k1-o32": 4.308, "conv 4x4x8-k1-o16": 7.194}
CMSIS_NN_REFERENCE_LABEL = "CMSIS-NN 99f736a, instructions (QEMU, this project's plugin)"
#: The acceptance bound of issue 21: ours <= 0.9 x CMSIS-NN on every shape.
TARGET_RATIO = 0.9


@dataclass
class Case:
    name: str  # e.g. fc_s8/256x128
    macs: int
    instructions: int

    @property
    def per_mac(self) -> float:
        return self.instructions / self.macs if self.macs else 0.0


class BenchError(RuntimeError):
    pass


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BenchError(f"{name} not found (apt-get install -y gcc-arm-none-eabi "
                         "qemu-system-arm gcc)")
    return path


def build(build_dir: Path, cmsis_nn_root: Path | None = None) -> dict[str, Path]:
    """make -C firmware/bench: {'dsp': elf, 'c': elf, 'plugin': so[, 'cmsis': elf]}."""
    cmd = ["make", "-C", str(BENCH), f"BUILD={build_dir}"]
    if cmsis_nn_root is not None:
        cmd.append(f"CMSIS_NN_ROOT={cmsis_nn_root.resolve()}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"building firmware/bench failed:\n{proc.stdout[-2000:]}"
                         f"\n{proc.stderr[-2000:]}")
    paths = {"dsp": build_dir / "bench_dsp.elf", "c": build_dir / "bench_c.elf",
             "plugin": build_dir / "libinsn_window.so"}
    if cmsis_nn_root is not None:
        paths["cmsis"] = build_dir / "bench_cmsis.elf"
    return paths


def symbol(elf: Path, name: str) -> int:
    out = subprocess.run([_tool("arm-none-eabi-nm"), str(elf)], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise BenchError(f"{elf}: no symbol {name}")


def run(elf: Path, plugin: Path, timeout: float = 120.0) -> list[Case]:
    """Run one bench image under QEMU with the plugin; the cases with their counts."""
    begin, end = symbol(elf, "bench_begin"), symbol(elf, "bench_end")
    with tempfile.TemporaryDirectory(prefix="tinyrig-bench-") as tmp:
        log = Path(tmp) / "plugin.log"
        cmd = [_tool("qemu-system-arm"), "-M", "mps2-an386", "-nographic", "-monitor", "none",
               "-serial", "null", "-semihosting-config", "enable=on,target=native",
               "-kernel", str(elf), "-plugin", f"{plugin},begin={begin:#x},end={end:#x}",
               "-d", "plugin", "-D", str(log)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        text = proc.stdout + proc.stderr
        if proc.returncode != 0 or "done" not in text:
            raise BenchError(f"{elf.name}: QEMU exit {proc.returncode}\n{text[-2000:]}")
        windows = [int(m.group(1)) for m in
                   re.finditer(r"^insn_window \d+ (\d+)$", log.read_text(), re.M)]
    cases = [(m.group(1), int(m.group(2))) for m in re.finditer(r"^case (\S+) (\d+)$", text,
                                                                 re.M)]
    if len(cases) != len(windows) or not cases or cases[0][0] != "empty":
        raise BenchError(f"{elf.name}: {len(cases)} cases but {len(windows)} windows")
    base = windows[0]
    return [Case(name, macs, w - base) for (name, macs), w in zip(cases, windows, strict=True)][1:]


def measure(build_dir: Path | None = None,
            cmsis_nn_root: Path | None = None) -> dict[str, list[Case]]:
    """Build and run every variant: {'dsp': cases, 'c': cases[, 'cmsis': cases]}."""
    owned = build_dir is None
    d = build_dir if build_dir is not None else Path(tempfile.mkdtemp(prefix="tinyrig-bench-"))
    try:
        paths = build(d, cmsis_nn_root)
        return {variant: run(paths[variant], paths["plugin"])
                for variant in ("dsp", "c", "cmsis") if variant in paths}
    finally:
        if owned:
            shutil.rmtree(d, ignore_errors=True)


def table(results: dict[str, list[Case]]) -> list[dict[str, object]]:
    """One row per shape: ours (DSP, plain C), the plain-C loops, CMSIS-NN (measured live
    when the results hold a 'cmsis' run, else the 99f736a reference) and ours / CMSIS-NN."""
    dsp = {c.name: c for c in results["dsp"]}
    plain = {c.name: c for c in results["c"]}
    live = {c.name: c for c in results.get("cmsis", [])}
    rows = []
    for name, case in dsp.items():
        kind, shape = name.split("/")
        if kind not in ("fc_s8", "conv_s8"):
            continue
        label = f"{'fc' if kind == 'fc_s8' else 'conv'} {shape}"
        ref = "ref_fc" if kind == "fc_s8" else "ref_conv"
        cmsis = live[f"cmsis_{name}"].per_mac if live else CMSIS_NN_REFERENCE.get(label)
        rows.append({
            "shape": label, "macs": case.macs,
            "ours_dsp": case.per_mac,
            "ours_plain_c": plain[name].per_mac,
            "plain_c_int8": dsp[f"{ref}_s8/{shape}"].per_mac,
            "plain_c_f32": dsp[f"ref_fc_f32/{shape}"].per_mac if kind == "fc_s8" else None,
            "cmsis_nn": cmsis,
            "ratio": case.per_mac / cmsis if cmsis else None,
        })
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    ap.add_argument("--build", type=Path, help="build directory (default: a temporary one)")
    ap.add_argument("--cmsis-nn-root", type=Path, default=os.environ.get("CMSIS_NN_ROOT") or None,
                    help="a CMSIS-NN checkout: measure its kernels live (default: "
                         "$CMSIS_NN_ROOT; without it the 99f736a reference figures)")
    args = ap.parse_args()
    root = args.cmsis_nn_root
    if root is not None and not (root / "Include" / "arm_nnfunctions.h").is_file():
        print(f"kernel_instructions: --cmsis-nn-root {root}: no Include/arm_nnfunctions.h",
              file=sys.stderr)
        return 2
    try:
        results = measure(args.build, root)
    except (BenchError, subprocess.TimeoutExpired) as exc:
        print(f"kernel_instructions: {exc}", file=sys.stderr)
        return 2
    rows = table(results)
    cmsis_label = (f"CMSIS-NN {root}, instructions (QEMU, this project's plugin), measured now"
                   if root is not None else CMSIS_NN_REFERENCE_LABEL)

    def f(v: object) -> str:
        return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    head = ("shape", "MACs", "ours DSP", "ours plain C", "plain-C int8", "plain-C f32",
            "CMSIS-NN", "ours/CMSIS")
    print("instructions per MAC (QEMU mps2-an386, Cortex-M4F; exact retired instructions,"
          " TCG plugin; arm-none-eabi-gcc 12.2 -O2)")
    widths = [22, 9, 9, 13, 13, 12, 9, 10]
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in
                    enumerate(zip(head, widths, strict=True))))
    for r in rows:
        vals = [r["shape"], r["macs"], r["ours_dsp"], r["ours_plain_c"], r["plain_c_int8"],
                r["plain_c_f32"], r["cmsis_nn"], r["ratio"]]
        print("  ".join(f(v).rjust(w) if i else f(v).ljust(w) for i, (v, w) in
                        enumerate(zip(vals, widths, strict=True))))
    print("ours DSP / plain C: firmware/kernels (SMLAD path / plain-C path); plain-C int8 /"
          " f32: straightforward loops in firmware/bench/bench_main.c;")
    print(f"CMSIS-NN: {cmsis_label} (arm_fully_connected_s8, arm_convolve_wrapper_s8);"
          f" target: ours/CMSIS <= {TARGET_RATIO}")
    over = [r["shape"] for r in rows
            if isinstance(r["ratio"], float) and r["ratio"] > TARGET_RATIO]
    print(f"shapes above {TARGET_RATIO}: {', '.join(map(str, over)) or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"cmsis_nn": cmsis_label, "rows": rows, "cases": {
            k: [asdict(c) | {"per_mac": c.per_mac} for c in v] for k, v in results.items()}},
            indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LC_ALL", "C")
    sys.exit(main())
