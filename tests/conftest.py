"""The project's own tests use the installed tinyrig plugin (entry point `pytest11`) like
any lab repository; `pytester` runs inner suites for tests of the plugin itself.

Unless `--target` says otherwise, every test here that uses a target (the `hil` tests)
runs on every enabled target of lab_config.yaml — the three QEMU machines, the
gdbstub-flashed one, the native build — and skips real boards that are not attached. A
lab's own suite keeps the plugin's default (`auto`: one target)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "target", "unset") is None:
        config.option.target = "all"
