"""Emulated HIL: the frozen int8 backbone on the target (QEMU mps2-an386 by default, its
Cortex-M4 DSP kernels) in front of the float head the firmware trains.

- the default digits CNN streams over UART, its int8 features are bit-identical to the
  golden int8 model, and backbone + head trains in lockstep with the golden head;
- a sample of random layers (all five ops, random shapes and quantization parameters, the
  kernels' real SMLAD/SXTB16 path) gives bit-identical FEATURES.

The same tests accept an image built against Arm's CMSIS-NN (`make -C firmware
CMSIS_NN_ROOT=...`, run with `--rig-target qemu-cmsis-nn`): it reports the CMSIS-NN
implementation and must give the same features. Random layers therefore stay in the regime
TFLite's converter emits (multipliers in [2^30, 2^31), i.e. non-negative): the one
arithmetic difference between the two implementations, accumulator and multiplier both
INT32_MIN, needs a negative multiplier (tests/test_kernels_native.py tests that corner on
our kernels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rig.device import Device
from rig.errors import DeviceNak
from rig.golden.int8 import Op, QBackbone, QLayer, conv_out_hw, samples_to_int8
from rig.golden.quant import default_backbone
from rig.protocol import KernelImpl, NakReason
from rig.session import Inspect

pytestmark = pytest.mark.hil


#: the reference image has every capability: nothing skips on it
REFERENCE_BOARD = "mps2-an386"


@pytest.fixture
def bb_dut(rig_dut: Device) -> Device:
    """The dut, if its board has backbone memory (TR_BACKBONE_CAPACITY > 0); on the
    reference board a missing backbone is a failure, not a skip."""
    skip = pytest.fail if rig_dut.info.board == REFERENCE_BOARD else pytest.skip
    try:
        info = rig_dut.backbone_info()
    except DeviceNak as exc:
        skip(f"{rig_dut.info.board}: firmware without BACKBONE_INFO ({exc})")
    if info.param_capacity == 0:
        skip(f"{rig_dut.info.board} has no backbone memory (BACKBONE_INIT NAKs NO_SPACE)")
    return rig_dut


def test_no_backbone_memory_is_a_clear_nak(rig_dut: Device) -> None:
    if rig_dut.backbone_info().param_capacity:
        pytest.skip(f"{rig_dut.info.board} has backbone memory")
    with pytest.raises(DeviceNak) as exc:
        rig_dut.load_backbone(default_backbone())
    assert exc.value.reason == NakReason.NO_SPACE


def _links_cmsis_nn(elf: Path) -> bool:
    """Whether the image's symbol table has Arm's convolution (a CMSIS_NN_ROOT build)."""
    with elf.open("rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return isinstance(symtab, SymbolTableSection) and \
            bool(symtab.get_symbol_by_name("arm_convolve_s8"))


def test_backbone_info(bb_dut: Device, rig_target) -> None:  # type: ignore[no-untyped-def]
    dut = bb_dut
    info = dut.backbone_info()
    assert info.state == 0 and info.n_layers == 0  # RESET forgot any backbone
    elf = getattr(rig_target, "elf", None)
    if isinstance(elf, Path) and elf.is_file():
        # what the image links (its symbols) against what the firmware reports
        expected = KernelImpl.CMSIS_NN if _links_cmsis_nn(elf) else (
            KernelImpl.TINYRIG_DSP if dut.info.board == "mps2-an386" else None)
        if expected is not None:
            assert info.kernels == expected, f"{elf.name}: {info.kernels!r}"
    if dut.info.board == "mps2-an386":  # Cortex-M4: the SMLAD path or Arm's kernels
        assert info.kernels in (KernelImpl.TINYRIG_DSP, KernelImpl.CMSIS_NN)


def test_backbone_head_trains_and_matches_golden(bb_dut: Device, train_session) -> None:  # type: ignore[no-untyped-def]
    session = train_session(backbone="digits-cnn", strategy="full", epochs=1, batch=16,
                            train_samples=96, test_samples=64, lr=0.1,
                            inspect=Inspect(updates=True, params_every=2, features=96))
    report = session.run()
    assert report.setup and report.setup[0].ok, report.setup[0]  # features bit-exact
    assert report.ok, report.failures
    assert session.spec.dims[0] == default_backbone().n_features == 128
    assert len(report.steps) == 6
    assert report.steps[-1].device.loss < report.steps[0].device.loss
    assert report.max_loss_rel <= session.step_tol.loss_rel
    # the test set too: every test sample's features, bit-exact
    v = session.compare_features(session.test_start, len(session.test))
    assert v.ok, v


def test_backbone_with_tinyprop_lockstep(bb_dut: Device, train_session) -> None:  # type: ignore[no-untyped-def]
    session = train_session(backbone="digits-cnn", strategy="tinyprop", epochs=1, batch=16,
                            train_samples=64, test_samples=32,
                            inspect=Inspect(masks=True, params_every=1, resync=True,
                                            features=16))
    report = session.run()
    assert report.ok, report.failures
    assert all(s.device.k[0] < 32 for s in report.steps)  # sparse: not every hidden row


def test_features_need_a_verified_blob(bb_dut: Device) -> None:
    dut = bb_dut
    bb = default_backbone()
    blob = bb.blob()
    dut.load_backbone(bb)
    dut.data_config(64, "u8", 1 / 16, 0.0, 2)
    dut.write_samples(0, [1, 2], np.zeros((2, 64), np.uint8))
    dut.backbone_write(0, bytes(len(blob)))  # overwrite with zeros: CRC no longer matches
    with pytest.raises(DeviceNak) as exc:
        dut.features(0, 2)
    assert exc.value.reason == NakReason.BAD_STATE
    dut.backbone_write(0, blob)
    got = dut.features(0, 2)
    assert np.array_equal(got, bb.forward(samples_to_int8(np.zeros((2, 64), np.uint8), 1)))


# ---- random layers on the target's real kernels -----------------------------------------------

@st.composite
def random_backbone(draw: st.DrawFn) -> tuple[QBackbone, int]:
    """One or two random layers (any op) with random quantization; returns it and a seed."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    h, w, c = (int(v) for v in rng.integers(1, [10, 10, 12], endpoint=True))
    layers = []
    shape = (h, w, c)
    for _ in range(draw(st.integers(1, 2))):
        op = Op(draw(st.integers(0, 4)))
        layers.append(_random_layer(rng, op, shape))
        shape = layers[-1].out_shape
    return QBackbone((h, w, c), tuple(layers), out_scale=0.05, out_zero_point=0), seed


