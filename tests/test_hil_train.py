"""Emulated HIL: train on the target through the fixtures and compare with the golden model."""

from __future__ import annotations

import numpy as np
import pytest

from rig.session import Inspect

pytestmark = pytest.mark.hil


def test_hello_matches_manifest(rig_dut, rig_target) -> None:
    info = rig_dut.hello()
    image = rig_target.expected_firmware()
    assert image is not None
    assert info.board == image.board
    assert info.build_hash == image.source_hash


def test_full_training_steps_match_golden(train_session) -> None:
    session = train_session(strategy="full", train_samples=96, test_samples=64, epochs=1,
                            batch=16,
                            inspect=Inspect(updates=True, params_every=1, resync=True))
    report = session.run()
    assert len(report.steps) == -(-96 // session.spec.batch)  # 6; more where max_batch < 16
    assert report.ok, report.failures
    # the device really trained: loss moved and parameters changed from the initial ones
    assert report.steps[-1].device.loss != report.steps[0].device.loss
    assert session.lockstep
    assert report.max_loss_rel <= 1e-5  # the lockstep tolerance (docs/training.md)


def test_device_params_equal_golden_after_epoch(train_session) -> None:
    session = train_session(strategy="full", train_samples=128, test_samples=128, epochs=2,
                            momentum=0.9)
    report = session.run()
    assert report.ok, report.failures
    last = report.epochs[-1]
    assert last.max_param_abs < 1e-5
    assert abs(last.device_acc - last.golden_acc) <= 1 / 128


def test_mismatch_is_detected(train_session, rig_dut) -> None:
    """A perturbed device parameter must make the comparison fail (the check can fail)."""
    session = train_session(strategy="full", train_samples=32, test_samples=32, epochs=1,
                            inspect=Inspect(params_every=1))
    w, b = rig_dut.read_model()[0]
    w = w.copy()
    w[0, :] += np.float32(0.01)
    rig_dut.write_params(0, "weight", w)
    rec = session.step(np.arange(session.spec.batch))
    assert not rec.verdict.ok
    assert any(c.name.startswith(("W[0]", "loss")) for c in rec.verdict.failed)
