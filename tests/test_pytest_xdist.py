"""The pytest plugin under pytest-xdist (rig/pytest_xdist.py): with `-n 2` and two targets
each target is started by exactly one worker, each worker writes its own traffic log, and
a board held by another process (here: a lock holder next to pytest) is refused or waited
for with the holder named, before any worker opens it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from rig.locks import ResourceLock, read_holder
from rig.pytest_xdist import log_file_name, to_close

pytest.importorskip("xdist")

ROOT = Path(__file__).resolve().parents[1]

RECORDING_TESTS = """
    import json, os
    import pytest

    @pytest.mark.parametrize("i", range(3))
    def test_uses_target(rig_dut, rig_target, i):
        rig_dut.hello()
        with open(os.environ["RIG_XDIST_RECORD"], "a") as f:
            f.write(json.dumps({"worker": os.environ["PYTEST_XDIST_WORKER"],
                                "target": rig_target.name, "pid": rig_target.pid}) + "\\n")
"""


@pytest.mark.slow
@pytest.mark.hil
def test_each_target_is_started_by_exactly_one_worker(pytester: pytest.Pytester,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    record = pytester.path / "record.jsonl"
    logs = pytester.path / "logs"
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # if this suite runs under -n
    monkeypatch.setenv("RIG_XDIST_RECORD", str(record))
    pytester.makepyfile(test_inner=RECORDING_TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:labgrid", "-n", "2",
        "--rig-config", str(ROOT / "lab_config.yaml"), "--rig-target", "qemu,qemu-microbit",
        "--rig-log-dir", str(logs))
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*tinyrig: --dist loadgroup*"])  # -n alone: grouped

    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(rows) == 6
    workers = {t: {r["worker"] for r in rows if r["target"] == t}
               for t in ("qemu", "qemu-microbit")}
    pids = {t: {r["pid"] for r in rows if r["target"] == t} for t in workers}
    assert all(len(w) == 1 for w in workers.values()), workers  # one worker per target
    assert all(len(p) == 1 and None not in p for p in pids.values()), pids  # started once
    assert workers["qemu"] != workers["qemu-microbit"], workers  # in parallel
    # one traffic log per target, written by the worker that owns it
    expected = {f"{t}.{next(iter(w))}.log" for t, w in workers.items()}
    assert {p.name for p in logs.glob("*.log")} == expected


HOLDER = ("import sys, time; from rig.locks import ResourceLock; "
          "lock = ResourceLock(sys.argv[1], owner='serial:bench'); lock.acquire('error'); "
          "print('held', flush=True); time.sleep(120)")

SERIAL_LAB = """\
version: 1
defaults:
  on_busy: {on_busy}
  busy_timeout_s: 1
boards:
  b:
    cpu: cortex-m4f
    clock_hz: 1000000
targets:
  bench:
    kind: serial
    board: b
    port: socket://127.0.0.1:9
    open_timeout_s: 0.5
"""


@pytest.mark.parametrize("on_busy, message", [
    ("error", "port:socket://127.0.0.1:9 is in use by pid {pid} *on_busy: error*"),
    ("wait", "port:socket://127.0.0.1:9 still in use after waiting 1 s, by pid {pid} *"),
])
def test_board_held_next_to_pytest_is_refused_naming_the_holder(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, on_busy: str,
        message: str) -> None:
    """`rig run` (here: a process holding the port's lock) next to `pytest -n 2`: every
    worker's test errors with the holder's pid and command line, none opens the port."""
    monkeypatch.setenv("TINYRIG_LOCK_DIR", str(pytester.path / "locks"))
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    lab = pytester.makefile(".yaml", lab=SERIAL_LAB.format(on_busy=on_busy))
    pytester.makepyfile(test_inner="""
        import pytest

        @pytest.mark.parametrize("i", range(2))
        def test_a(rig_dut, i):
            pass
    """)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "port:socket://127.0.0.1:9",
                               "rig-run-stand-in"], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:labgrid",
                                               "-n", "2", "--rig-config", str(lab),
                                               "--rig-target", "bench")
    finally:
        holder.kill()
        holder.wait()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([f"*BoardBusy: {message.format(pid=holder.pid)}"])
    result.stdout.fnmatch_lines(["*rig-run-stand-in*"])  # the holder's command line
    result.stdout.no_fnmatch_line("*Connection refused*")  # nobody tried to open the port
    if on_busy == "wait":  # said on the terminal while waiting, not only in the report
        result.stderr.fnmatch_lines([f"tinyrig: serial:bench*: waiting for "
                                     f"port:socket://127.0.0.1:9, in use by pid {holder.pid} *"])


def test_an_xdist_worker_names_itself_and_its_pytest_as_holder(tmp_path: Path) -> None:
    """A worker's own command line is execnet's bootstrap: the lock record names the
    worker id and the command line of the process that started it."""
    code = ("from rig.locks import ResourceLock; l = ResourceLock('probe:XDIST1'); "
            "l.acquire(); import sys; sys.stdout.write(l.path.read_text())")
    env = dict(os.environ, TINYRIG_LOCK_DIR=str(tmp_path), PYTEST_XDIST_WORKER="gw7",
               PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    record = json.loads(out.stdout)
    assert record["cmdline"].startswith(f"pytest-xdist worker gw7 of pid {os.getpid()}: ")
    assert "pytest" in record["cmdline"]  # this test process's own command line
    holder = read_holder(ResourceLock("probe:XDIST1", directory=tmp_path).path)
    assert holder is not None and holder.cmdline == record["cmdline"]


def _conn(hardware: bool) -> SimpleNamespace:
    return SimpleNamespace(target=SimpleNamespace(hardware=hardware))


def test_switching_frees_boards_and_keeps_a_bounded_number_of_emulators() -> None:
    started = {"qemu": _conn(False), "nucleo": _conn(True), "qemu-microbit": _conn(False)}
    # a board is closed when the worker moves on; of the emulators the least recently
    # used go first, so that at most `max_started` are started with the new one
    assert to_close(started, "native", max_started=2) == ["nucleo", "qemu"]
    assert to_close(started, "native", max_started=3) == ["nucleo"]
    assert to_close(started, "native", max_started=1) == ["nucleo", "qemu", "qemu-microbit"]
    assert to_close(started, "qemu", max_started=2) == ["nucleo"]
    assert to_close({"qemu": _conn(False)}, "qemu", max_started=1) == []


def test_log_file_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert log_file_name("farm/nucleo") == "farm_nucleo.log"
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    assert log_file_name("qemu") == "qemu.gw3.log"
