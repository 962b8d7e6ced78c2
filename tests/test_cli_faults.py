"""`rig run --inject-faults SPEC`: a bad spec is refused before any target starts; a good
one trains through the fault injector and still agrees with the golden model."""

from __future__ import annotations

import re

import pytest

from rig import cli

SMALL = ["--epochs", "1", "--train-samples", "64", "--test-samples", "32"]


def test_bad_spec_exits_2_naming_the_key_before_any_target(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def no_target(*args: object, **kw: object) -> None:
        raise AssertionError("a target was resolved despite the bad option")

    import rig.targets

    monkeypatch.setattr(rig.targets, "resolve_target", no_target)
    assert cli.main(["run", "--target", "native", "--inject-faults", "flip=1e-4,drp=1"]) == 2
    out = capsys.readouterr().out
    assert "--inject-faults: unknown key 'drp'" in out and "Traceback" not in out


def test_run_through_injected_faults_matches_golden(capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    code = cli.main(["run", "--target", "native", *SMALL,
                     "--inject-faults", "flip=2e-3,drop=1e-3,dup=1e-3,seed=5"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "injecting link faults: flip=0.002,drop=0.001,dup=0.001,seed=5,dir=both" in out
    injected = re.search(r"injected: (\d+) faults injected .*; silent 0", out)
    assert injected is not None and int(injected.group(1)) > 0
    retx = re.search(r"(\d+) retransmits \((\d+) fast\)", out)
    assert retx is not None and int(retx.group(1)) > 0
    assert "device matches the golden model" in out
