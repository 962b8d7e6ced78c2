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
