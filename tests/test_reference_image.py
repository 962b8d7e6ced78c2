"""The reference image (prebuilt mps2-an386 under QEMU) reports every capability that HIL
tests and fixtures skip on when a board lacks it: all strategies, backbone memory with the
Cortex-M4 DSP kernels. A capability dropped from the reference build therefore fails here
instead of turning the tests that need it into skips."""

from __future__ import annotations

import shutil

import pytest

from rig import strategies
from rig.config import load_config
from rig.connection import connect
from rig.protocol import CounterKind, KernelImpl
from rig.targets.qemu import QemuTarget

REFERENCE_BOARD = "mps2-an386"

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                                reason="qemu-system-arm not installed")


def test_reference_image_has_every_capability() -> None:
    board = load_config().boards[REFERENCE_BOARD]
    target = QemuTarget("reference", {"board": board})
    with connect(target, timeout=2.0, retries=2) as conn:
        info = conn.hello
        assert info.board == REFERENCE_BOARD
        assert info.strategies == (1 << len(strategies.NAMES)) - 1, info.strategy_names
        assert all(info.supports(name) for name in strategies.NAMES)
        bb = conn.device.backbone_info()
        assert bb.param_capacity > 0 and bb.act_capacity > 0 and bb.max_layers > 0
        assert bb.kernels == KernelImpl.TINYRIG_DSP
        assert info.counter_kind == CounterKind.SYSTICK  # QEMU: no DWT
        assert target.counter_label.startswith("SysTick ticks (QEMU")
