#!/usr/bin/env python3
"""Mutation testing: does the suite notice small deliberate bugs? Not part of CI's run.

Two mutators, each mutant run against the fast tests of the code it changes (host only:
no QEMU) in a private copy of the repository, stopping at the first failing test:

- Python: a small AST mutator over rig/compare.py, rig/golden/strategies.py and
  rig/link/*.py (comparison operators, arithmetic operators, and/or, `not`, integer
  constants +1, True/False). Mutants are sampled round-robin over the files (seeded).
- C: a fixed list of source patches over firmware/src/strategy_*.c, proto.c, mlp.c and mlp_train.c,
  each a plausible bug (off-by-one, a dropped check, a rule changed); the tests build the
  native firmware from the mutated copy.

A mutant is *killed* when the tests fail, *survived* when they pass (a gap in the tests,
or an equivalent mutant: read the diff), *timeout* when they exceed 3x the clean run.

    nice python benchmarks/mutation.py [--budget-s 900] [--python-share 0.4]
                                       [--only python|c] [--seed 0] [--json out.json]

The budget is wall time for the whole pass; mutants not started within it are counted
as not run. Prints one line per mutant and the survivors at the end.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PY_TARGETS: dict[str, list[str]] = {
    "rig/compare.py": ["tests/test_compare.py", "tests/test_compare_verdicts.py"],
    "rig/golden/strategies.py": ["tests/test_golden_strategies.py", "tests/test_strategies.py"],
    "rig/link/cobs.py": ["tests/test_link_cobs.py"],
    "rig/link/frame.py": ["tests/test_link_frame.py", "tests/test_link_link.py"],
    "rig/link/link.py": ["tests/test_link_link.py"],
}

C_STRATEGY_TESTS = ["tests/test_strategies_native.py", "tests/test_rules_decide.py"]
C_PROTO_TESTS = ["tests/test_device_native.py", "tests/test_fw_core_native.py",
                 "tests/test_proto_cache_native.py"]
C_MLP_TESTS = ["tests/test_device_native.py", "tests/test_strategies_native.py",
               "tests/test_rules_decide.py", "tests/test_nak_no_state_change.py", "-k",
               "not test_refused_request_changes_nothing or tinypropv2"]


@dataclass(frozen=True)
class Patch:
    file: str  # under firmware/src
    old: str
    new: str
    what: str


# Plausible firmware bugs; each `old` must occur in the file (the first occurrence changes).
C_PATCHES: list[Patch] = [
    Patch("strategy_common.c", "    uint16_t k = 1;", "    uint16_t k = 0;", "tinyprop k may be 0"),
    Patch("strategy_common.c", "if (k_raw >= (float)n)", "if (k_raw > (float)n)",
          "tinyprop k = N boundary"),
    Patch("strategy_common.c", "k = (uint16_t)floorf(k_raw);", "k = (uint16_t)ceilf(k_raw);",
          "tinyprop k rounds up"),
    Patch("strategy_common.c", "zeta_d = zeta_d * sp[SC_TP_ZETA];", "zeta_d = sp[SC_TP_ZETA];",
          "zeta not raised to the depth"),
    Patch("strategy_common.c", "const float ymax = (y > ref) ? y : ref;",
          "const float ymax = (y < ref) ? y : ref;", "Ymax is a running minimum"),
    Patch("strategy_common.c", "memset(m->bias_mask[layer], 1, n);",
          "memset(m->bias_mask[layer], 0, n);", "tinyprop freezes biases"),
    Patch("strategy_common.c", "return (uint32_t)floorf(budget * (float)total);",
          "return (uint32_t)ceilf(budget * (float)total);", "budget rounds up"),
    Patch("strategy_static.c", "floorf(sp[ST_RATIO] * (float)n + 0.5f)",
          "ceilf(sp[ST_RATIO] * (float)n)", "static rows: ceil"),
    Patch("strategy_static.c", "floorf(sp[ST_RATIO] * (float)n + 0.5f)",
          "floorf(sp[ST_RATIO] * (float)n)", "static rows: floor"),
    Patch("strategy_static.c", "*biases = depth < (uint32_t)sp[ST_BIAS_LAYERS];",
          "*biases = depth <= (uint32_t)sp[ST_BIAS_LAYERS];", "static: one bias layer too many"),
    Patch("strategy_static.c", "if (depth >= (uint32_t)sp[ST_WEIGHT_LAYERS])",
          "if (depth > (uint32_t)sp[ST_WEIGHT_LAYERS])", "static: one weight layer too many"),
    Patch("strategy_static.c", "if (!(sp[ST_RATIO] >= 0.0f && sp[ST_RATIO] <= 1.0f))",
          "if (!(sp[ST_RATIO] >= 0.0f && sp[ST_RATIO] <= 2.0f))", "static: ratio > 1 accepted"),
    Patch("strategy_tinypropv2.c", "if (r < m->ss.sparams[SC_TP_TAU]) {",
          "if (r <= m->ss.sparams[SC_TP_TAU]) {", "tinypropv2 skips at r = tau"),
    Patch("strategy_tinypropv2.c", "if (r < m->ss.sparams[SC_TP_TAU]) {",
          "if (r < 0.5f * m->ss.sparams[SC_TP_TAU]) {", "tinypropv2 skip threshold halved"),
    Patch("strategy_neq.c", "fabsf(v[c]) > eps;", "fabsf(v[c]) >= eps;",
          "neq: |v| = eps stays trainable"),
    Patch("strategy_neq.c", "m->bias_mask[l][j] = on;", "m->bias_mask[l][j] = 1;",
          "neq: frozen neurons keep training their bias"),
    Patch("strategy_neq.c", "if (m->ss.n_select == 0) {", "if (m->ss.n_select <= 1) {",
          "neq: second SELECT still trains everything"),
    Patch("strategy_velocity_budget.c", "m->ss.sparams[VB_MU]", "0.5f",
          "velocity-budget ignores mu"),
    Patch("strategy_random_budget.c", "if (x == 0)", "if (x == 1)",
          "random-budget: xorshift zero guard changed"),
    Patch("mlp.c", "    m->configured = 1;\n    m->lr = lr;",
          "    m->configured = 1;\n    m->lr = lr * 0.5f;", "lr halved"),
    Patch("mlp.c", "            memset(m->mom, 0, y.mom * sizeof(float));",
          "            (void)0;", "TRAIN_CONFIG keeps old momentum buffers"),
    Patch("mlp.c", "if (!f32_finite(momentum) || momentum < 0.0f)",
          "if (momentum < 0.0f)", "NaN momentum accepted"),
    Patch("mlp.c", "    if (n_sp > s->n_sparams)", "    if (n_sp > s->n_sparams + 1)",
          "one sparam too many accepted"),
    Patch("mlp_train.c", "m->dims[l + 1], l + 1 < L,", "m->dims[l + 1], l + 1 <= L,",
          "ReLU on the output layer"),
    Patch("proto.c", "seq == last_seq && type == last_type && crc == last_crc",
          "seq == last_seq && type == last_type", "duplicate detection ignores the CRC"),
    Patch("proto.c", "        last_valid = 0;\n        NAK_RETURN", "        NAK_RETURN",
          "a NAK keeps the duplicate cache"),
    Patch("proto.c", "if (rx_pkt[0] != PROTO_VERSION)", "if (rx_pkt[0] > PROTO_VERSION + 1)",
          "other protocol versions accepted"),
    Patch("proto.c", "if (type != MSG_RESET) {", "if (1) {", "RESET is cached as a duplicate"),
]


@dataclass
class Result:
    kind: str  # python / c
    where: str  # file:line
    what: str
    status: str  # killed / survived / timeout / error
    seconds: float


# ------------------------------------------------------------------ Python AST mutator

_CMP_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_BIN_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv, ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd, ast.BitXor: ast.BitOr, ast.LShift: ast.RShift,
    ast.RShift: ast.LShift}


def _sites(tree: ast.Module) -> Iterator[ast.AST]:
    """Mutable nodes, in a stable order; docstrings, annotations and imports excluded."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, (ast.arg, ast.AnnAssign)) and node.annotation is not None:
            skip.update(id(n) for n in ast.walk(node.annotation))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns:
            skip.update(id(n) for n in ast.walk(node.returns))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        mutable = (
            (isinstance(node, ast.Compare) and type(node.ops[0]) in _CMP_SWAP)
            or (isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BIN_SWAP)
            or isinstance(node, ast.BoolOp)
            or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not))
            or (isinstance(node, ast.Constant) and type(node.value) in (int, bool)))
        if mutable:
            yield node


