"""HIL on the board twins only: what the twins add to the shared HIL suite. The figures
are labelled as a model, and after the suite's traffic (the train, strategy and fault
tests run before this file) no register access went unrecognised and no model found a
board-code problem. Skipped on other targets."""

from __future__ import annotations

import pytest

from rig.targets.twin import COUNTER_LABEL

pytestmark = pytest.mark.hil


@pytest.fixture
def twin(rig_target):  # type: ignore[no-untyped-def]
    if rig_target.kind != "twin":
        pytest.skip("not a board twin")
    return rig_target


def test_twin_figures_are_labelled_as_a_model(twin, train_session) -> None:  # type: ignore[no-untyped-def]
    session = train_session(strategy="full", train_samples=32, test_samples=16, epochs=1)
    report = session.run()
    assert report.ok, report.failures
    assert report.counter_label == COUNTER_LABEL == "cycles (twin model)"
    assert "emulated (twin)" in twin.describe() and not twin.hardware
    # the firmware's DWT counter advanced with the instructions the twin executed
    counters = [s.device.counters for s in report.steps]
    assert all(sum(c) > 0 for c in counters)


def test_twin_saw_no_unknown_register_access(twin) -> None:  # type: ignore[no-untyped-def]
    m = twin.machine
    assert m.strict
    assert m.unknown == [] and m.findings == []
    assert m.insns > 0
