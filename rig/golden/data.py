"""The digits data set (scikit-learn's `load_digits` file, shipped with the package and read
directly without importing sklearn: nothing is downloaded), encoded as the device stores it:
u8 with x = (q − zero_point)·scale.

Digits pixels are integers 0..16, so q = pixel, scale = 1/16, zero_point = 0 is exact: host
and device decode bit-identical features.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from rig.errors import ConfigError
from rig.golden.f32 import F32

DTYPE_U8 = 1  # DATA_CONFIG dtype code (protocol.md §3)
DIGITS_SCALE = 1.0 / 16.0
IMAGE_SIDE = 8


@dataclass(frozen=True)
class EncodedSet:
    """Samples in their stored encoding: q uint8 [n][features], labels uint8 [n]."""

    q: np.ndarray
    labels: np.ndarray
    scale: float = DIGITS_SCALE
    zero_point: float = 0.0
    name: str = ""

    dtype = DTYPE_U8

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_features(self) -> int:
        return int(self.q.shape[1])

    def decode(self) -> np.ndarray:
        """float32 features exactly as the firmware computes them: (q − zp)·scale in f32."""
        return (self.q.astype(F32) - F32(self.zero_point)) * F32(self.scale)

    def subset(self, index: np.ndarray | Sequence[int], name: str | None = None) -> EncodedSet:
        index = np.asarray(index, dtype=np.int64)
        return replace(self, q=self.q[index], labels=self.labels[index],
                       name=self.name if name is None else name)

    def where_label(self, classes: Sequence[int], name: str | None = None) -> EncodedSet:
        return self.subset(np.flatnonzero(np.isin(self.labels, list(classes))), name)


@dataclass(frozen=True)
class Split:
    """train / val (the fixed SELECT subset, disjoint from train) / test."""

    train: EncodedSet
    val: EncodedSet
    test: EncodedSet
    seed: int

    @property
    def n_features(self) -> int:
        return self.train.n_features


def digits_file() -> Path:
    """scikit-learn's copy of the digits (`sklearn/datasets/data/digits.csv.gz`: 64 pixels
    then the label per line), found without importing sklearn (that costs ~0.8 s)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the digits data set ships with scikit-learn: pip install scikit-learn")
    for root in spec.submodule_search_locations:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    raise ConfigError(f"scikit-learn at {spec.submodule_search_locations[0]} has no "
                      "datasets/data/digits.csv.gz")


@lru_cache(maxsize=1)
def load_digits_encoded() -> EncodedSet:
    """All 1,797 digits (cached; the arrays are read-only so the cache cannot be corrupted)."""
    with gzip.open(digits_file(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape[1] != IMAGE_SIDE * IMAGE_SIDE + 1:
        raise ValueError(f"digits file: {table.shape[1]} columns, expected 65")
    pixels, target = table[:, :-1], table[:, -1]
    if not np.array_equal(pixels, np.round(pixels)) or pixels.min() < 0 or pixels.max() > 16:
        raise ValueError("digits pixels are expected to be integers 0..16")
    q, labels = pixels.astype(np.uint8), target.astype(np.uint8)
    q.flags.writeable = labels.flags.writeable = False
    return EncodedSet(q, labels, name="digits")


def digits_split(seed: int = 0, test_fraction: float = 0.2, n_val: int = 64) -> Split:
    """Deterministic by seed (numpy PCG64 permutation): test first, then val, rest train."""
    data = load_digits_encoded()
    order = np.random.default_rng(seed).permutation(len(data))
    n_test = int(round(test_fraction * len(data)))
    if n_test + n_val >= len(data):
        raise ValueError(f"test {n_test} + val {n_val} leave no training samples")
    return Split(train=data.subset(order[n_test + n_val:], "train"),
                 val=data.subset(order[n_test:n_test + n_val], "val"),
                 test=data.subset(order[:n_test], "test"), seed=seed)


@dataclass(frozen=True)
class TransferSplit:
    """Pre-train on the source task, then fine-tune on the target task (on the device)."""

    pretrain: Split
    finetune: Split
    description: str


def class_transfer(split: Split, source: Sequence[int] = (0, 1, 2, 3, 4)) -> TransferSplit:
    """New classes: pre-train on `source` digits, fine-tune on the others (labels kept 0..9,
    so one 10-way head serves both phases)."""
    target = [c for c in range(10) if c not in set(source)]

    def part(classes: Sequence[int]) -> Split:
        train, val, test = (s.where_label(classes) for s in (split.train, split.val,
                                                               split.test))
        return Split(train, val, test, seed=split.seed)

    return TransferSplit(part(source), part(target), f"classes {list(source)} → {target}")


def shift_images(data: EncodedSet, dx: int = 1, dy: int = 0, invert: bool = False) -> EncodedSet:
    """A shifted domain: translate every 8×8 image by (dx, dy) pixels (zero fill), optionally
    invert intensities (16 − q). Labels unchanged."""
    img = data.q.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    out = np.zeros_like(img)
    ys, xs = slice(max(dy, 0), IMAGE_SIDE + min(dy, 0)), slice(max(dx, 0), IMAGE_SIDE + min(dx, 0))
    ys_src = slice(max(-dy, 0), IMAGE_SIDE + min(-dy, 0))
    xs_src = slice(max(-dx, 0), IMAGE_SIDE + min(-dx, 0))
    out[:, ys, xs] = img[:, ys_src, xs_src]
    if invert:
        out = (16 - out).astype(np.uint8)
    return replace(data, q=out.reshape(len(data), -1), name=f"{data.name}+shift({dx},{dy})")


def domain_transfer(split: Split, dx: int = 1, dy: int = 1, invert: bool = False) -> TransferSplit:
    """Same classes, shifted inputs: pre-train on the original, fine-tune on the shifted images."""
    train, val, test = (shift_images(s, dx, dy, invert) for s in (split.train, split.val,
                                                                  split.test))
    shifted = Split(train, val, test, seed=split.seed)
    return TransferSplit(split, shifted, f"shift ({dx},{dy}){' inverted' if invert else ''}")


def epoch_batches(n: int, batch: int, seed: int, epoch: int, drop_last: bool = False
                  ) -> list[np.ndarray]:
    """Sample indices of one epoch's batches: a permutation fixed by (seed, epoch)."""
    if batch < 1:
        raise ValueError("batch must be ≥ 1")
    order = np.random.default_rng([seed, epoch]).permutation(n)
    stop = n - n % batch if drop_last else n
    return [order[i:i + batch] for i in range(0, stop, batch)]
