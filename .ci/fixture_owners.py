"""Collect a lab suite with every installed plugin loaded and check, for the first test,
which plugin provides each fixture name: tinyrig's names only from rig.pytest_plugin, and
pytest-embedded's and labgrid's names never from tinyrig. Usage (from the suite's folder):
    python fixture_owners.py [pytest args...]"""

import sys

import pytest

RIG = ("rig_lab", "rig_target", "rig_dut", "rig_golden", "rig_run_spec", "rig_target_name",
       "rig_config_path", "rig_log_dir", "rig_record_property", "train_session")
OTHERS = {"pytest_embedded": ("dut", "target", "app", "serial"),
          "labgrid": ("target", "env", "strategy")}


class Owners:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.checked = 0

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        item = session.items[0]
        manager = session._fixturemanager
        plugins = session.config.pluginmanager
        for plugin in ("tinyrig", *OTHERS):
            if not plugins.has_plugin(plugin):
                self.problems.append(f"plugin {plugin} not loaded")

        def owners(name: str) -> list[str]:
            return [d.func.__module__ for d in manager.getfixturedefs(name, item) or ()]

        for name in RIG:
            self.checked += 1
            if owners(name) != ["rig.pytest_plugin"]:
                self.problems.append(f"{name}: {owners(name)}")
        for plugin, names in OTHERS.items():
            for name in names:
                self.checked += 1
                got = owners(name)
                if not got or any(o.startswith("rig") for o in got) or not any(
                        o.startswith(plugin) for o in got):
                    self.problems.append(f"{name} ({plugin}): {got}")


owners = Owners()
code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *sys.argv[1:]],
                   plugins=[owners])
if code != 0 or owners.problems or not owners.checked:
    print(f"fixture owners: exit {code}, problems {owners.problems}")
    sys.exit(1)
print(f"fixture owners: {owners.checked} names checked with tinyrig, pytest-embedded and "
      "labgrid loaded: no shadowing")
