"""The pytest plugin (`rig.pytest_plugin`) on inner suites: how it treats a target that cannot
be used (decided once per selector, then answered at once for every later test)."""

from __future__ import annotations

import pytest

LAB = """\
version: 1
boards:
  b:
    cpu: cortex-m4f
    clock_hz: 25000000
targets:
  gone:          # nothing listens on the discard port: the start fails
    kind: serial
    board: b
    port: socket://127.0.0.1:9
    open_timeout_s: 0.5
  unplugged:     # the device node does not exist: unavailable when resolved
    kind: serial
    board: b
    port: /dev/tinyrig-no-such-tty
"""

THREE_TESTS = """
    def test_a(rig_dut):
        pass

    def test_b(rig_dut):
        pass

    def test_c(rig_dut):
        pass
"""


def _setup_reports(result: pytest.RunResult) -> dict[str, pytest.TestReport]:
    return {r.nodeid.rsplit("::", 1)[-1]: r
            for r in result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
            if r.when == "setup"}


def test_first_start_failure_is_cached_and_reraised_at_once(pytester: pytest.Pytester) -> None:
    lab = pytester.makefile(".yaml", lab=LAB)
    pytester.makepyfile(test_pool=THREE_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--rig-config", str(lab),
                                          "--rig-target", "gone")
    result.assert_outcomes(errors=3)
    setup = _setup_reports(result)
    assert setup["test_a"].duration >= 0.4  # really tried: the port's open timeout
    assert setup["test_b"].duration < 0.1 and setup["test_c"].duration < 0.1
    for name in ("test_b", "test_c"):
        text = setup[name].longreprtext
        assert "TargetStartFailed" in text
        assert "(first failure in test_pool.py::test_a)" in text
    first = setup["test_a"].longreprtext.splitlines()
    message = next(line for line in first if line.startswith("E ") and "serial:gone" in line)
    assert message.count("serial:gone") == 1, message
    assert not any(line.count("serial:gone") > 1 for line in first), "\n".join(first)


def test_unavailable_target_is_skipped_once_decided(pytester: pytest.Pytester) -> None:
    lab = pytester.makefile(".yaml", lab=LAB)
    pytester.makepyfile(test_pool=THREE_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--rig-config", str(lab),
                                          "--rig-target", "unplugged", "-rs")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*target 'unplugged' not available*does not exist*"])


def test_state_lives_in_stash_keys(pytester: pytest.Pytester) -> None:
    """The pool is on `config.stash`, a test's selector on `item.stash`: no private node
    attributes."""
    lab = pytester.makefile(".yaml", lab=LAB)
    pytester.makepyfile(test_stash="""
        from rig.pytest_plugin import POOL_KEY, SELECTOR_KEY

        def test_keys(request, rig_pool):
            assert request.config.stash[POOL_KEY] is rig_pool
            assert rig_pool.connection("gone") is None  # public, and starts nothing
            assert SELECTOR_KEY not in request.node.stash
            assert not [a for a in vars(request.node) if a.startswith("_rig")]
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--rig-config", str(lab))
    result.assert_outcomes(passed=1)


def test_markers_registered_by_the_plugin(pytester: pytest.Pytester) -> None:
    """A lab suite outside this repository (no pyproject markers) selects with `-m hil`
    under `--strict-markers`."""
    pytester.makepyfile(test_lab="""
        import pytest

        @pytest.mark.hil
        @pytest.mark.rig_target("qemu")
        def test_on_target(rig_dut):
            pass

        @pytest.mark.slow
        @pytest.mark.toolchain
        def test_other():
            pass
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--strict-markers",
                                          "-m", "hil", "--collect-only", "-q")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["test_lab.py::test_on_target", "*1/2 tests collected*"])


@pytest.mark.hil
def test_junit_carries_the_figures_under_xunit2(pytester: pytest.Pytester) -> None:
    """A real run on QEMU written to JUnit with pytest's default family (xunit2): the
    session's figures per test, the suite's properties, and no PytestWarning."""
    import xml.etree.ElementTree as ET

    pytester.makepyfile(test_lab="""
        def test_train(train_session, rig_record_property):
            rig_record_property("lab_note", "mine")
            report = train_session(strategy="tinyprop", train_samples=32, test_samples=16,
                                   epochs=1).run()
            assert report.ok, report.failures
    """)
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--rig-target", "qemu",
                                           f"--junitxml={xml}", "-o", "junit_family=xunit2",
                                           "-W", "error::pytest.PytestWarning")
    result.assert_outcomes(passed=1)
    root = ET.parse(xml).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    suite_props = [(p.get("name"), p.get("value")) for p in suite.findall("properties/property")]
    names = [n for n, _ in suite_props]
    from rig import __version__
    assert ("rig_version", __version__) in suite_props
    assert "rig_lab_config" in names and "rig_qemu" in names
    qemu = dict(suite_props)["rig_qemu"]
    assert qemu.startswith("QEMU emulator version"), qemu
    target = dict(suite_props)["rig_target"]
    from rig.firmware import image_for
    build = image_for("mps2-an386").source_hash
    assert target.startswith("qemu: ") and f"build {build}" in target, target
    case = suite.find("testcase")
    assert case is not None
    props = {p.get("name"): p.get("value") for p in case.findall("properties/property")}
    assert props["lab_note"] == "mine"
    assert props["rig_verdict"] == "ok" and props["rig_strategy"] == "tinyprop"
    assert props["rig_build_hash"] == build and props["rig_board"] == "mps2-an386"
    assert int(props["rig_steps"]) == 2  # 32 samples, batch 16
    assert 0 <= int(props["rig_skipped_steps"]) <= 2
    assert 0.0 <= float(props["rig_max_loss_rel_error"]) < 1e-3
    assert 0.0 <= float(props["rig_max_abs_dparam"]) < 1e-3
    assert int(props["rig_near_ties"]) >= 0
    assert props["rig_counter_label"] == "SysTick ticks"
    assert sum(int(props[f"rig_counter_{p}"]) for p in ("forward", "backward", "update")) > 0
