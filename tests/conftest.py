"""The project's own tests use the installed tinyrig plugin (entry point `pytest11`) like
any lab repository; `pytester` runs inner suites for tests of the plugin itself.

Unless `--rig-target` says otherwise, every test here that uses a target (the `hil` tests)
runs on every enabled target of lab_config.yaml — the three QEMU machines, the
gdbstub-flashed one, the native build — and skips real boards that are not attached. A
lab's own suite keeps the plugin's default (`auto`: one target)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

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
