#!/usr/bin/env python3
"""The default job through a noisy link: same final parameters, bounded slowdown.

Runs the lab's default job (`rig run` with no arguments: its target and `training:`
section) several times on fresh targets, each through `rig.link.faults.FaultyTransport`:

- clean: the same wrapper with no faults (so every run pays the same wrapper overhead);
- one run per `--rates` value r: faults in both directions with probability r per byte
  (flip r/2, drop r/4, dup r/4), plus rare stalls (delay r/100 of 20 ms);
- stress runs at a higher rate (`--stress-rate`, with 30 retries per request instead of
  the lab's) and other seeds until `--min-faults` faults were injected over all runs:
  they only add faults to the tally (their time is reported but not bounded);
- an untimed clean warm-up first (one-time costs), and clean again at the end: the
  reference time is the faster of the two timed clean runs (conservative ratios).

For every run it prints the wall time of the job (prepare + train + final reads, without
starting the target) and its ratio to the clean run's, the faults injected and what the
link did about them (fast retransmits, timeouts, frame size), and checks:

- the final parameters (PARAM_READ of every tensor) are bit-identical to the clean run's,
  and the run's own verdict against the golden model is ok;
- silent faults = 0: the transport's audit decodes both directions as sent and as
  delivered; a delivered frame with a valid CRC that was never sent would be one.

Targets (done when): ratio <= 2 at 1e-4, <= 4 at 1e-3, >= 10,000 faults over all runs,
0 silent. Exit status 0 when all hold, 1 otherwise, 2 on a rig error.

    python benchmarks/noisy_link.py [--target qemu] [--rates 1e-4,1e-3] [--min-faults N]
        [--epochs N --train-samples N]   (a reduced job; printed as such)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from rig.config import load_config
from rig.errors import RigError
from rig.fit import fit_spec
from rig.link.faults import FaultCounts, FaultSpec, FaultyTransport
from rig.link.policy import LinkPolicy
from rig.session import RunSpec, TrainingSession
from rig.targets import resolve_target

LIMITS = {1e-4: 2.0, 1e-3: 4.0}  # slowdown allowed at these per-byte error rates


@dataclass
class Outcome:
    label: str
    rate: float
    wall_s: float
    params: list[tuple[np.ndarray, np.ndarray]]
    ok: bool
    faults: FaultCounts
    link: dict[str, Any]
    frame: str


def spec_for(rate: float, seed: int) -> FaultSpec:
    if rate == 0:
        return FaultSpec(seed=seed)
    return FaultSpec(flip=rate / 2, drop=rate / 4, dup=rate / 4, delay=rate / 100,
                     stall=0.02, seed=seed)


def run_once(lab_path: str | None, target_name: str | None, label: str, rate: float,
             seed: int, overrides: dict[str, int], retries: int | None = None) -> Outcome:
    from rig.connection import connect  # noqa: PLC0415  (after argument parsing)

    lab = load_config(lab_path)
    target = resolve_target(lab, target_name)
    faults = spec_for(rate, seed)
    conn = connect(target, timeout=lab.defaults.timeout_s,
                   policy=LinkPolicy(retries=retries or lab.defaults.retries,
                                     run_retries=None if retries else LinkPolicy.run_retries))
    try:
        # Same wrapper for every run (clean: no faults), so only the faults differ.
        transport = FaultyTransport(conn.device.link.transport, faults, audit=True)
        conn.device.link.transport = transport
        board = getattr(target, "board", None)
        spec, _ = fit_spec(RunSpec(**{f.name: getattr(lab.training, f.name)
                                      for f in dataclasses.fields(lab.training)}),
                           conn.hello, getattr(board, "training", None), overrides)
        t0 = time.perf_counter()
        session = TrainingSession(conn.device, spec)
        session.prepare()
        report = session.run()
        params = conn.device.read_model()
        wall = time.perf_counter() - t0
        link = conn.device.link
        return Outcome(label, rate, wall, params, report.ok, transport.counts,
                       link.stats.as_dict(),
                       f"{link.sizer.current} B now, {link.sizer.shrinks} shrinks,"
                       f" {link.sizer.grows} grows")
    finally:
        conn.close()


def same_params(a: list[tuple[np.ndarray, np.ndarray]],
                b: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    return len(a) == len(b) and all(
        wa.tobytes() == wb.tobytes() and ba.tobytes() == bb.tobytes()
        for (wa, ba), (wb, bb) in zip(a, b, strict=True))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", help="lab_config.yaml")
    ap.add_argument("--target", help="target (default: the lab's default)")
    ap.add_argument("--rates", default="1e-4,1e-3", help="per-byte error rates, comma-separated")
    ap.add_argument("--min-faults", type=int, default=10_000,
                    help="stress runs until this many faults were injected (default 10000)")
    ap.add_argument("--max-stress", type=int, default=30, help="at most this many stress runs")
    ap.add_argument("--stress-rate", type=float, default=5e-3)
    ap.add_argument("--epochs", type=int, help="reduced job: epochs")
    ap.add_argument("--train-samples", type=int, help="reduced job: training samples")
    ap.add_argument("--seed", type=int, default=1, help="first fault seed")
    args = ap.parse_args(argv)
    try:
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        print(f"--rates: not a list of numbers: {args.rates!r}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("epochs", args.epochs),
                                   ("train_samples", args.train_samples)) if v is not None}
    job = "the default job" if not overrides else "a REDUCED job (" + ", ".join(
        f"{k}={v}" for k, v in overrides.items()) + ")"
    print(f"noisy link benchmark: {job}; fault mix per byte at rate r: flip r/2, drop r/4,"
          f" dup r/4, delay r/100 (20 ms), both directions")
    outcomes: list[Outcome] = []

    def run(label: str, rate: float, seed: int, retries: int | None = None) -> None:
        out = run_once(args.config, args.target, label, rate, seed, overrides, retries)
        outcomes.append(out)
        print(f"  {label}: {out.wall_s:.2f} s, verdict {'ok' if out.ok else 'FAILED'},"
              f" {out.faults.summary()}", flush=True)

    try:
        # One-time costs (imports, data set, torch) must not inflate the reference.
        warm = run_once(args.config, args.target, "warm-up", 0.0, 0, overrides)
        print(f"  warm-up (untimed clean run): {warm.wall_s:.2f} s", flush=True)
        run("clean", 0.0, 0)
        for i, r in enumerate(rates):
            run(f"r={r:g}", r, args.seed + i)
        for i in range(args.max_stress):
            if sum(o.faults.total for o in outcomes) >= args.min_faults:
                break
            run(f"stress {i + 1} r={args.stress_rate:g}", args.stress_rate,
                100 + args.seed + i, retries=30)
        run("clean again", 0.0, 0)
    except RigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    clean = min((o for o in outcomes if o.rate == 0), key=lambda o: o.wall_s)
    print(f"\nreference: the faster clean run, {clean.wall_s:.2f} s")
    print(f"\n{'run':<22} {'wall s':>7} {'ratio':>6} {'limit':>6} {'faults':>7}"
          f" {'silent':>6} {'retx':>5} {'fast':>5} {'t/o':>4} {'dec.err':>7} {'params':>9}"
          "  frame size")
    failures: list[str] = []
    total_faults = silent = 0
    for out in outcomes:
        ratio = out.wall_s / clean.wall_s
        limit = LIMITS.get(out.rate)
        identical = same_params(out.params, clean.params)
        total_faults += out.faults.total
        silent += out.faults.silent
        s = out.link
        print(f"{out.label:<22} {out.wall_s:>7.2f} {ratio:>6.2f} "
              f"{(f'{limit:g}' if limit else '-'):>6} {out.faults.total:>7}"
              f" {out.faults.silent:>6} {s['retransmits']:>5} {s['fast_retransmits']:>5}"
              f" {s['timeouts']:>4} {s['decode_errors']:>7}"
              f" {'identical' if identical else 'DIFFER':>9}  {out.frame}")
        if not identical:
            failures.append(f"{out.label}: final parameters differ from the clean run")
        if not out.ok:
            failures.append(f"{out.label}: the run disagreed with the golden model")
        if limit is not None and ratio > limit:
            failures.append(f"{out.label}: {ratio:.2f}x the clean wall time (limit {limit:g}x)")
    recovered = sum(int(o.link["retransmits"]) for o in outcomes)
    print(f"\nfaults injected over all runs: {total_faults} (tx+rx); silent: {silent};"
          f" requests resent to recover: {recovered}; every run finished with the clean"
          f" run's parameters: {'yes' if not any('differ' in f for f in failures) else 'NO'}")
    if total_faults < args.min_faults:
        failures.append(f"only {total_faults} faults injected (target >= {args.min_faults})")
    if silent:
        failures.append(f"{silent} silent faults")
    for f in failures:
        print(f"FAIL: {f}")
    print("PASS" if not failures else "FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
