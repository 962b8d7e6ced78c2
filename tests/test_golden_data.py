"""Digits data: encoding, deterministic splits, transfer splits, MAC formulas."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from rig.golden.data import (
    class_transfer,
    digits_split,
    domain_transfer,
    epoch_batches,
    load_digits_encoded,
    shift_images,
)
from rig.golden.macs import PhaseMacs, full_step_macs, select_macs, step_macs


def test_u8_encoding_is_exact() -> None:
    data = load_digits_encoded()
    assert data.q.dtype == np.uint8 and data.labels.dtype == np.uint8 and len(data) == 1797
    assert data.scale == 1 / 16 and data.zero_point == 0 and data.dtype == 1
    decoded = data.decode()
    assert decoded.dtype == np.float32
    assert np.array_equal(decoded.astype(np.float64), load_digits().data / 16.0)


def test_split_is_deterministic_disjoint_and_complete() -> None:
    a, b, c = digits_split(0), digits_split(0), digits_split(1)
    assert np.array_equal(a.train.q, b.train.q) and np.array_equal(a.val.labels, b.val.labels)
    assert not np.array_equal(a.train.q, c.train.q)
    assert (len(a.train), len(a.val), len(a.test)) == (1374, 64, 359)
    rows = {r.tobytes() + bytes([lab]) for s in (a.train, a.val, a.test)
            for r, lab in zip(s.q, s.labels, strict=True)}
    full = load_digits_encoded()
    assert rows == {r.tobytes() + bytes([lab]) for r, lab in zip(full.q, full.labels,
                                                                 strict=True)}
    with pytest.raises(ValueError):
        digits_split(0, test_fraction=0.9, n_val=500)


def test_class_transfer_partitions_the_classes() -> None:
    t = class_transfer(digits_split(0))
    assert set(t.pretrain.train.labels) == {0, 1, 2, 3, 4}
    assert set(t.finetune.test.labels) == {5, 6, 7, 8, 9}
    assert len(t.pretrain.train) + len(t.finetune.train) == len(digits_split(0).train)


def test_domain_shift_translates_images() -> None:
    split = digits_split(0)
    moved = shift_images(split.test, dx=1, dy=0)
    img, out = split.test.q.reshape(-1, 8, 8), moved.q.reshape(-1, 8, 8)
    assert np.array_equal(out[:, :, 1:], img[:, :, :-1]) and not out[:, :, 0].any()
    back = shift_images(moved, dx=-1, dy=0)
    assert np.array_equal(back.q.reshape(-1, 8, 8)[:, :, :-1], img[:, :, :-1])
    inv = shift_images(split.test, 0, 0, invert=True)
    assert np.array_equal(inv.q.astype(int), 16 - split.test.q.astype(int))
    dt = domain_transfer(split, 1, 1)
    assert np.array_equal(dt.finetune.train.labels, split.train.labels)


def test_epoch_batches_cover_every_sample_once() -> None:
    batches = epoch_batches(100, 32, seed=3, epoch=1)
    assert [len(b) for b in batches] == [32, 32, 32, 4]
    assert sorted(np.concatenate(batches).tolist()) == list(range(100))
    assert [len(b) for b in epoch_batches(100, 32, 3, 1, drop_last=True)] == [32] * 3
    assert not np.array_equal(batches[0], epoch_batches(100, 32, 3, 2)[0])


def test_mac_formulas() -> None:
    dims, batch = [64, 32, 10], 8
    full = full_step_macs(dims, batch)
    assert full.forward == 8 * (64 * 32 + 32 * 10)
    assert full.backward == 8 * (64 * 32 + 32 * 10) + 8 * 32 * 10
    assert full.update == 64 * 32 + 32 + 32 * 10 + 10
    sparse = step_macs(dims, batch, k=[4, 2], bias_selected=[32, 10], propagated=[0, 2],
                       scored=[0, 1])
    assert sparse.backward == 8 * (64 * 4 + 32 * 2) + 8 * 32 * 2
    assert sparse.selection == 8 * (32 + 10)
    assert sparse.update == 64 * 4 + 32 + 32 * 2 + 10
    assert (sparse + PhaseMacs(1, 2, 3, 4)).as_tuple() == (sparse.forward + 1,
                                                           sparse.backward + 2,
                                                           sparse.selection + 3,
                                                           sparse.update + 4)
    assert select_macs(dims, 16, velocity=False).total == 0
    assert select_macs(dims, 16, velocity=True).selection == 16 * (64 * 32 + 32 * 10) + 3 * 16 * 42
