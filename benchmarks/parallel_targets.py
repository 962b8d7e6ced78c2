#!/usr/bin/env python3
"""Speed-up of `pytest -n 2` over a serial run of the HIL training suite on two targets.

Runs the same pytest command (default: tests/test_hil_strategies.py, every strategy in
lockstep with the golden model, on `--rig-target qemu,qemu-gdb`) serially and with
`-n 2`, interleaved (S P, P S, S P, … so drift in the machine's load hits both alike),
`--reps` times, each as a fresh subprocess as a user runs it, and prints per repetition
the wall times and serial/parallel, then the speed-up min/median.

    python benchmarks/parallel_targets.py [--reps 3] [--targets qemu,qemu-gdb]
        [--tests tests/test_hil_strategies.py] [-k EXPR] [--json out.json]

Each run must pass (exit 0) and, in parallel, each target must have been opened by
exactly one worker (one `<target>.gwN.log` traffic log per target) — else the figure is
not reported (exit 2). Besides the wall times it splits each run (from its JUnit XML)
into time inside tests (setup + call + teardown, so including each target's boot) and
fixed cost outside them (interpreter, plugin and torch imports, collection, xdist's
worker start), and measures one `import torch` in a fresh interpreter: every worker pays
it, it cannot be shared. The machine's load average and core count are printed with the
figures: on a shared machine the speed-up is only as good as the cores that were free.

`--burn` adds a third run per repetition, `serial+burn`: the serial run while one
busy loop per core runs at nice 19 (it yields to everything else; its CPU is not counted
in the run's). It tests why the speed-up is above 2 on an idle host (docs/profiling.md
"Why -n 2 is more than twice as fast"): uploads to the device are bound by per-byte
wake-ups, which are slow when the (virtual) CPUs are idle; in the parallel run the other
worker keeps them busy, and so do the busy loops.

The default targets are two mps2-an386 machines (one booted with -kernel, one flashed over
the gdbstub), so both workers have the same work and the figure measures the rig, not
the targets: with `--targets qemu,qemu-netduino` the netduino's share is ~1.3x the
mps2's (it streams its samples), which alone bounds the speed-up near 1.75x; the
per-target times in tests are printed for every run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    mode: str  # serial | parallel
    wall_s: float
    exit_code: int
    tests: int
    in_tests_s: float  # the longest worker's (or the one process's) time inside tests
    loadavg_before: float
    loadavg_after: float
    cpu_s: float  # user + system CPU of the whole run (pytest, workers, emulators)
    per_target_s: dict[str, float] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)

    @property
    def outside_s(self) -> float:
        return self.wall_s - self.in_tests_s


def _junit_times(path: Path, targets: list[str]) -> tuple[int, dict[str, float]]:
    """(number of test cases, seconds inside tests per target). A test's target is the
    first or last part of its parameter id (`test_x[qemu-netduino-tinyprop]`)."""
    root = ET.parse(path).getroot()
    cases = list(root.iter("testcase"))
    per: dict[str, float] = {}
    for case in cases:
        name = case.get("name", "")
        group = next((t for t in sorted(targets, key=len, reverse=True)
                      if f"[{t}-" in name or name.endswith((f"-{t}]", f"[{t}]"))), "-")
        per[group] = per.get(group, 0.0) + float(case.get("time", "0"))
    return len(cases), per


def run_once(mode: str, args: argparse.Namespace, workdir: Path, index: int,
             targets: list[str]) -> Run:
    logs = workdir / f"logs-{mode}-{index}"
    junit = workdir / f"junit-{mode}-{index}.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:labgrid",
           *args.tests, "--rig-target", args.targets, "--rig-log-dir", str(logs),
           "--junitxml", str(junit)]
    if args.k:
        cmd += ["-k", args.k]
    if mode == "parallel":
        cmd += ["-n", str(args.workers)]  # the plugin makes it --dist loadgroup
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                preexec_fn=lambda: os.nice(19))
               for _ in range(os.cpu_count() or 1)] if mode == "serial+burn" else []
    try:
        load0 = os.getloadavg()[0]
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for descendants too
    finally:  # the busy loops are waited for after ru1: their CPU is not the run's
        for b in burners:
            b.kill()
            b.wait()
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    load1 = os.getloadavg()[0]
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
    tests, per_group = _junit_times(junit, targets) if junit.exists() else (0, {})
    in_tests = (max(per_group.values(), default=0.0) if mode == "parallel"
                else sum(per_group.values()))  # serial and serial+burn: one process
    return Run(mode, wall, proc.returncode, tests, in_tests, load0, load1, cpu, per_group,
               sorted(p.name for p in logs.glob("*.log")))


def owners_ok(run: Run, targets: list[str]) -> str | None:
    """None if each target has exactly one traffic log of one worker, else why not."""
    for t in targets:
        mine = [name for name in run.logs if name.startswith(f"{t}.")
                and name.count(".") == 2 and name.split(".")[1].startswith("gw")]
        if len(mine) != 1:
            return f"target {t}: traffic logs {mine or 'none'} (expected one worker's)"
    return None


def torch_import_s() -> float:
    code = "import time; t = time.perf_counter(); import torch; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip())


def _autogroup() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def startup_cost(args: argparse.Namespace) -> tuple[float, float]:
    """(wall s, CPU s) of one pytest process starting and collecting the suite (plugins,
    test modules, torch): what the serial run pays once and each worker pays again."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:labgrid",
           *args.tests, "--rig-target", args.targets, "--collect-only"]
    if args.k:
        cmd += ["-k", args.k]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--targets", default="qemu,qemu-gdb")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tests", nargs="+", default=["tests/test_hil_strategies.py"])
    ap.add_argument("-k", default=None, help="pytest -k expression (a subset)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--burn", action="store_true",
                    help="also run serially next to one nice-19 busy loop per core")
    args = ap.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]

    print(f"host: {os.cpu_count()} cores; load average now "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    torch_s = torch_import_s()
    print(f"import torch in a fresh interpreter: {torch_s:.2f} s (paid by every worker)")
    start_wall, start_cpu = startup_cost(args)
    print(f"pytest start-up + collection (plugins, test modules, torch): {start_wall:.1f} s "
          f"wall, {start_cpu:.1f} s CPU per process (serial: once; -n 2: each worker)")
    runs: list[Run] = []
    pairs: list[tuple[Run, Run]] = []
    with tempfile.TemporaryDirectory(prefix="parallel-targets-") as tmp:
        for rep in range(args.reps):
            order: tuple[str, ...] = (("serial", "parallel") if rep % 2 == 0
                                      else ("parallel", "serial"))
            if args.burn:
                order = (*order, "serial+burn") if rep % 2 == 0 else ("serial+burn", *order)
            done: dict[str, Run] = {}
            for mode in order:
                run = run_once(mode, args, Path(tmp), rep, targets)
                done[mode] = run
                runs.append(run)
                print(f"rep {rep + 1} {mode:11s}: {run.wall_s:7.1f} s wall, "
                      f"{run.in_tests_s:7.1f} s in tests"
                      f"{' (longest worker)' if mode == 'parallel' else ''}, "
                      f"{run.outside_s:5.1f} s outside, CPU {run.cpu_s:6.1f} s "
                      f"({run.cpu_s / run.wall_s:.2f} cores), {run.tests} tests ("
                      + ", ".join(f"{t} {v:.1f} s" for t, v in run.per_target_s.items())
                      + "), "
                      f"exit {run.exit_code}, load {run.loadavg_before:.1f}->"
                      f"{run.loadavg_after:.1f}", flush=True)
                if run.exit_code != 0:
                    print(f"error: the {mode} run failed (exit {run.exit_code}); no figure",
                          file=sys.stderr)
                    return 2
                if mode == "parallel" and (why := owners_ok(run, targets)):
                    print(f"error: {why}; no figure", file=sys.stderr)
                    return 2
            pairs.append((done["serial"], done["parallel"]))
            s, p = pairs[-1]
            print(f"rep {rep + 1} speed-up (serial / -n {args.workers}): "
                  f"{s.wall_s / p.wall_s:.2f}x", flush=True)
            if args.burn:
                b = done["serial+burn"]
                print(f"rep {rep + 1} serial+burn / serial: wall {b.wall_s / s.wall_s:.2f}, "
                      f"in tests {b.in_tests_s / s.in_tests_s:.2f}", flush=True)
    speedups = [s.wall_s / p.wall_s for s, p in pairs]
    print(f"speed-up of -n {args.workers} over serial, {len(targets)} targets "
          f"({args.targets}), {len(pairs)} interleaved repetitions: min "
          f"{min(speedups):.2f}x, median {statistics.median(speedups):.2f}x "
          f"(wall time; {os.cpu_count()} cores, load average "
          f"{statistics.mean(r.loadavg_before for r in runs):.1f} during the runs)")
    cores = os.cpu_count() or 1
    load = statistics.mean(r.loadavg_before for r in runs)
    if load > cores and _autogroup():
        print(f"note: the host was loaded (load {load:.1f} on {cores} cores) and the kernel "
              "shares the CPU per session (sched_autogroup): a run gets about one session's "
              "share however many processes it has, so the wall speed-up here is bounded "
              "by that share (compare the 'cores' figures of the two modes), not by the "
              "rig. On an idle host the parallel run has both cores.")
    if args.json:
        args.json.write_text(json.dumps({
            "targets": targets, "workers": args.workers, "torch_import_s": torch_s,
            "startup_wall_s": start_wall, "startup_cpu_s": start_cpu,
            "speedups": speedups, "runs": [asdict(r) | {"outside_s": r.outside_s}
                                           for r in runs]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
