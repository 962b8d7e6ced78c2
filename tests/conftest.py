"""The project's own tests use the installed tinyrig plugin (entry point `pytest11`) like
any lab repository; `pytester` runs inner suites for tests of the plugin itself.

Unless `--rig-target` says otherwise, every test here that uses a target (the `hil` tests)
runs on every enabled target of lab_config.yaml — the three QEMU machines, the
gdbstub-flashed one, the native build — and skips real boards that are not attached. A
lab's own suite keeps the plugin's default (`auto`: one target)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig.device import Device, Timing
from rig.link.link import Link
from rig.link.transport import PipeTransport

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "rig_target", "unset") is None:
        config.option.rig_target = "all"


@pytest.fixture(scope="session")
def native_build(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`native_build("native")` / `native_build("kernels-native")`: the host build directory
    (`<BUILD>/native`) after `rig.firmware.make_native(goal)`, built once per goal and
    session in a temporary BUILD. Skips without a host compiler or firmware sources; a
    build that fails fails the test."""
    from rig.errors import ToolMissing
    from rig.firmware import FirmwareNotFound, make_native

    built: dict[str, Path] = {}

    def build(goal: str = "native") -> Path:
        if goal not in built:
            try:
                built[goal] = make_native(goal, tmp_path_factory.mktemp(f"build-{goal}"))
            except (ToolMissing, FirmwareNotFound) as exc:
                pytest.skip(f"cannot build {goal}: {exc}")
        return built[goal]

    return build


@pytest.fixture(scope="module")
def native_fw(native_build: Callable[[str], Path]) -> Path:
    """The firmware's core built for this host (a stdio process)."""
    return native_build("native") / "tinyrig_fw"


@pytest.fixture
def dev(native_fw: Path) -> Iterator[Device]:
    """A fresh native firmware process behind a real link (stdin/stdout pipes)."""
    proc = subprocess.Popen([str(native_fw)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    transport = PipeTransport(proc, "native:tinyrig_fw")
    yield Device(Link(transport, timeout=5.0, retries=1), Timing(base=5.0))
    transport.close()
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=5)


# pytest-xdist tells a worker who it is through these variables; an inner pytest that a
# test starts with `pytester` inherits them and would believe it is that worker (the rig
# plugin's per-worker logs and lock holder names, pytest-benchmark's "xdist is active"
# warning). The inner run is a session of its own.
_XDIST_WORKER_ENV = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")


@pytest.fixture(autouse=True)
def _inner_pytest_is_no_xdist_worker(request: pytest.FixtureRequest,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if "pytester" in request.fixturenames:
        for name in _XDIST_WORKER_ENV:
            monkeypatch.delenv(name, raising=False)
