"""The PyTorch golden model of on-device training and its sparse strategies.

Knows no wires: the session feeds it the same batches it sends to the device and compares
(`rig.compare`). The arithmetic contract is `docs/training.md`.

The names below load on first use (PEP 562), so `rig.golden.data` (numpy only) does not
pay for `import torch` (~0.9 s): torch is imported when a golden model is built.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "EncodedSet": "data", "Split": "data", "TransferSplit": "data", "digits_split": "data",
    "epoch_batches": "data",
    "PhaseMacs": "macs", "full_step_macs": "macs", "select_macs": "macs", "step_macs": "macs",
    "GoldenMLP": "model", "GoldenSelect": "model", "GoldenStep": "model",
    "LayerParams": "model", "init_params": "model",
    "CLASSES": "strategies", "make_strategy": "strategies",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'rig.golden' has no attribute {name!r}")
    return getattr(importlib.import_module(f"rig.golden.{module}"), name)
