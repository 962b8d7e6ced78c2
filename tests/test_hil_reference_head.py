"""The reference head 64-32-10 on every target, and the 16 KB microbit's memory plan.

On every enabled target (conftest: `--rig-target all`), `static` at its documented defaults
trains the reference head in lockstep with the golden model; `full` trains where its memory
plan fits the training arena and is skipped, with the plan's figures as the reason, where it
does not (the microbit). On the microbit itself, `rig run` refuses `full` before any upload
with the bytes the plan needs, and the device's own NO_SPACE text at TRAIN_CONFIG says the
same number - the host plan (rig.memplan) and the firmware's layout computed independently.
"""

from __future__ import annotations

import re

import pytest

from rig import cli, memplan
from rig.session import Inspect

pytestmark = pytest.mark.hil

REFERENCE = (64, 32, 10)
LOCKSTEP = Inspect(masks=True, updates=True, params_every=1, resync=True)


@pytest.mark.parametrize("strategy", ["static", "full"])
def test_reference_head_trains_where_its_plan_fits(train_session, strategy: str) -> None:
    session = train_session(strategy=strategy, dims=REFERENCE, train_samples=24,
                            test_samples=16, epochs=1, inspect=LOCKSTEP)
    report = session.run()
    assert report.steps and report.ok, report.failures
    assert report.max_loss_rel <= 1e-5


def test_microbit_refuses_full_before_upload_with_the_plan(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", "--target", "qemu-microbit", "--dims", "64", "32", "10",
                     "--strategy", "full", "--epochs", "1", "--train-samples", "16"])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 2, text
    need = memplan.plan(REFERENCE, "full", max_batch=2).bytes
    assert f"full on 64-32-10 does not fit microbit: arena: needs {need} B, has " in text
    assert "uploaded" not in text  # refused before the data set went out
    assert "Traceback" not in text


def test_microbit_static_matches_golden_and_device_says_what_full_needs(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", "--target", "qemu-microbit", "--dims", "64", "32", "10",
                     "--strategy", "static", "--epochs", "1", "--train-samples", "32",
                     "--test-samples", "16", "--lockstep", "--inspect"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "static on microbit (dims 64-32-10, batch 2)" in out
    assert "device matches the golden model" in out


@pytest.mark.rig_target("qemu-microbit")
def test_microbit_nak_text_is_the_host_plan(rig_dut) -> None:
    from rig.errors import DeviceNak
    from rig.protocol import NakReason

    info = rig_dut.hello()
    rig_dut.reset()
    rig_dut.model_init(REFERENCE)
    arena = rig_dut.stats().arena_size
    rig_dut.train_config(0.05, 0.0, "static")  # fits: 11,552 B
    assert rig_dut.stats().arena_used == memplan.plan(REFERENCE, "static",
                                                      max_batch=info.max_batch).bytes
    with pytest.raises(DeviceNak) as nak:
        rig_dut.train_config(0.05, 0.0, "full")
    assert nak.value.reason == NakReason.NO_SPACE
    need = memplan.plan(REFERENCE, "full", max_batch=info.max_batch).bytes
    assert nak.value.text == memplan.arena_text(need, arena)
    assert re.fullmatch(r"arena: needs \d+ B, has \d+ B", nak.value.text)