def _mutate(node: ast.AST) -> ast.AST:
    """A mutated copy of `node` (parents keep referring to the original; see apply)."""
    if isinstance(node, ast.Compare):
        return ast.Compare(node.left, [_CMP_SWAP[type(node.ops[0])](), *node.ops[1:]],
                           node.comparators)
    if isinstance(node, ast.BinOp):
        return ast.BinOp(node.left, _BIN_SWAP[type(node.op)](), node.right)
    if isinstance(node, ast.AugAssign):
        return ast.AugAssign(node.target, _BIN_SWAP[type(node.op)](), node.value)
    if isinstance(node, ast.BoolOp):
        return ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values)
    if isinstance(node, ast.UnaryOp):
        return node.operand
    assert isinstance(node, ast.Constant)
    return ast.Constant(not node.value if isinstance(node.value, bool) else node.value + 1)


class _Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST, new: ast.AST) -> None:
        self.target, self.new = target, new

    def visit(self, node: ast.AST) -> ast.AST:
        if node is self.target:
            return ast.copy_location(self.new, node)
        return super().visit(node)


def python_mutants(rel: str) -> list[tuple[int, str, str]]:
    """(site index, file:line, description) for every mutation site of `rel`."""
    tree = ast.parse((ROOT / rel).read_text())
    out = []
    for i, node in enumerate(_sites(tree)):
        before = ast.unparse(node)
        after = ast.unparse(_mutate(node))
        line = getattr(node, "lineno", 0)
        out.append((i, f"{rel}:{line}", f"{before[:60]} -> {after[:60]}"))
    return out


