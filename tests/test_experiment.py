"""`rig experiment` machinery on a reduced task: golden runs, a device run on the native
firmware (the same C core as the boards), the table and the plot."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig import experiment as exp
from rig.config import load_config
from rig.connection import connect
from rig.session import TrainingSession
from rig.targets import resolve_target


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exp, "PRETRAIN", exp.Phase(epochs=2, lr=0.1, momentum=0.9))
    monkeypatch.setattr(exp, "FINETUNE", exp.Phase(epochs=2, lr=0.05, momentum=0.9, batch=32))


def test_experiment_table_plot_and_device_agreement(small: None, tmp_path: Path) -> None:
    lab = load_config()
    with connect(resolve_target(lab, "native")) as conn:

        def factory(spec, split, params, inspect):  # type: ignore[no-untyped-def]
            return TrainingSession(conn.device, spec, split=split, initial_params=params,
                                   inspect=inspect)

        result = exp.run_experiment([0, 1], ("full", "tinyprop", "random-budget"),
                                    device_seeds=[0], session_factory=factory,
                                    target_name="native", log=lambda _: None)
    assert len(result.runs) == 6
    assert [d.strategy for d in result.device] == ["full", "tinyprop", "random-budget"]
    for d in result.device:
        assert d.ok, d.failures
        assert d.device_accuracy == pytest.approx(d.golden_accuracy, abs=1 / 359)
    rows = {r.strategy: r for r in exp.summarize(result)}
    assert rows["full"].compute_ratio == (1.0, 0.0)
    assert rows["full"].drop_pp == (0.0, 0.0)
    assert 0 < rows["tinyprop"].backward_ratio[0] < 1
    assert 0 < rows["random-budget"].trained_fraction[0] <= 0.25 + 1e-9  # the budget
    paths = exp.write(result, tmp_path, "rig experiment (test)")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = paths["md"].read_text()
    assert "| `tinyprop` |" in md and "Device vs golden model" in md
