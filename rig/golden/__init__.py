"""The PyTorch golden model of on-device training and its sparse strategies.

Knows no wires: the session feeds it the same batches it sends to the device and compares
(`rig.compare`). The arithmetic contract is `docs/training.md`.
"""

from rig.golden.data import EncodedSet, Split, TransferSplit, digits_split, epoch_batches
from rig.golden.macs import PhaseMacs, full_step_macs, select_macs, step_macs
from rig.golden.model import GoldenMLP, GoldenSelect, GoldenStep, LayerParams, init_params
from rig.golden.strategies import CLASSES, make_strategy

__all__ = [
    "CLASSES", "EncodedSet", "GoldenMLP", "GoldenSelect", "GoldenStep", "LayerParams",
    "PhaseMacs", "Split", "TransferSplit", "digits_split", "epoch_batches",
    "full_step_macs", "init_params", "make_strategy", "select_macs", "step_macs",
]