def apply_python(copy: Path, rel: str, index: int) -> None:
    tree = ast.parse((ROOT / rel).read_text())
    node = list(_sites(tree))[index]
    new = _Replace(node, _mutate(node)).visit(tree)
    ast.fix_missing_locations(new)
    (copy / rel).write_text(ast.unparse(new) + "\n")


# ------------------------------------------------------------------ running


def make_copy(dest: Path) -> Path:
    ignore = shutil.ignore_patterns(".venv", "build", "__pycache__", "*.egg-info", ".git",
                                    "*.pyc", ".mypy_cache", ".ruff_cache")
    for part in ("rig", "tests", "firmware"):
        shutil.copytree(ROOT / part, dest / part, ignore=ignore)
    for name in ("pyproject.toml", "lab_config.yaml"):
        shutil.copy2(ROOT / name, dest / name)
    # The pass runs niced on a loaded machine: no hypothesis deadline (a mutant is killed
    # by a wrong result, not by a slow example).
    with open(dest / "tests" / "conftest.py", "a") as f:
        f.write("\n\nfrom hypothesis import HealthCheck as _HC, settings as _settings\n"
                "_settings.register_profile('mutation', deadline=None,\n"
                "                           suppress_health_check=list(_HC))\n"
                "_settings.load_profile('mutation')\n")
    return dest


def _preload() -> None:
    """Import the heavy third-party modules once; each mutant's test run is a fork of this
    process that imports rig (mutated) from the copy. Saves the interpreter and torch
    start-up per mutant."""
    import hypothesis  # noqa: F401
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import torch  # noqa: F401


def run_tests(copy: Path, tests: list[str], timeout: float) -> tuple[str, float]:
    """Run pytest on `tests` in a forked child rooted at `copy`; killed / survived /
    timeout / error."""
    assert "rig" not in sys.modules, "the parent must not import rig (the child imports it)"
    log = copy.parent / "pytest-output.txt"
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        code = 3
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.nice(10)
            os.chdir(copy)
            sys.path.insert(0, str(copy))
            os.environ["PYTHONPATH"] = str(copy)  # for the tests' own subprocesses
            import pytest
            code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-p", "no:labgrid",
                                    *tests]))
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - t0 > timeout:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - t0
        time.sleep(0.2)
    dt = time.monotonic() - t0
    run_tests.last_output = log.read_text(errors="replace")[-3000:]  # type: ignore[attr-defined]
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return "survived", dt
    if code == 1:
        return "killed", dt
    return f"error (pytest exit {code})", dt


