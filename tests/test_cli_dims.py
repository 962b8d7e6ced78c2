"""`rig run --dims`: bad widths are refused before any target starts (one line, exit 2);
the memory plan's refusal names the bytes (tests/test_hil_reference_head.py runs it)."""

from __future__ import annotations

import pytest

from rig import cli


@pytest.mark.parametrize(("dims", "message"), [
    (["64"], "--dims: expected at least 2 widths (input ... classes), got 1"),
    (["64", "0", "10"], "--dims: expected an integer >= 1 and <= 65535, got 0"),
    (["32", "16", "10"], "--dims: the first width is the input: 64 features per digits "
                         "sample, got 32"),
])
def test_bad_dims_are_refused_before_a_target(capsys: pytest.CaptureFixture[str],
                                              dims: list[str], message: str) -> None:
    code = cli.main(["run", "--target", "native", "--dims", *dims])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 2
    assert message in text
    assert "Traceback" not in text and "rig run:" not in text.split(message)[1]
