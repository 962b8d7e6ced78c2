"""A lab's suite on tinyrig's pytest plugin, run where pytest-embedded and labgrid are
installed too (CI: .ci/packaging.sh). Run it with

    python3 -m pytest --strict-markers -m hil --rig-config lab_config.yaml --rig-target qemu

Note: pytest-embedded and labgrid do not run tests together (pytest-embedded's autouse
fixtures ask for `target`, which labgrid's fixture of that name then provides and skips
without `--lg-env`); CI runs this suite with each of them next to tinyrig (`-p no:` the
other) and collects it with all three loaded.
"""

import pytest

from rig.pytest_plugin import CONFIG_OPTION, TARGET_OPTION

#: every fixture tinyrig documents; each must come from tinyrig's plugin, and only from it
RIG_FIXTURES = ("rig_lab", "rig_target", "rig_dut", "rig_golden", "rig_run_spec",
                "rig_target_name", "rig_config_path", "rig_log_dir", "rig_record_property",
                "train_session")
#: fixture names of the plugins labs already run, by plugin (pytest11 entry point name)
OTHERS = {"pytest_embedded": ("dut", "target", "app", "serial"),
          "labgrid": ("target", "env", "strategy")}


def fixture_owners(request: pytest.FixtureRequest, name: str) -> list[str]:
    """The modules defining fixture `name` as this test sees it (last one wins)."""
    defs = request._fixturemanager.getfixturedefs(name, request.node) or ()
    return [d.func.__module__ for d in defs]


@pytest.mark.hil
def test_fixture_and_option_owners(request: pytest.FixtureRequest) -> None:
    for name in RIG_FIXTURES:
        assert fixture_owners(request, name) == ["rig.pytest_plugin"], name
    plugins = request.config.pluginmanager
    assert plugins.has_plugin("tinyrig")
    loaded = [p for p in OTHERS if plugins.has_plugin(p)]
    for plugin in loaded:
        for name in OTHERS[plugin]:
            owners = fixture_owners(request, name)
            assert owners and not any(o.startswith("rig") for o in owners), (name, owners)
            assert any(o.startswith(plugin) for o in owners), (name, owners)
    # each plugin's options parsed side by side: ours, pytest-embedded's --target, labgrid's
    assert request.config.getoption(TARGET_OPTION) == "qemu"
    assert request.config.getoption(CONFIG_OPTION) == "lab_config.yaml"
    if "pytest_embedded" in loaded:
        request.config.getoption("--target")
    if "labgrid" in loaded:
        request.config.getoption("--lg-env")


@pytest.mark.hil
def test_firmware_identity(rig_dut, rig_target) -> None:
    assert rig_dut.hello().build_hash == rig_target.expected_firmware().source_hash


@pytest.mark.hil
def test_catalogue_board_from_the_package(rig_lab) -> None:
    assert "site-packages" in rig_lab.board("mps2-an386").source


@pytest.mark.hil
def test_tinyprop_matches_golden(train_session) -> None:
    report = train_session(strategy="tinyprop", train_samples=64, test_samples=32,
                           epochs=1).run()
    assert report.ok, report.failures


def test_not_selected_by_hil() -> None:
    """Deselected by -m hil: the marker filter really filters."""
    raise AssertionError("ran without the hil marker")