def c_tests(patch: Patch) -> list[str]:
    if patch.file.startswith("strategy_"):
        return C_STRATEGY_TESTS
    return C_PROTO_TESTS if patch.file == "proto.c" else C_MLP_TESTS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget-s", type=float, default=900.0)
    ap.add_argument("--python-share", type=float, default=0.4,
                    help="share of the budget for the Python mutants")
    ap.add_argument("--only", choices=("python", "c"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--skip-clean", action="store_true",
                    help="do not run the unmutated tests first (you just did; a busy "
                         "machine), mutant timeout --timeout-s instead of 3x the clean run")
    ap.add_argument("--timeout-s", type=float, default=400.0)
    ap.add_argument("--c-files", nargs="*", metavar="FILE",
                    help="only the patches of these firmware/src files (e.g. proto.c)")
    args = ap.parse_args(argv)

    t_start = time.monotonic()
    _preload()
    results: list[Result] = []
    not_run = {"python": 0, "c": 0}
    with tempfile.TemporaryDirectory(prefix="tinyrig-mut-") as tmp:
        copy = make_copy(Path(tmp) / "repo")
        phases = [p for p in ("python", "c") if args.only in (None, p)]
        for phase in phases:
            share = (args.python_share if phase == "python" else 1.0) if len(phases) > 1 \
                else 1.0
            remaining = args.budget_s - (time.monotonic() - t_start)
            deadline = time.monotonic() + remaining * share
            if phase == "python":
                queues = {rel: python_mutants(rel) for rel in PY_TARGETS}
                rng = random.Random(args.seed)
                for q in queues.values():
                    rng.shuffle(q)
                order: list[tuple[str, int, str, str]] = []
                while any(queues.values()):
                    for rel, q in queues.items():
                        if q:
                            order.append((rel, *q.pop()))
                groups = {rel: tests for rel, tests in PY_TARGETS.items()}
                clean = {rel: args.timeout_s / 3 for rel in groups}
                for rel, tests in ({} if args.skip_clean else groups).items():
                    status, dt = run_tests(copy, tests, 600)
                    if status != "survived":
                        print(f"clean run of {tests} did not pass ({status}); abort\n"
                              f"{getattr(run_tests, 'last_output', '')}")
                        return 2
                    clean[rel] = dt
                for n, (rel, index, where, what) in enumerate(order):
                    if time.monotonic() + min(clean[rel], 20) > deadline:
                        not_run["python"] = len(order) - n
                        break
                    apply_python(copy, rel, index)
                    try:
                        status, dt = run_tests(copy, groups[rel], 3 * clean[rel] + 10)
                    finally:
                        shutil.copy2(ROOT / rel, copy / rel)
                    results.append(Result("python", where, what, status, dt))
                    print(f"[py {status:8s}] {dt:5.1f}s {where}: {what}", flush=True)
            else:
                src = copy / "firmware" / "src"
                groups_c = (C_STRATEGY_TESTS, C_PROTO_TESTS, C_MLP_TESTS)
                clean_c = {tuple(t): args.timeout_s / 3 for t in groups_c}
                for tests in () if args.skip_clean else groups_c:
                    status, dt = run_tests(copy, tests, 900)
                    if status != "survived":
                        print(f"clean run of {tests} did not pass ({status}); abort\n"
                              f"{getattr(run_tests, 'last_output', '')}")
                        return 2
                    clean_c[tuple(tests)] = dt
                patches = [p for p in C_PATCHES if not args.c_files or p.file in args.c_files]
                for n, patch in enumerate(patches):
                    tests = c_tests(patch)
                    if time.monotonic() + min(clean_c[tuple(tests)], 60) > deadline:
                        not_run["c"] = len(patches) - n
                        break
                    original = (ROOT / "firmware" / "src" / patch.file).read_text()
                    if patch.old not in original:
                        results.append(Result("c", patch.file, patch.what, "stale patch", 0))
                        print(f"[c  stale   ] {patch.file}: {patch.what}: text not found")
                        continue
                    line = original[:original.index(patch.old)].count("\n") + 1
                    (src / patch.file).write_text(original.replace(patch.old, patch.new, 1))
                    try:
                        status, dt = run_tests(copy, tests, 3 * clean_c[tuple(tests)] + 30)
                    finally:
                        (src / patch.file).write_text(original)
                    where = f"firmware/src/{patch.file}:{line}"
                    results.append(Result("c", where, patch.what, status, dt))
                    print(f"[c  {status:8s}] {dt:5.1f}s {where}: {patch.what}", flush=True)

    survivors = [r for r in results if r.status == "survived"]
    for kind in ("python", "c"):
        mine = [r for r in results if r.kind == kind]
        killed = sum(r.status == "killed" for r in mine)
        print(f"{kind}: {len(mine)} mutants run, {killed} killed, "
              f"{sum(r.status == 'survived' for r in mine)} survived, "
              f"{sum(r.status == 'timeout' for r in mine)} timeout, "
              f"{not_run[kind]} not run (budget)")
    if survivors:
        print("survivors:")
        for r in survivors:
            print(f"  {r.kind:6s} {r.where}: {r.what}")
    print(f"wall {time.monotonic() - t_start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"results": [asdict(r) for r in results],
                                         "not_run": not_run}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
