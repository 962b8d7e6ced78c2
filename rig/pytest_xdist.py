"""The pytest plugin under pytest-xdist: one worker owns a target for the whole session.

- Every test that uses a target gets an `xdist_group` mark named after the target it will
  run on (the *resolved* target, so `auto` and `qemu` that pick the same machine are one
  group). With `--dist loadgroup` xdist sends a group to one worker, so each target is
  started by exactly one worker and a board is never asked for by two workers at once.
- `-n N` alone means xdist's `--dist load`, which would spread a target's tests over all
  workers (each booting its own copy, or queueing on a board's lock): the plugin turns an
  implicit `load` into `loadgroup` and says so in the header; an explicit other `--dist`
  is kept, with a warning.
- Each worker writes its own traffic log, `<target>.<worker>.log` (`<target>.log` without
  xdist), so a failure's traffic tail shows only frames of the worker that ran the test.
- A worker keeps up to `MAX_STARTED_TARGETS` emulated targets started (an idle QEMU guest
  waits in WFI and costs no host core, but memory); a board (probe/port lock, labgrid place)
  is closed as soon as the worker switches away, so another process can have it.

The cross-process board locks themselves are `rig.locks` (taken by the targets' start).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import warnings
from collections.abc import Mapping
from typing import Any

import pytest

import rig.locks
from rig.errors import RigError

# The plugin's names (rig.pytest_plugin), in one place here.
TARGET_OPTION = "--rig-target"
LAB_OPTION = "--rig-config"
TARGET_PARAM = "rig_target_name"  # the fixture / indirect parameter that selects the target
TARGET_MARKER = "rig_target"

#: started targets a worker keeps (least recently used closed first): emulators only
MAX_STARTED_TARGETS = 2

WORKER_ENV = "PYTEST_XDIST_WORKER"
_DIST_KEY = "tinyrig_dist"  # the controller's --dist, in each worker's workerinput


def worker_id() -> str | None:
    """This process's xdist worker id (`gw0`, …), None outside xdist workers."""
    return os.environ.get(WORKER_ENV) or None


def log_file_name(selector: str) -> str:
    """A target's traffic log file name for this process: one file per worker."""
    safe = selector.replace("/", "_")
    worker = worker_id()
    return f"{safe}.{worker}.log" if worker else f"{safe}.log"


def to_close(started: Mapping[str, Any], selector: str,
             max_started: int = MAX_STARTED_TARGETS) -> list[str]:
    """The started targets (selector -> Connection, least recently used first) to close
    before `selector` starts: every board (it holds a probe/port lock or a labgrid place
    another process may wait for) and the oldest emulators beyond `max_started`."""
    others = [s for s in started if s != selector]
    boards = [s for s in others if getattr(started[s].target, "hardware", True)]
    emulated = [s for s in others if s not in boards]
    excess = len(emulated) - max(max_started - 1, 0)
    return boards + emulated[:max(excess, 0)]


# ------------------------------------------------------------------ dist mode


def _explicit_dist(config: pytest.Config) -> bool:
    """Did the user choose a --dist mode (command line, PYTEST_ADDOPTS, ini addopts)?"""
    args = [*config.invocation_params.args,
            *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    with contextlib.suppress(ValueError, KeyError):
        args += list(config.getini("addopts"))
    return any(a in ("--dist", "-d", "--distload") or a.startswith("--dist=") for a in args)


class XdistSupport:
    """Registered by the tinyrig plugin when pytest-xdist is installed."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.note: str | None = None
        self._groups: dict[str, str] = {}

    # --- controller: choose loadgroup ---------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None:
            # A worker parses the original command line (no --dist there): the
            # controller's choice comes with the worker's input.
            if workerinput.get(_DIST_KEY) == "loadgroup":
                config.option.loadgroup = True
            return
        if not config.getoption("tx", None):
            return
        dist = config.getoption("dist", "no")
        if dist == "load" and not _explicit_dist(config):
            config.option.dist = "loadgroup"
            self.note = ("tinyrig: --dist loadgroup (tests grouped by target: one worker "
                         "owns each target)")
        elif dist not in ("loadgroup", "no"):
            warnings.warn(pytest.PytestWarning(
                f"tinyrig: --dist {dist} may run one target's tests on several workers "
                "(each starts its own copy; a board waits for the other worker's lock); "
                "use --dist loadgroup"), stacklevel=1)

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        return self.note

    def pytest_configure_node(self, node: Any) -> None:  # xdist hook, on the controller
        node.workerinput[_DIST_KEY] = self.config.getoption("dist", "no")

    # --- every process that collects: group marks -----------------------------------

    @pytest.hookimpl(tryfirst=True)  # before xdist's worker turns marks into node ids
    def pytest_collection_modifyitems(self, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        for item in items:
            if TARGET_PARAM not in getattr(item, "fixturenames", ()):
                continue
            if item.get_closest_marker("xdist_group") is not None:
                continue  # the test groups itself
            item.add_marker(pytest.mark.xdist_group(self.group(self.selector(item))))

    def selector(self, item: pytest.Item) -> str:
        """The target selector the `target_name` fixture will give this test (marker >
        parametrization > --target > the lab's default)."""
        marker = item.get_closest_marker(TARGET_MARKER)
        if marker is not None and marker.args:
            return str(marker.args[0])
        callspec = getattr(item, "callspec", None)
        if callspec is not None and TARGET_PARAM in callspec.params:
            return str(callspec.params[TARGET_PARAM])
        chosen = self.config.getoption(TARGET_OPTION, None)
        if chosen and chosen != "all" and "," not in chosen:
            return str(chosen)
        return "@default"

    def group(self, selector: str) -> str:
        """The group of a selector: the name of the target it resolves to (once per
        selector; a selector that cannot be resolved is its own group)."""
        if selector not in self._groups:
            self._groups[selector] = self._resolve(selector)
        return self._groups[selector]

    def _resolve(self, selector: str) -> str:
        from rig.config import load_config
        from rig.targets import resolve_target

        try:
            lab = load_config(self.config.getoption(LAB_OPTION, None))
            choice = lab.defaults.target if selector == "@default" else selector
            if choice in lab.targets:
                return choice
            return resolve_target(lab, choice).name
        except (RigError, OSError):
            return selector


class LockMessages:
    """While pytest runs, "waiting for <board>, in use by <holder>" (rig.locks) goes to the
    terminal past the output capture (a worker's stderr is the terminal too), not into
    the report of a test that seems to hang."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.previous = rig.locks.say
        rig.locks.say = self.say

    def say(self, line: str) -> None:
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        if capman is None:
            self.previous(line)
            return
        with capman.global_and_fixture_disabled():
            self.previous(line)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        rig.locks.say = self.previous


def register(config: pytest.Config) -> None:
    """Called from the plugin's pytest_configure: lock messages past the capture, and the
    xdist support if xdist is installed (the marks and options it uses exist only then)."""
    config.pluginmanager.register(LockMessages(config), "tinyrig-lock-messages")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistSupport(config), "tinyrig-xdist")


__all__: list[str] = ["MAX_STARTED_TARGETS", "LockMessages", "XdistSupport", "log_file_name",
                      "register", "to_close", "worker_id"]
