"""The `rig` command line, run in-process as a user would call it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rig import cli
from rig.compare import Tolerance
from rig.golden import model as golden_model

SMALL = ["--train-samples", "64", "--test-samples", "32", "--epochs", "1"]


def test_run_native_prints_epoch_table_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", "--target", "native", *SMALL])
    out = capsys.readouterr().out
    assert code == 0, out
    for column in ("device loss", "golden loss", "max |Δparam|", "test acc device",
                   "test acc golden", "wall s"):
        assert column in out
    assert "device matches the golden model" in out


@pytest.mark.hil
def test_run_exits_1_when_device_and_golden_disagree(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Zero tolerance and a golden model whose exp is correctly rounded instead of the
    firmware's `tr_expf`: some losses differ in the last bits, and the run must say so."""
    zero = Tolerance(loss_rel=0.0, param_atol=0.0, param_rtol=0.0, update_rel=0.0)
    monkeypatch.setattr(Tolerance, "free_running", classmethod(lambda cls: zero))
    monkeypatch.setattr(golden_model, "expf", lambda x: np.exp(
        np.asarray(x, np.float64)).astype(np.float32))
    code = cli.main(["run", "--target", "qemu", *SMALL])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "disagree beyond tolerance" in out


@pytest.mark.hil
def test_run_agrees_at_zero_tolerance(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The same run with the golden model as shipped: bit for bit, so zero tolerance holds
    over a free-running epoch (docs/training.md)."""
    zero = Tolerance(loss_rel=0.0, param_atol=0.0, param_rtol=0.0, update_rel=0.0)
    monkeypatch.setattr(Tolerance, "free_running", classmethod(lambda cls: zero))
    code = cli.main(["run", "--target", "qemu", *SMALL])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "device matches the golden model" in out


def test_list_shows_targets_and_prebuilt_images(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "qemu" in out and "native" in out
    assert "mps2-an386" in out
    assert "would be used" in out


def test_broken_config_exits_2_naming_file_line_key(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "lab_config.yaml"
    bad.write_text("version: 1\ntraining:\n  lr: fast\n")
    assert cli.main(["--config", str(bad), "run"]) == 2
    out = capsys.readouterr().out
    assert f"{bad}:3" in out.replace("\n", "") and "training.lr" in out


@pytest.mark.parametrize(("argv", "line"), [
    (["run", "--strategy", "tinyprp"],
     "rig run: --strategy 'tinyprp': unknown strategy; did you mean 'tinyprop'?"),
    (["run", "--strategy", "tinyprop", "--sparams", "1", "2", "3", "4", "5", "6"],
     "rig run: --sparams: strategy 'tinyprop' takes 3 sparams (S_min, S_max, zeta), got 6"),
    (["run", "--strategy", "tinyprop", "--sparams", "0.9", "0.1"],
     "rig run: --sparams: strategy 'tinyprop': need 0 ≤ S_min ≤ S_max ≤ 1 "
     "(sparams S_min=0.9, S_max=0.1, zeta=0.5)"),
    (["experiment", "--strategy", "full", "--strategy", "nq"],
     "rig experiment: --strategy 'nq': unknown strategy; did you mean 'neq'?"),
    (["profile", "--strategy", "statc"],
     "rig profile: --strategy 'statc': unknown strategy; did you mean 'static'?"),
    (["run", "--epochs", "many"], "rig run: argument --epochs: invalid int value: 'many'"),
])
def test_bad_values_exit_2_with_one_line_before_any_target(
        argv: list[str], line: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import rig.targets

    def no_target(*a: object, **k: object) -> None:
        raise AssertionError("a target was resolved")

    monkeypatch.setattr(rig.targets, "resolve_target", no_target)
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [line] and captured.err == ""


def test_cli_and_help_import_neither_torch_nor_sklearn() -> None:
    """`rig --help`, and importing the config, the wire contract and the CLI, stay free of the
    training stack (torch takes seconds to import)."""
    import subprocess
    import sys

    probe = ("import sys, rig.config, rig.protocol, rig.strategies, rig.cli\n"
             "try:\n    rig.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('torch', 'sklearn', 'rig.golden', 'rig.session')"
             " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip().splitlines()[-1] == "[]"
