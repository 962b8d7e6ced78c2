"""The data set crosses the link once (issue 14): DATA_INFO's content hash, RESET keeping
the stored samples unless asked to drop them, and `Device.ensure_samples` uploading only
when the device's set differs. Real native firmware over pipes."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rig import protocol as P
from rig.errors import DeviceNak
from tests.test_device_native import NativeFw, native_fw  # noqa: F401 - fixture

M = P.MsgType


@pytest.fixture
def fw(native_fw: Path, tmp_path: Path) -> Iterator[NativeFw]:  # noqa: F811
    inst = NativeFw(native_fw, tmp_path)
    yield inst
    inst.close()


def _samples(n: int = 40, nf: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 10, n).astype(np.uint8),
            rng.integers(0, 17, (n, nf)).astype(np.uint8))


def test_data_info_hash_matches_zlib_over_config_and_records(fw: NativeFw) -> None:
    labels, q = _samples()
    assert fw.dev.data_info().state == P.DataState.NONE
    fw.dev.data_config(q.shape[1], "u8", 0.0625, 0.0, len(labels))
    half = fw.dev.data_info()
    assert (half.state, half.n_written, half.crc32) == (P.DataState.PARTIAL, 0, 0)
    fw.dev.write_samples(0, labels[:10], q[:10])
    fw.dev.write_samples(0, labels[:10], q[:10])  # rewriting counts each sample once
    assert fw.dev.data_info().n_written == 10
    fw.dev.write_samples(10, labels[10:], q[10:])
    info = fw.dev.data_info()
    cfg = P.DataConfig(q.shape[1], P.DType.U8, 0.0625, 0.0, len(labels))
    records = P.encode_records(labels, q, "u8")
    # Independently computed here: zlib over the DATA_CONFIG payload, then the records.
    assert info.crc32 == zlib.crc32(cfg.pack() + records) == P.dataset_hash(cfg, records)
    assert (info.state, info.dtype, info.n_features, info.n_samples, info.n_written) == (
        P.DataState.COMPLETE, P.DType.U8, q.shape[1], len(labels), len(labels))
    assert (info.scale, info.zero_point) == (0.0625, 0.0)
    # One changed pixel changes the hash.
    q2 = q.copy()
    q2[7, 3] ^= 1
    fw.dev.write_samples(7, labels[7:8], q2[7:8])
    assert fw.dev.data_info().crc32 == P.dataset_hash(cfg, P.encode_records(labels, q2, "u8"))
    assert fw.dev.data_info().crc32 != info.crc32


def test_reset_keeps_data_unless_drop_flag(fw: NativeFw) -> None:
    labels, q = _samples()
    fw.dev.data_config(q.shape[1], "u8", 1.0, 0.0, len(labels))
    fw.dev.write_samples(0, labels, q)
    before = fw.dev.data_info()
    fw.dev.reset()
    assert fw.dev.data_info() == before
    # The kept samples train: a model and a config are all a new run needs.
    fw.dev.model_init([q.shape[1], 10])
    fw.dev.train_config(0.1, 0.0, "full")
    fw.dev.train_step([0, 1, 2])
    fw.dev.reset(drop_data=True)
    assert fw.dev.data_info().state == P.DataState.NONE
    fw.dev.model_init([q.shape[1], 10])
    fw.dev.train_config(0.1, 0.0, "full")
    with pytest.raises(DeviceNak) as exc:
        fw.dev.train_step([0])
    assert exc.value.reason == P.NakReason.BAD_STATE


def test_reset_flags_validated_and_nak_changes_nothing(fw: NativeFw) -> None:
    labels, q = _samples()
    fw.dev.data_config(q.shape[1], "u8", 1.0, 0.0, len(labels))
    fw.dev.write_samples(0, labels, q)
    fw.dev.model_init([q.shape[1], 10])
    before = fw.dev.data_info()
    for payload, reason in ((b"\x02", P.NakReason.BAD_ARG), (b"\x01\x00", P.NakReason.BAD_LENGTH)):
        with pytest.raises(DeviceNak) as exc:
            fw.link.request(M.RESET, payload)
        assert exc.value.reason == reason
    assert fw.dev.data_info() == before
    assert fw.dev.read_params(0, "bias", count=10).shape == (10,)  # model still there
    with pytest.raises(DeviceNak) as exc:
        fw.link.request(M.DATA_INFO, b"\x00")
    assert exc.value.reason == P.NakReason.BAD_LENGTH


def test_ensure_samples_uploads_only_when_the_hash_differs(fw: NativeFw) -> None:
    labels, q = _samples(n=60)
    by_type = fw.link.stats.payload_tx_by_type
    assert fw.dev.ensure_samples(q.shape[1], "u8", 1.0, 0.0, labels, q) is True
    first = by_type["DATA_WRITE"]
    per_packet = (fw.dev.max_payload - 8) // (1 + q.shape[1])
    packets = -(-len(labels) // per_packet)
    assert first == len(P.encode_records(labels, q, "u8")) + 8 * packets
    fw.dev.reset()
    assert fw.dev.ensure_samples(q.shape[1], "u8", 1.0, 0.0, labels, q) is False
    assert by_type["DATA_WRITE"] == first and by_type["DATA_CONFIG"] == 16
    q2 = q.copy()
    q2[-1, -1] += 1
    assert fw.dev.ensure_samples(q.shape[1], "u8", 1.0, 0.0, labels, q2) is True
    assert by_type["DATA_WRITE"] == 2 * first
    assert fw.dev.ensure_samples(q.shape[1], "u8", 0.5, 0.0, labels, q2) is True  # scale
    assert fw.dev.data_info().crc32 == P.dataset_hash(
        P.DataConfig(q.shape[1], P.DType.U8, 0.5, 0.0, len(labels)),
        P.encode_records(labels, q2, "u8"))


def test_data_info_roundtrip() -> None:
    info = P.DataInfo(2, 1, 64, 1797, 0.0625, 0.0, 1797, 0xDEADBEEF)
    assert len(info.pack()) == P.DataInfo.SIZE
    assert P.DataInfo.unpack(info.pack()) == info


# --- PARAM_DIGEST: the lockstep read-back (rig.resync) ----------------------------------

def test_param_digest_rebuilds_device_params_exactly(fw: NativeFw) -> None:
    from rig.resync import ResyncStats, read_params_digest, rebuild

    rng = np.random.default_rng(3)
    dims = [30, 9, 4]  # 319 parameters: two CRC blocks
    model = [(rng.standard_normal((dims[i + 1], dims[i])).astype(np.float32),
              rng.standard_normal(dims[i + 1]).astype(np.float32)) for i in range(2)]
    fw.dev.load_model(model)
    flat = np.concatenate([t.reshape(-1) for layer in model for t in layer])
    res = fw.dev.param_digest(0, flat.size, 8)
    assert res.crcs.tolist() == [zlib.crc32(flat[i:i + P.DIGEST_BLOCK].astype("<f4").tobytes())
                                 for i in range(0, flat.size, P.DIGEST_BLOCK)]

    assert np.array_equal(res.low, flat.view("<u4") & 0xFF)
    res16 = fw.dev.param_digest(5, 20, 16)
    assert np.array_equal(res16.low, flat[5:25].view("<u4") & 0xFFFF)
    res4 = fw.dev.param_digest(3, 257, 4)  # odd count: the last byte holds one nibble
    assert np.array_equal(res4.low, flat[3:260].view("<u4") & 0xF)
    assert res4.crcs.tolist() == [zlib.crc32(flat[3:259].tobytes()),
                                  zlib.crc32(flat[259:260].tobytes())]
    # A golden model a few ulp off (and one value far off): rebuilt exactly, the far one
    # by the PARAM_READ fallback that the CRC mismatch triggers.
    near = [(np.nextafter(w, np.float32(np.inf)), b.copy()) for w, b in model]
    near[1][1][2] += 1.0
    stats = ResyncStats()
    back = read_params_digest(fw.dev, near, stats=stats)
    for (w, b), (w2, b2) in zip(model, back, strict=True):
        assert np.array_equal(w.view("<u4"), w2.view("<u4"))
        assert np.array_equal(b.view("<u4"), b2.view("<u4"))
    assert stats.fallbacks == 1
    back4 = read_params_digest(fw.dev, near, bits=4)
    assert all(np.array_equal(a.view("<u4"), b.view("<u4"))
               for layer, layer4 in zip(model, back4, strict=True)
               for a, b in zip(layer, layer4, strict=True))
    crc_only = fw.dev.param_digest(0, flat.size, 0)  # CRCs only: 8 bytes for 319 values
    assert crc_only.crcs.tolist() == res.crcs.tolist()
    assert len(P.DigestResult(crc_only.crcs, crc_only.low).pack(0)) == 8
    exact = read_params_digest(fw.dev, model, bits=0)
    assert all(np.array_equal(a.view("<u4"), b.view("<u4"))
               for layer, layer0 in zip(model, exact, strict=True)
               for a, b in zip(layer, layer0, strict=True))
    # rebuild alone: within ±127 ulp exact, sign and all
    vals = np.array([1.0, -2.5, 3e-5, -7e9], np.float32)
    off = (vals.view("<u4").astype(np.int64) + np.array([100, -100, 3, -127])).astype("<u4")
    assert np.array_equal(rebuild(off.view("<f4"), vals.view("<u4") & 0xFF, 8), vals)


def test_param_digest_validates(fw: NativeFw) -> None:
    with pytest.raises(DeviceNak) as exc:
        fw.dev.param_digest(0, 1)
    assert exc.value.reason == P.NakReason.BAD_STATE
    fw.dev.model_init([4, 3])
    n = 4 * 3 + 3
    for req, reason in ((P.ParamDigest(0, n + 1), P.NakReason.BAD_ARG),
                        (P.ParamDigest(1, n), P.NakReason.BAD_ARG),
                        (P.ParamDigest(0, n, 12), P.NakReason.BAD_ARG),
                        (P.ParamDigest(0, n, 2), P.NakReason.BAD_ARG),
                        (P.ParamDigest(0, fw.dev.max_payload, 8), P.NakReason.BAD_ARG)):
        # (the last: count*1 + 4*blocks > max_payload, whatever the model size)
        with pytest.raises(DeviceNak) as exc:
            fw.link.request(M.PARAM_DIGEST, req.pack())
        assert exc.value.reason == reason, req
    assert fw.dev.param_digest(0, n).low.size == n


def test_digest_reader_crc_only_until_a_block_differs(fw: NativeFw) -> None:
    """CRCs only while the golden model is bit-exact; a block that differs is read with
    PARAM_READ and the next read carries low bits, which rebuild a few-ulp difference
    without PARAM_READ; after a clean read it is CRCs only again."""
    from rig.resync import DigestReader

    rng = np.random.default_rng(5)
    dims = [40, 12, 5]  # 557 parameters: three CRC blocks
    model = [(rng.standard_normal((dims[i + 1], dims[i])).astype(np.float32),
              rng.standard_normal(dims[i + 1]).astype(np.float32)) for i in range(2)]
    fw.dev.load_model(model)
    reader = DigestReader()
    tx = fw.link.stats.payload_tx_by_type
    rx_before = fw.link.stats.payload_rx

    def same(back: list[tuple[np.ndarray, np.ndarray]]) -> bool:
        return all(np.array_equal(a.view("<u4"), b.view("<u4"))
                   for layer, got in zip(model, back, strict=True)
                   for a, b in zip(layer, got, strict=True))

    assert same(reader.read(fw.dev, model))
    assert fw.link.stats.payload_rx - rx_before == 12  # three CRCs, no low bits
    assert (reader.stats.fallbacks, reader.last_clean) == (0, True)
    off = [(np.nextafter(w, np.float32(np.inf)), b.copy()) for w, b in model]
    reads = tx["PARAM_READ"]
    assert same(reader.read(fw.dev, off))  # CRCs only: every block re-read
    assert (reader.stats.fallbacks, reader.last_clean) == (3, False)
    assert tx["PARAM_READ"] > reads
    reads = tx["PARAM_READ"]
    assert same(reader.read(fw.dev, off))  # low bits: rebuilt, no PARAM_READ
    assert (tx["PARAM_READ"], reader.stats.fallbacks, reader.last_clean) == (reads, 3, True)
    rx_before = fw.link.stats.payload_rx
    assert same(reader.read(fw.dev, model))
    assert fw.link.stats.payload_rx - rx_before == 12


def test_digest_reader_uses_low_bits_on_firmware_without_crc_only(fw: NativeFw) -> None:
    """A firmware built before `bits` 0 NAKs it BAD_ARG (detail 6): the reader retries with
    low bits and keeps them."""
    from rig.resync import DigestReader

    fw.dev.model_init([6, 3])
    model = fw.dev.read_model()
    real = fw.dev.param_digest
    asked: list[int] = []

    def old_firmware(offset: int, count: int, bits: int = 8,
                     timeout: float | None = None) -> P.DigestResult:
        asked.append(bits)
        if bits == 0:  # what a firmware of the earlier protocol answers
            raise DeviceNak(P.NakReason.BAD_ARG, "BAD_ARG", int(M.PARAM_DIGEST), 6,
                            "bits: 4, 8 or 16")
        return real(offset, count, bits, timeout)

    fw.dev.param_digest = old_firmware  # type: ignore[method-assign]
    reader = DigestReader()
    reader.read(fw.dev, model)
    reader.read(fw.dev, model)
    assert asked == [0, 8, 8] and not reader.crc_only


def test_digest_reader_reads_in_full_from_firmware_without_param_digest(fw: NativeFw) -> None:
    """A firmware that predates PARAM_DIGEST NAKs it UNKNOWN_TYPE: the reader reads the
    parameters with PARAM_READ, and asks no more digests."""
    from rig.resync import DigestReader

    fw.dev.model_init([6, 3])
    model = fw.dev.read_model()
    asked: list[int] = []

    def no_digest(offset: int, count: int, bits: int = 8,
                  timeout: float | None = None) -> P.DigestResult:
        asked.append(bits)
        raise DeviceNak(P.NakReason.UNKNOWN_TYPE, "UNKNOWN_TYPE", int(M.PARAM_DIGEST), 0,
                        "unknown type")

    fw.dev.param_digest = no_digest  # type: ignore[method-assign]
    reader = DigestReader()
    for _ in range(2):
        back = reader.read(fw.dev, model)
        assert all(np.array_equal(a, b) for layer, got in zip(model, back, strict=True)
                   for a, b in zip(layer, got, strict=True))
    assert asked == [0] and not reader.digest and reader.stats.reads == 0
