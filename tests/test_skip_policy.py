"""Skips are for what is absent (a tool, hardware), never for what is broken: the
`native_build` fixture of tests/conftest.py fails the test when the build fails and skips
only when the host compiler is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")

INNER_TEST = """
import rig.firmware
from rig.errors import BuildFailed, ToolMissing

def make_native(goal="native", build_dir=None):
    if goal == "native":
        raise BuildFailed("backbone.c:1: #error planted")
    raise ToolMissing("gcc not found on PATH")

rig.firmware.make_native = make_native  # a subprocess: nothing leaks out

def test_broken_build(native_build):
    native_build("native")

def test_no_compiler(native_build):
    native_build("kernels-native")
"""


def test_native_build_error_fails_missing_compiler_skips(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_inner=INNER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:labgrid",
                                          "-rs")
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*#error planted*", "*cannot build kernels-native*gcc*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
