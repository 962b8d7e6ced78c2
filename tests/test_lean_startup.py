"""Lean start-up (issue 14): digits without importing sklearn, torch only with a golden
model, no pyocd import where no USB device could be a probe, the wall-time split."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rig.targets.pyocd import usb_probe_candidates
from rig.wallclock import PHASES, TimeSplit, since_process_start

ROOT = Path(__file__).resolve().parents[1]


def _fresh(code: str) -> str:
    """Run `code` in a new interpreter (sys.modules of this one are already polluted)."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_digits_equal_sklearn_and_load_without_it() -> None:
    out = _fresh("import sys; from rig.golden.data import load_digits_encoded as l; d = l();"
                 "print(len(d), 'sklearn' in sys.modules, 'torch' in sys.modules)")
    assert out == "1797 False False"
    from sklearn.datasets import load_digits  # the reference, in this process only

    from rig.golden.data import load_digits_encoded
    ref = load_digits()
    d = load_digits_encoded()
    assert np.array_equal(d.q.astype(np.float64), ref.data)
    assert np.array_equal(d.labels, ref.target)


def test_session_module_does_not_import_torch_until_a_golden_model_is_built() -> None:
    out = _fresh("import sys; import rig.session, rig.cli, rig.connection, rig.targets;"
                 "a = 'torch' in sys.modules; from rig.session import TrainingSession, RunSpec;"
                 "import rig.golden.model; print(a, 'torch' in sys.modules)")
    assert out == "False True"


def test_twin_package_loads_only_for_a_twin_target() -> None:
    """rig.twin (unicorn, SVD models) is not imported to run on QEMU; making a twin loads it."""
    out = _fresh("import sys; import rig.cli.run, rig.connection, rig.session, rig.targets;"
                 "from rig.config import load_config; from rig.targets import resolve_target;"
                 "lab = load_config(None); resolve_target(lab, 'qemu');"
                 "a = any(m.startswith(('rig.twin', 'unicorn')) for m in sys.modules);"
                 "resolve_target(lab, 'nucleo-f429zi-twin');"
                 "print(a, 'rig.twin.boards' in sys.modules)")
    assert out == "False True"


def _usb_dev(root: Path, name: str, vendor: str, product: str = "") -> None:
    d = root / name
    d.mkdir(parents=True)
    (d / "idVendor").write_text(vendor + "\n")
    if product:
        (d / "product").write_text(product + "\n")


def test_usb_probe_candidates_from_sysfs(tmp_path: Path) -> None:
    root = tmp_path / "bus" / "usb" / "devices"
    root.mkdir(parents=True)
    (root / "1-0:1.0").mkdir()  # an interface: no idVendor
    _usb_dev(root, "1-1", "046d", "USB Keyboard")
    assert usb_probe_candidates(root) is False
    _usb_dev(root, "1-2", "1234", "Acme CMSIS-DAP v2")
    assert usb_probe_candidates(root) is True
    root2 = tmp_path / "b2" / "usb" / "devices"
    root2.mkdir(parents=True)
    _usb_dev(root2, "2-1", "0483", "STM32 STLink")
    assert usb_probe_candidates(root2) is True
    if sys.platform.startswith("linux"):  # sysfs there, no USB bus: nothing attached
        assert usb_probe_candidates(tmp_path / "bus" / "nousb" / "devices") is False


def test_auto_target_without_probe_candidates_does_not_import_pyocd(tmp_path: Path) -> None:
    if usb_probe_candidates() is not False:
        pytest.skip("this machine has USB devices that could be debug probes")
    out = _fresh("import sys; from rig.config import load_config;"
                 "from rig.targets import resolve_target;"
                 "t = resolve_target(load_config(None), 'auto');"
                 "print(t.hardware, 'pyocd' in sys.modules)")
    assert out == "False False"


def test_time_split() -> None:
    t = TimeSplit()
    t.add("upload", 1.5)
    with t.phase("training"):
        pass
    t.add("training", 2.0)
    d = t.as_dict(total=4.0)
    assert set(PHASES) <= set(d) and d["total"] == 4.0
    assert d["upload"] == 1.5 and 2.0 <= d["training"] < 2.1
    assert abs(d["other"] - (4.0 - 1.5 - d["training"])) < 1e-3
    with pytest.raises(KeyError):
        t.add("coffee", 1.0)
    nested = TimeSplit()
    with nested.phase("upload"), nested.phase("golden"):
        time.sleep(0.02)
    assert nested.seconds["golden"] >= 0.02 and nested.seconds["upload"] < 0.01
    assert "uploads 1.50" in t.summary(4.0)
    started = since_process_start()
    assert started is None or 0 < started < 3600


def test_run_json_records_the_time_split_and_lockstep_uses_the_digest(tmp_path: Path) -> None:
    import json

    from rig import cli

    out = tmp_path / "run.json"
    code = cli.main(["run", "--target", "native", "--train-samples", "64", "--test-samples",
                     "32", "--epochs", "1", "--lockstep", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    split = report["time_split_s"]
    assert set(split) == {*PHASES, "other", "total"}
    assert all(v >= 0 for v in split.values())
    parts = sum(v for k, v in split.items() if k != "total")
    assert abs(parts - split["total"]) < 0.01 * split["total"] + 0.002
    for phase in ("startup", "target_start", "upload", "training", "golden", "readback"):
        assert split[phase] > 0, phase
    # Lockstep read back by PARAM_DIGEST each step; PARAM_READ only at the epoch end.
    sent = report["link"]["payload_tx_by_type"]
    steps = len(report["steps"])
    assert sent["PARAM_DIGEST"] > 0 and sent["PARAM_DIGEST"] % (8 * steps) == 0  # 8 B each
    assert all(s["wall_s"] > 0 for s in report["steps"])
