"""Cross-process board locks (rig/locks.py): two processes asking for the same board never
both open it; a held board is waited for or refused with the holder named, per the lab's
`defaults.on_busy`; a dead holder's lock is free at once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.config import parse_config
from rig.errors import BoardBusy
from rig.locks import ResourceLock, held_resources, port_resource, read_holder
from rig.targets import build_target

ROOT = Path(__file__).resolve().parents[1]

LAB = """\
version: 1
defaults:
  on_busy: {on_busy}
  busy_timeout_s: 20
boards:
  b:
    cpu: cortex-m4f
    clock_hz: 1000000
targets:
  bench:
    kind: serial
    board: b
    port: socket://127.0.0.1:{port}
"""

# One process: open the target, say when (monotonic clock is system-wide on Linux),
# hold it, close it.
CLIENT = textwrap.dedent("""
    import json, sys, time
    from rig.config import load_config
    from rig.errors import BoardBusy
    from rig.targets import build_target
    lab = load_config(sys.argv[1])
    t = build_target(lab, "bench")
    try:
        t.start()
    except BoardBusy as exc:
        print(json.dumps({"busy": str(exc)}), flush=True)
        sys.exit(3)
    t0 = time.monotonic()
    time.sleep(float(sys.argv[2]))
    t1 = time.monotonic()
    t.close()
    print(json.dumps({"open": [t0, t1]}), flush=True)
""")


@pytest.fixture
def lock_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("TINYRIG_LOCK_DIR", str(tmp_path / "locks"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def board_port() -> Iterator[int]:
    """A TCP 'board' that accepts any number of connections (so only the lock can keep a
    second client out)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue
    th = threading.Thread(target=accept, daemon=True)
    th.start()
    yield srv.getsockname()[1]
    stop.set()
    th.join()
    for c in conns:
        c.close()
    srv.close()


def _lab(tmp_path: Path, port: int, on_busy: str) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.format(port=port, on_busy=on_busy))
    return path


def _clients(lab: Path, env: dict[str, str], hold_s: float) -> list[tuple[int, dict]]:
    procs = [subprocess.Popen([sys.executable, "-c", CLIENT, str(lab), str(hold_s)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                              text=True) for _ in range(2)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=60)
        assert stdout.strip(), stderr
        out.append((p.returncode, json.loads(stdout.strip().splitlines()[-1])))
    return out


def test_two_processes_never_both_open_the_board_wait(tmp_path: Path, lock_env: dict[str, str],
                                                      board_port: int) -> None:
    results = _clients(_lab(tmp_path, board_port, "wait"), lock_env, hold_s=0.8)
    assert [rc for rc, _ in results] == [0, 0]
    (a0, a1), (b0, b1) = sorted(r["open"] for _, r in results)
    assert a1 <= b0, f"both held the board at once: {a0}-{a1} and {b0}-{b1}"


def test_second_process_is_refused_with_the_holder_named(tmp_path: Path,
                                                         lock_env: dict[str, str],
                                                         board_port: int) -> None:
    results = _clients(_lab(tmp_path, board_port, "error"), lock_env, hold_s=3.0)
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 3]
    refused = next(r["busy"] for rc, r in results if rc == 3)
    assert f"port:socket://127.0.0.1:{board_port}" in refused
    assert "pid " in refused and "-c" in refused  # the holder's pid and command line
    assert "on_busy: error" in refused


def test_killed_holder_releases_the_lock(tmp_path: Path, lock_env: dict[str, str]) -> None:
    code = ("import sys, time; from rig.locks import ResourceLock; "
            "l = ResourceLock('probe:TEST1'); l.acquire(); print('held', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            env=lock_env, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        lock = ResourceLock("probe:TEST1")
        with pytest.raises(BoardBusy, match=rf"pid {proc.pid} "):
            lock.acquire("error")
        assert [r for r, _ in held_resources()] == ["probe:TEST1"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        t0 = time.monotonic()
        lock.acquire("wait", timeout_s=5)
        assert time.monotonic() - t0 < 1.0
        holder = read_holder(lock.path)
        assert holder is not None and holder.pid == os.getpid()
        lock.release()
        assert held_resources() == []
    finally:
        proc.kill()
        proc.wait()


def test_wait_gives_up_after_the_timeout_naming_the_holder(lock_env: dict[str, str]) -> None:
    code = ("import time; from rig.locks import ResourceLock; "
            "l = ResourceLock('port:/dev/ttyTEST', owner='pyocd:nucleo'); l.acquire(); "
            "print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            env=lock_env, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        said: list[str] = []
        with pytest.raises(BoardBusy, match=r"still in use after waiting 0.3 s.*pyocd:nucleo"):
            ResourceLock("port:/dev/ttyTEST").acquire("wait", timeout_s=0.3,
                                                      waiting=said.append)
        assert len(said) == 1 and f"pid {proc.pid}" in said[0]
    finally:
        proc.kill()
        proc.wait()


def test_same_process_conflict_is_reported_not_waited_for(tmp_path: Path,
                                                          lock_env: dict[str, str],
                                                          board_port: int) -> None:
    lab = parse_config(_lab(tmp_path, board_port, "wait").read_text(), tmp_path / "lab.yaml")
    first, second = build_target(lab, "bench"), build_target(lab, "bench")
    first.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(BoardBusy, match="already held by this process"):
            second.start()
        assert time.monotonic() - t0 < 1.0
    finally:
        first.close()
    second.start()  # free again after close
    second.close()


def test_port_resource_names() -> None:
    assert port_resource("rfc2217://Host:4001?ign_set_control") == "port:rfc2217://host:4001"
    assert port_resource("/dev/../dev/null") == "port:/dev/null"