def _random_layer(rng: np.random.Generator, op: Op, shape: tuple[int, int, int]) -> QLayer:
    h, w, c = shape
    pool = op in (Op.AVGPOOL, Op.MAXPOOL)
    if op == Op.FC:
        k = s = p = d = (1, 1)
        out = (1, 1, int(rng.integers(1, 20)))
    else:
        k = tuple(int(rng.integers(1, min(4, n + 2))) for n in (h, w))
        s = tuple(int(v) for v in rng.integers(1, 3, size=2, endpoint=True))
        d = (1, 1) if pool else tuple(int(v) for v in rng.integers(1, 2, size=2, endpoint=True))
        p = tuple(int(rng.integers(0, dd * (kk - 1) + 1)) for kk, dd in zip(k, d, strict=True))
        oh, ow = conv_out_hw((h, w), k, s, p, d)
        if oh < 1 or ow < 1:  # kernel larger than the padded input: shrink to 1x1
            k, p, d, (oh, ow) = (1, 1), (0, 0), (1, 1), conv_out_hw((h, w), (1, 1), s, (0, 0),
                                                                     (1, 1))
        oc = c if pool else (c * int(rng.integers(1, 3)) if op == Op.DWCONV
                             else int(rng.integers(1, 17)))
        out = (oh, ow, oc)
    lo = int(rng.integers(-128, 128))
    act = (lo, int(rng.integers(lo, 128))) if rng.random() < 0.3 else (-128, 127)
    if pool:
        return QLayer(op, shape, out, kernel=k, stride=s, padding=p, act_min=act[0],
                      act_max=act[1])
    oc = out[2]
    wshape = {Op.CONV: (oc, *k, c), Op.DWCONV: (1, *k, oc), Op.FC: (oc, h * w * c)}[op]
    # 30 % full-range biases and shifts; multipliers as TFLite emits them (see the top)
    full = rng.random() < 0.3
    return QLayer(
        op, shape, out, kernel=k, stride=s, padding=p, dilation=d,
        input_offset=int(rng.integers(-127, 129)), output_offset=int(rng.integers(-128, 128)),
        act_min=act[0], act_max=act[1],
        weights=rng.integers(-128, 128, size=wshape).astype(np.int8),
        bias=rng.integers(-(2**31) if full else -20000, 2**31 if full else 20000,
                          size=oc).astype(np.int32),
        multiplier=rng.integers(1 << 30, 1 << 31, size=oc).astype(np.int32),
        shift=(rng.integers(-31, 31, size=oc) if full
               else rng.integers(-14, 1, size=oc)).astype(np.int32))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=random_backbone())
def test_random_layers_bit_exact_on_target(bb_dut: Device, case: tuple[QBackbone, int]) -> None:
    dut = bb_dut
    bb, seed = case
    n_in = int(np.prod(bb.input_shape))
    # One FEATURES response must hold one sample's features (the device NAKs otherwise).
    assume(bb.n_features <= dut.max_payload - 4)
    n = max(1, min(6, (dut.max_payload - 4) // max(bb.n_features, 1)))
    x = np.random.default_rng(seed ^ 0x5EED).integers(-128, 128, size=(n, n_in)).astype(np.int8)
    dut.load_backbone(bb)
    dut.data_config(n_in, "s8", 1.0, 0.0, n)
    dut.write_samples(0, np.zeros(n, np.uint8), x)
    got = dut.features(0, n)
    want = bb.forward(x)
    assert np.array_equal(got, want), (
        f"seed {seed}: {[(lay.op.name, lay.in_shape, lay.out_shape) for lay in bb.layers]}")
