"""The device subset of `rig experiment` on QEMU: instruction counts (TCG plugin) summed per
phase are identical when the same run is repeated (SysTick in QEMU follows host time; these
must not). Kept small: two strategies, one short epoch, two QEMU starts."""

from __future__ import annotations

from dataclasses import replace

import pytest
from _profile_util import need_plugin, need_qemu

from rig import experiment_device as dev
from rig.experiment_tasks import TASKS, Phase
from rig.golden.data import Split, TransferSplit
from rig.profile.icount import LABEL

DIGITS = TASKS["digits"]


def _short(seed: int) -> TransferSplit:
    full = DIGITS.build(seed)
    ft = full.finetune
    return replace(full, finetune=Split(ft.train.subset(range(48)), ft.val, ft.test, seed))


@pytest.mark.slow
def test_device_counters_identical_across_reruns(monkeypatch: pytest.MonkeyPatch) -> None:
    need_qemu()
    need_plugin()
    small = replace(DIGITS, pretrain=Phase(1, 0.1, 0.9),
                    finetune=Phase(2, 0.05, 0.9), build=_short)
    monkeypatch.setitem(TASKS, "digits", small)
    runs = [dev.run_device_subset("digits", None, "qemu", ("tinyprop", "neq"),
                                  log=lambda _: None) for _ in range(2)]
    for a, b in zip(runs[0].runs, runs[1].runs, strict=True):
        assert a.ok and b.ok, (a.failures, b.failures)
        assert a.counter_label == LABEL == b.counter_label
        assert a.counters == b.counters
        assert a.counters[0] > 0 and a.counters[1] > 0 and a.counters[3] > 0
    neq = runs[0].runs[1]
    assert neq.counters[2] > 0  # its SELECT messages are counted as selection
