"""The wire contract of docs/protocol.md on the host: constants and every payload layout.

This is the one place that knows byte layouts. Each payload is a dataclass with `pack()`
and `unpack(payload)` in both directions (requests too), so tests can play the device.
Nothing here does I/O. Everything is little-endian. One concept in one file on purpose
(~1,000 lines): splitting the layouts would scatter the contract the firmware mirrors.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from enum import IntEnum
from typing import ClassVar

import numpy as np

from rig import strategies
from rig.errors import ConfigError, PayloadError
from rig.faults import CFSR_BITS, HFSR_BITS, exception_name, fault_summary, flags

PROTO_VERSION = 1
HEADER_SIZE = 8
CRC_SIZE = 4
PACKET_OVERHEAD = HEADER_SIZE + CRC_SIZE
MAX_LEN_FIELD = 0xFFFF
RESPONSE_BIT = 0x80
FLAG_DUP = 0x01
NAK_TEXT_MAX = 64


class MsgType(IntEnum):
    HELLO = 0x01
    ECHO = 0x02
    RESET = 0x03
    STATS = 0x04
    BAUD_SET = 0x05
    DEBUG = 0x0F
    MODEL_INIT = 0x10
    PARAM_WRITE = 0x11
    PARAM_READ = 0x12
    TRAIN_CONFIG = 0x13
    BACKBONE_INIT = 0x14
    BACKBONE_WRITE = 0x15
    FEATURES = 0x16
    BACKBONE_INFO = 0x17
    DATA_CONFIG = 0x20
    DATA_WRITE = 0x21
    DATA_INFO = 0x22
    TRAIN_STEP = 0x30
    EVAL = 0x31
    SELECT = 0x32
    MASK_READ = 0x33
    UPDATE_READ = 0x34
    PARAM_DIGEST = 0x35
    FAULT = 0x7E
    NAK = 0x7F


def response_type(request_type: int) -> int:
    return request_type | RESPONSE_BIT


def type_name(t: int) -> str:
    """`HELLO`, `HELLO+resp` for a response, `0x45` for an unknown type."""
    base = t & ~RESPONSE_BIT if t & RESPONSE_BIT else t
    try:
        name = MsgType(base).name
    except ValueError:
        return f"0x{t:02x}"
    return f"{name}+resp" if t & RESPONSE_BIT else name


class NakReason(IntEnum):
    BAD_CRC = 1
    BAD_COBS = 2
    TOO_LONG = 3
    BAD_HEADER = 4
    UNKNOWN_TYPE = 5
    BAD_LENGTH = 6
    BAD_ARG = 7
    BAD_STATE = 8
    NO_SPACE = 9


#: NAK reasons that mean "the bytes got damaged": the host retransmits the same packet.
TRANSPORT_REASONS = frozenset({NakReason.BAD_CRC, NakReason.BAD_COBS, NakReason.TOO_LONG,
                               NakReason.BAD_HEADER})


def reason_name(reason: int) -> str:
    try:
        return NakReason(reason).name
    except ValueError:
        return f"reason {reason}"


class Which(IntEnum):
    WEIGHT = 0
    BIAS = 1


class DType(IntEnum):
    F32 = 0
    U8 = 1
    S8 = 2

    @property
    def numpy(self) -> np.dtype:
        return np.dtype({DType.F32: "<f4", DType.U8: "u1", DType.S8: "i1"}[self])

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @classmethod
    def coerce(cls, value: DType | int | str | np.dtype | type) -> DType:
        """Accept 0/1/2, "f32"/"u8"/"s8"/"int8"/..., or a numpy dtype."""
        if isinstance(value, DType):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        if isinstance(value, str) and value.lower() in ("f32", "u8", "s8"):
            return cls[value.upper()]
        dt = np.dtype(value)  # type: ignore[arg-type]  # numpy rejects what it must
        for member in cls:
            if member.numpy == dt.newbyteorder("<") or member.numpy == dt:
                return member
        raise ValueError(f"unsupported sample dtype {value!r} (f32, u8 or s8)")


class CounterKind(IntEnum):
    NONE = 0
    DWT = 1
    SYSTICK = 2

    @property
    def label(self) -> str:
        return {CounterKind.NONE: "none", CounterKind.DWT: "cycles (DWT)",
                CounterKind.SYSTICK: "SysTick ticks"}[self]


def counter_label(kind: int) -> str:
    try:
        return CounterKind(kind).label
    except ValueError:
        return f"unknown counter kind {kind}"


class DebugAction(IntEnum):
    FAULT = 1  # take a real fault (the handler sends a FAULT frame, then exits/halts)
    HANG = 2   # stop answering forever (lets the host test its timeouts)


def strategy_id(strategy: str | int) -> int:
    """The TRAIN_CONFIG byte for a strategy name (ConfigError with a suggestion if unknown);
    an int passes through (tests send ids the firmware does not know)."""
    if isinstance(strategy, int) and not isinstance(strategy, bool):
        if not 0 <= strategy <= 0xFF:
            raise ValueError(f"strategy id {strategy} out of range")
        return strategy
    return int(strategies.get(str(strategy)).id)


def strategy_name(sid: int) -> str:
    try:
        return strategies.get(sid).name
    except ConfigError:
        return f"strategy {sid}"


# --- helpers ---------------------------------------------------------------------------

def _need(payload: bytes, n: int, what: str, exact: bool = True) -> None:
    if (len(payload) != n) if exact else (len(payload) < n):
        cmp = "" if exact else "at least "
        raise PayloadError(f"{what}: expected {cmp}{n} bytes, got {len(payload)}")


def _f32(values: np.ndarray | Sequence[float]) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype="<f4").reshape(-1))


def _f32_from(payload: bytes, what: str) -> np.ndarray:
    if len(payload) % 4:
        raise PayloadError(f"{what}: {len(payload)} bytes is not a whole number of f32")
    return np.frombuffer(payload, dtype="<f4").astype(np.float32)


def _u8(value: int, what: str) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{what}={value} does not fit in u8")
    return value


def _u16(value: int, what: str) -> int:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{what}={value} does not fit in u16")
    return value


# --- payloads --------------------------------------------------------------------------

@dataclass(frozen=True)
class HelloInfo:
    proto_version: int
    counter_kind: int
    max_payload: int
    clock_hz: int
    param_capacity: int
    data_capacity: int
    max_layers: int
    max_width: int
    max_batch: int
    strategies: int  # bitmask, bit i = strategy id i
    board: str
    build_hash: str
    fw_version: str
    #: the link's current rate in baud and the rates BAUD_SET may switch it to (§4, §9);
    #: 0 and () where the link has no rate (the native build) or cannot switch
    link_baud: int = 0
    link_rates: tuple[int, ...] = ()

    _FIXED: ClassVar[struct.Struct] = struct.Struct("<BBHIIIHHHH")

    @property
    def counter_label(self) -> str:
        return counter_label(self.counter_kind)

    @property
    def strategy_names(self) -> list[str]:
        return [strategy_name(i) for i in range(16) if self.strategies >> i & 1]

    def supports(self, strategy: str | int) -> bool:
        return bool(self.strategies >> strategy_id(strategy) & 1)

    def pack(self) -> bytes:
        out = self._FIXED.pack(self.proto_version, self.counter_kind, self.max_payload,
                               self.clock_hz, self.param_capacity, self.data_capacity,
                               self.max_layers, self.max_width, self.max_batch, self.strategies)
        for text in (self.board, self.build_hash, self.fw_version):
            raw = text.encode()
            out += bytes([_u8(len(raw), "string length")]) + raw
        out += struct.pack("<IB", self.link_baud, _u8(len(self.link_rates), "rate count"))
        return out + struct.pack(f"<{len(self.link_rates)}I", *self.link_rates)

    @classmethod
    def unpack(cls, payload: bytes) -> HelloInfo:
        _need(payload, cls._FIXED.size + 3, "HELLO response", exact=False)
        fixed = cls._FIXED.unpack_from(payload)
        pos = cls._FIXED.size
        texts: list[str] = []
        for name in ("board", "build_hash", "fw_version"):
            if pos >= len(payload):
                raise PayloadError(f"HELLO response: truncated before {name}")
            n = payload[pos]
            raw = payload[pos + 1:pos + 1 + n]
            if len(raw) != n:
                raise PayloadError(f"HELLO response: {name} needs {n} bytes, {len(raw)} left")
            texts.append(raw.decode("ascii", errors="replace"))
            pos += 1 + n
        if len(payload) < pos + 5:
            raise PayloadError("HELLO response: truncated before the link rates")
        baud, n_rates = struct.unpack_from("<IB", payload, pos)
        pos += 5
        if len(payload) != pos + 4 * n_rates:
            raise PayloadError(f"HELLO response: {n_rates} link rates need {4 * n_rates} bytes,"
                               f" {len(payload) - pos} follow")
        rates = struct.unpack_from(f"<{n_rates}I", payload, pos)
        return replace(cls(*fixed, *texts), link_baud=baud, link_rates=tuple(rates))


@dataclass(frozen=True)
class BaudSet:
    """BAUD_SET request (§9): switch the link to `baud` once this response is out; the
    device goes back to its old rate unless a valid frame arrives within `revert_ms`.
    The response is the u32 rate it switched from."""

    baud: int
    revert_ms: int

    _S: ClassVar[struct.Struct] = struct.Struct("<IH")

    def pack(self) -> bytes:
        if not 1 <= self.revert_ms <= 0xFFFF:
            raise ValueError(f"revert_ms={self.revert_ms} does not fit in u16 (>= 1)")
        return self._S.pack(self.baud, self.revert_ms)


@dataclass(frozen=True)
class ModelInit:
    dims: tuple[int, ...]

    def pack(self) -> bytes:
        if len(self.dims) < 2:
            raise ValueError("a model needs at least an input and an output dimension")
        n_layers = _u8(len(self.dims) - 1, "n_layers")
        return struct.pack(f"<BB{len(self.dims)}H", n_layers, 0, *self.dims)

    @classmethod
    def unpack(cls, payload: bytes) -> ModelInit:
        _need(payload, 2, "MODEL_INIT", exact=False)
        n = payload[0]
        _need(payload, 2 + 2 * (n + 1), "MODEL_INIT")
        return cls(struct.unpack_from(f"<{n + 1}H", payload, 2))


def unpack_u32(payload: bytes, what: str) -> int:
    _need(payload, 4, what)
    return struct.unpack("<I", payload)[0]


@dataclass(frozen=True, eq=False)
class ParamWrite:
    layer: int
    which: int
    offset: int
    values: np.ndarray

    _HEAD: ClassVar[struct.Struct] = struct.Struct("<BBHI")
    OVERHEAD: ClassVar[int] = 8

    def pack(self) -> bytes:
        return self._HEAD.pack(self.layer, self.which, 0, self.offset) + _f32(self.values).tobytes()

    @classmethod
    def unpack(cls, payload: bytes) -> ParamWrite:
        _need(payload, cls._HEAD.size, "PARAM_WRITE", exact=False)
        layer, which, _, offset = cls._HEAD.unpack_from(payload)
        return cls(layer, which, offset, _f32_from(payload[cls._HEAD.size:], "PARAM_WRITE"))


@dataclass(frozen=True)
class TensorRead:
    """PARAM_READ and UPDATE_READ requests (same layout)."""

    layer: int
    which: int
    count: int
    offset: int

    _S: ClassVar[struct.Struct] = struct.Struct("<BBHI")

    def pack(self) -> bytes:
        return self._S.pack(self.layer, self.which, self.count, self.offset)

    @classmethod
    def unpack(cls, payload: bytes) -> TensorRead:
        _need(payload, cls._S.size, "PARAM_READ/UPDATE_READ")
        return cls(*cls._S.unpack(payload))


def unpack_f32(payload: bytes, count: int, what: str) -> np.ndarray:
    _need(payload, 4 * count, what)
    return _f32_from(payload, what)


#: PARAM_DIGEST values per CRC-32 block
DIGEST_BLOCK = 256


def digest_blocks(count: int) -> int:
    return -(-count // DIGEST_BLOCK)


@dataclass(frozen=True)
class ParamDigest:
    """PARAM_DIGEST request: values [offset, offset+count) of the flat parameter vector
    (W0 b0 W1 b1 …), answered with one CRC-32 per DIGEST_BLOCK values and the low `bits`
    (0, 4, 8 or 16) of each value (4: two a byte, the even-indexed value in the low nibble;
    0: CRCs only)."""

    offset: int
    count: int
    bits: int = 8

    _S: ClassVar[struct.Struct] = struct.Struct("<IHBB")

    def pack(self) -> bytes:
        return self._S.pack(self.offset, self.count, self.bits, 0)

    @classmethod
    def unpack(cls, payload: bytes) -> ParamDigest:
        _need(payload, cls._S.size, "PARAM_DIGEST")
        offset, count, bits, _ = cls._S.unpack(payload)
        return cls(offset, count, bits)

    @staticmethod
    def response_size(count: int, bits: int) -> int:
        return 4 * digest_blocks(count) + (count * bits + 7) // 8

    @staticmethod
    def max_count(max_payload: int, bits: int) -> int:
        """The most values one request can ask for: what one response can carry, at most
        the u16 `count` (CRCs only: 64 values a payload byte)."""
        n = min((max_payload * DIGEST_BLOCK * 8) // (32 + DIGEST_BLOCK * bits), 0xFFFF)
        while n < 0xFFFF and ParamDigest.response_size(n + 1, bits) <= max_payload:
            n += 1
        while n and ParamDigest.response_size(n, bits) > max_payload:
            n -= 1
        return n


@dataclass(frozen=True, eq=False)
class DigestResult:
    """PARAM_DIGEST response: zlib.crc32 of each block of DIGEST_BLOCK values (the last
    one shorter) as little-endian f32, and the low bits of each value's IEEE-754 pattern
    (uint8 or uint16)."""

    crcs: np.ndarray  # uint32 [blocks]
    low: np.ndarray  # bits 0: zeros

    def pack(self, bits: int = 8) -> bytes:
        low = np.asarray(self.low)
        if bits == 0:
            body = b""
        elif bits == 4:
            pairs = np.zeros(2 * -(-low.size // 2), np.uint8)
            pairs[:low.size] = low & 0x0F
            body = (pairs[0::2] | (pairs[1::2] << 4)).astype(np.uint8).tobytes()
        else:
            body = low.astype("<u1" if bits == 8 else "<u2").tobytes()
        return np.asarray(self.crcs, "<u4").tobytes() + body

    @classmethod
    def unpack(cls, payload: bytes, count: int, bits: int) -> DigestResult:
        _need(payload, ParamDigest.response_size(count, bits), "PARAM_DIGEST response")
        nb = digest_blocks(count)
        crcs = np.frombuffer(payload, "<u4", count=nb).astype(np.uint32)
        if bits == 0:
            return cls(crcs, np.zeros(count, np.uint8))
        if bits == 4:
            packed = np.frombuffer(payload, np.uint8, offset=4 * nb)
            low = np.empty(2 * packed.size, np.uint8)
            low[0::2], low[1::2] = packed & 0x0F, packed >> 4
            return cls(crcs, low[:count])
        low = np.frombuffer(payload, "<u1" if bits == 8 else "<u2", offset=4 * nb)
        return cls(crcs, low.copy())


@dataclass(frozen=True)
class TrainConfig:
    lr: float
    momentum: float
    strategy: int
    sparams: tuple[float, ...] = ()
    #: the largest TRAIN_STEP batch of this configuration (sizes the memory plan); 0: the
    #: board's max_batch (what a host sent before the field existed: it was reserved, 0)
    batch: int = 0

    _HEAD: ClassVar[struct.Struct] = struct.Struct("<ffBBH")

    def pack(self) -> bytes:
        n = _u8(len(self.sparams), "n_sparams")
        return (self._HEAD.pack(self.lr, self.momentum, _u8(self.strategy, "strategy"), n,
                                _u16(self.batch, "batch"))
                + struct.pack(f"<{n}f", *self.sparams))

    @classmethod
    def unpack(cls, payload: bytes) -> TrainConfig:
        _need(payload, cls._HEAD.size, "TRAIN_CONFIG", exact=False)
        lr, momentum, strategy, n, batch = cls._HEAD.unpack_from(payload)
        _need(payload, cls._HEAD.size + 4 * n, "TRAIN_CONFIG")
        return cls(lr, momentum, strategy, struct.unpack_from(f"<{n}f", payload, cls._HEAD.size),
                   batch)


@dataclass(frozen=True)
class DataConfig:
    n_features: int
    dtype: int
    scale: float
    zero_point: float
    n_samples: int

    _S: ClassVar[struct.Struct] = struct.Struct("<HBBffI")

    @property
    def record_size(self) -> int:
        return 1 + self.n_features * DType(self.dtype).itemsize

    def pack(self) -> bytes:
        return self._S.pack(self.n_features, self.dtype, 0, self.scale, self.zero_point,
                            self.n_samples)

    @classmethod
    def unpack(cls, payload: bytes) -> DataConfig:
        _need(payload, cls._S.size, "DATA_CONFIG")
        n_features, dtype, _, scale, zero_point, n_samples = cls._S.unpack(payload)
        return cls(n_features, dtype, scale, zero_point, n_samples)


#: RESET flags (optional u8 payload): bit 0 = drop the stored data set too
RESET_DROP_DATA = 0x01


class DataState(IntEnum):
    NONE = 0  # no DATA_CONFIG since the last drop
    PARTIAL = 1  # configured, not every sample written
    COMPLETE = 2  # every sample written: `crc32` identifies the set


@dataclass(frozen=True)
class DataInfo:
    """DATA_INFO response: what the device stores and its content hash. `crc32` is
    zlib.crc32 of the DATA_CONFIG payload followed by every record (0 unless complete)."""

    state: int
    dtype: int
    n_features: int
    n_samples: int
    scale: float
    zero_point: float
    n_written: int
    crc32: int

    _S: ClassVar[struct.Struct] = struct.Struct("<BBHIffII")
    SIZE: ClassVar[int] = 24

    @property
    def complete(self) -> bool:
        return self.state == DataState.COMPLETE

    def pack(self) -> bytes:
        return self._S.pack(self.state, self.dtype, self.n_features, self.n_samples,
                            self.scale, self.zero_point, self.n_written, self.crc32)

    @classmethod
    def unpack(cls, payload: bytes) -> DataInfo:
        _need(payload, cls.SIZE, "DATA_INFO response")
        return cls(*cls._S.unpack(payload))


def dataset_hash(config: DataConfig, records: bytes) -> int:
    """The content hash DATA_INFO reports for `config` with all `records` written."""
    return zlib.crc32(records, zlib.crc32(config.pack()))


def encode_records(labels: np.ndarray | Sequence[int], features: np.ndarray,
                   dtype: DType | int | str) -> bytes:
    """Samples as DATA_WRITE records: `u8 label` then the features in `dtype`."""
    dt = DType.coerce(dtype)
    lab = np.asarray(labels)
    feat = np.asarray(features)
    if feat.ndim != 2 or lab.shape != (feat.shape[0],):
        raise ValueError(f"labels {lab.shape} and features {feat.shape} do not match"
                         " (want (n,) and (n, n_features))")
    if lab.size and (lab.min() < 0 or lab.max() > 0xFF):
        raise ValueError("labels must fit in u8")
    if feat.dtype.kind != dt.numpy.kind and not (dt == DType.F32 and feat.dtype.kind in "fiu"):
        raise ValueError(f"features have dtype {feat.dtype}, the data is {dt.name}")
    cast = feat.astype(dt.numpy, casting="same_kind" if dt == DType.F32 else "unsafe")
    if dt != DType.F32 and not np.array_equal(cast, feat):
        raise ValueError(f"features do not fit {dt.name} exactly")
    rows = np.empty((feat.shape[0], 1 + feat.shape[1] * dt.itemsize), dtype=np.uint8)
    rows[:, 0] = lab.astype(np.uint8)
    rows[:, 1:] = np.ascontiguousarray(cast).view(np.uint8).reshape(feat.shape[0], -1)
    return rows.tobytes()


def decode_records(records: bytes, n_features: int, dtype: DType | int | str
                   ) -> tuple[np.ndarray, np.ndarray]:
    dt = DType.coerce(dtype)
    size = 1 + n_features * dt.itemsize
    if len(records) % size:
        raise PayloadError(f"{len(records)} record bytes is not a multiple of {size}")
    rows = np.frombuffer(records, dtype=np.uint8).reshape(-1, size)
    feats = np.ascontiguousarray(rows[:, 1:]).view(dt.numpy).reshape(-1, n_features)
    return rows[:, 0].copy(), feats.copy()


@dataclass(frozen=True)
class DataWrite:
    start: int
    count: int
    records: bytes

    _HEAD: ClassVar[struct.Struct] = struct.Struct("<IHH")
    OVERHEAD: ClassVar[int] = 8

    def pack(self) -> bytes:
        return self._HEAD.pack(self.start, self.count, 0) + bytes(self.records)

    @classmethod
    def unpack(cls, payload: bytes) -> DataWrite:
        _need(payload, cls._HEAD.size, "DATA_WRITE", exact=False)
        start, count, _ = cls._HEAD.unpack_from(payload)
        return cls(start, count, bytes(payload[cls._HEAD.size:]))


@dataclass(frozen=True, eq=False)
class TrainStep:
    indices: np.ndarray

    OVERHEAD: ClassVar[int] = 4

    def pack(self) -> bytes:
        idx = np.asarray(self.indices).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() > 0xFFFF):
            raise ValueError("sample indices must fit in u16")
        return struct.pack("<HH", idx.size, 0) + idx.astype("<u2").tobytes()

    @classmethod
    def unpack(cls, payload: bytes) -> TrainStep:
        _need(payload, 4, "TRAIN_STEP", exact=False)
        (batch,) = struct.unpack_from("<H", payload)
        _need(payload, 4 + 2 * batch, "TRAIN_STEP")
        return cls(np.frombuffer(payload, dtype="<u2", offset=4).astype(np.uint16))


#: the four counter phases of a TRAIN_STEP response, in order
PHASES: tuple[str, ...] = ("forward", "backward", "selection", "update")


@dataclass(frozen=True)
class StepResult:
    loss: float
    correct: int
    skipped: bool
    k: tuple[int, ...]
    counters: tuple[int, int, int, int]  # forward, backward, selection, update

    PHASES: ClassVar[tuple[str, ...]] = PHASES

    @property
    def phase_counters(self) -> dict[str, int]:
        return dict(zip(self.PHASES, self.counters, strict=True))

    def pack(self) -> bytes:
        n = len(self.k)
        return (struct.pack("<fHBB", self.loss, self.correct, int(self.skipped), n)
                + struct.pack(f"<{n}H4I", *self.k, *self.counters))

    @classmethod
    def unpack(cls, payload: bytes) -> StepResult:
        _need(payload, 8, "TRAIN_STEP response", exact=False)
        loss, correct, skipped, n = struct.unpack_from("<fHBB", payload)
        _need(payload, 8 + 2 * n + 16, "TRAIN_STEP response")
        vals = struct.unpack_from(f"<{n}H4I", payload, 8)
        return cls(loss, correct, bool(skipped), tuple(vals[:n]), tuple(vals[n:]))


@dataclass(frozen=True)
class RangeRequest:
    """EVAL and SELECT requests: `u32 start, u16 count, u16 reserved`."""

    start: int
    count: int

    _S: ClassVar[struct.Struct] = struct.Struct("<IHH")

    def pack(self) -> bytes:
        return self._S.pack(self.start, self.count, 0)

    @classmethod
    def unpack(cls, payload: bytes) -> RangeRequest:
        _need(payload, cls._S.size, "EVAL/SELECT")
        start, count, _ = cls._S.unpack(payload)
        return cls(start, count)


@dataclass(frozen=True, eq=False)
class EvalResult:
    loss_sum: float
    correct: int
    count: int
    pred: np.ndarray = field(repr=False)

    OVERHEAD: ClassVar[int] = 8

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / self.count if self.count else float("nan")

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else float("nan")

    def pack(self) -> bytes:
        return (struct.pack("<fHH", self.loss_sum, self.correct, self.count)
                + np.asarray(self.pred, dtype=np.uint8).tobytes())

    @classmethod
    def unpack(cls, payload: bytes) -> EvalResult:
        _need(payload, 8, "EVAL response", exact=False)
        loss_sum, correct, count = struct.unpack_from("<fHH", payload)
        _need(payload, 8 + count, "EVAL response")
        return cls(loss_sum, correct, count, np.frombuffer(payload, np.uint8, offset=8).copy())


@dataclass(frozen=True)
class SelectResult:
    k: tuple[int, ...]
    trainable_params: int

    def pack(self) -> bytes:
        n = len(self.k)
        return struct.pack(f"<BB{n}HI", n, 0, *self.k, self.trainable_params)

    @classmethod
    def unpack(cls, payload: bytes) -> SelectResult:
        _need(payload, 2, "SELECT response", exact=False)
        n = payload[0]
        _need(payload, 2 + 2 * n + 4, "SELECT response")
        vals = struct.unpack_from(f"<{n}HI", payload, 2)
        return cls(tuple(vals[:n]), vals[n])


@dataclass(frozen=True)
class MaskRead:
    layer: int

    def pack(self) -> bytes:
        return struct.pack("<BBH", self.layer, 0, 0)

    @classmethod
    def unpack(cls, payload: bytes) -> MaskRead:
        _need(payload, 4, "MASK_READ")
        return cls(payload[0])


@dataclass(frozen=True, eq=False)
class Mask:
    row_mask: np.ndarray   # bool [n]: weights of output neuron j were updated
    bias_mask: np.ndarray  # bool [n]

    @property
    def k(self) -> int:
        return int(self.row_mask.sum())

    def pack(self) -> bytes:
        rows = np.asarray(self.row_mask, dtype=bool).astype(np.uint8)
        bias = np.asarray(self.bias_mask, dtype=bool).astype(np.uint8)
        return struct.pack("<H", rows.size) + rows.tobytes() + bias.tobytes()

    @classmethod
    def unpack(cls, payload: bytes) -> Mask:
        _need(payload, 2, "MASK_READ response", exact=False)
        (n,) = struct.unpack_from("<H", payload)
        _need(payload, 2 + 2 * n, "MASK_READ response")
        raw = np.frombuffer(payload, np.uint8, offset=2)
        return cls(raw[:n] != 0, raw[n:] != 0)


@dataclass(frozen=True)
class Nak:
    reason: int
    request_type: int
    detail: int
    text: str

    _HEAD: ClassVar[struct.Struct] = struct.Struct("<BBH")

    @property
    def reason_name(self) -> str:
        return reason_name(self.reason)

    @property
    def is_transport(self) -> bool:
        return self.reason in TRANSPORT_REASONS

    def pack(self) -> bytes:
        return (self._HEAD.pack(self.reason, self.request_type, self.detail)
                + self.text.encode("ascii", errors="replace")[:NAK_TEXT_MAX])

    @classmethod
    def unpack(cls, payload: bytes) -> Nak:
        _need(payload, 4, "NAK", exact=False)
        reason, request_type, detail = cls._HEAD.unpack_from(payload)
        text = payload[4:].split(b"\x00", 1)[0].decode("ascii", errors="replace")
        return cls(reason, request_type, detail, text)


@dataclass(frozen=True)
class Debug:
    action: int

    def pack(self) -> bytes:
        return bytes([_u8(self.action, "action")])

    @classmethod
    def unpack(cls, payload: bytes) -> Debug:
        _need(payload, 1, "DEBUG")
        return cls(payload[0])


@dataclass(frozen=True)
class Stats:
    """STATS response: the firmware's memory use and receive-path trouble. `stack_used` is
    the high-water mark of the painted stack since boot or RESET (0 and 0 on the native
    build: not measured); `rx_overruns` counts the times the UART lost received data, `rx_ring_full`
    the times the RX ring filled and reception paused; `arena_used` is the high-water mark
    of the training arena's layouts since RESET and `arena_size` its size (protocol §8)."""

    stack_used: int
    stack_size: int
    static_ram: int
    rx_overruns: int = 0
    rx_ring_full: int = 0
    arena_used: int = 0
    arena_size: int = 0

    _S: ClassVar[struct.Struct] = struct.Struct("<IIIIIII")

    def pack(self) -> bytes:
        return self._S.pack(self.stack_used, self.stack_size, self.static_ram,
                            self.rx_overruns, self.rx_ring_full, self.arena_used,
                            self.arena_size)

    @classmethod
    def unpack(cls, payload: bytes) -> Stats:
        _need(payload, cls._S.size, "STATS response")
        return cls(*cls._S.unpack(payload))


# --- int8 backbone (BACKBONE_INIT / _WRITE / FEATURES / BACKBONE_INFO) -------------------

class BackboneOp(IntEnum):
    """Layer op codes of BACKBONE_INIT (docs/protocol.md)."""

    CONV = 0
    DWCONV = 1
    FC = 2
    AVGPOOL = 3
    MAXPOOL = 4

    @property
    def has_params(self) -> bool:
        """Ops whose weights and biases travel in the BACKBONE_WRITE blob."""
        return self in (BackboneOp.CONV, BackboneOp.DWCONV, BackboneOp.FC)


class KernelImpl(IntEnum):
    """BACKBONE_INFO `kernels`: which int8 kernels the firmware links."""

    TINYRIG_C = 0
    TINYRIG_DSP = 1
    CMSIS_NN = 2


@dataclass(frozen=True)
class BackboneLayerRecord:
    """One 28-byte layer record of BACKBONE_INIT (input shape = previous output)."""

    op: int
    kernel: tuple[int, int] = (1, 1)  # (h, w)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    out_shape: tuple[int, int, int] = (1, 1, 1)  # (h, w, c)
    input_offset: int = 0
    output_offset: int = 0
    act_min: int = -128
    act_max: int = 127

    _S: ClassVar[struct.Struct] = struct.Struct("<9BB3HiibbH")
    SIZE: ClassVar[int] = 28

    def pack(self) -> bytes:
        return self._S.pack(self.op, *self.kernel, *self.stride, *self.padding, *self.dilation,
                            0, *self.out_shape, self.input_offset, self.output_offset,
                            self.act_min, self.act_max, 0)

    @classmethod
    def unpack(cls, raw: bytes) -> BackboneLayerRecord:
        _need(raw, cls.SIZE, "BACKBONE_INIT layer record")
        v = cls._S.unpack(raw)
        return cls(v[0], (v[1], v[2]), (v[3], v[4]), (v[5], v[6]), (v[7], v[8]),
                   (v[10], v[11], v[12]), v[13], v[14], v[15], v[16])


@dataclass(frozen=True)
class BackboneInit:
    """BACKBONE_INIT request. No layers = remove the backbone."""

    in_shape: tuple[int, int, int]
    out_scale: float
    out_zero_point: int
    blob_size: int
    blob_crc32: int
    layers: tuple[BackboneLayerRecord, ...] = ()

    _HEAD: ClassVar[struct.Struct] = struct.Struct("<BB3HfiIII")
    HEADER: ClassVar[int] = 28

    def pack(self) -> bytes:
        n = _u8(len(self.layers), "n_layers")
        return (self._HEAD.pack(n, 0, *self.in_shape, self.out_scale, self.out_zero_point,
                                self.blob_size, self.blob_crc32, 0)
                + b"".join(layer.pack() for layer in self.layers))

    @classmethod
    def unpack(cls, payload: bytes) -> BackboneInit:
        _need(payload, cls.HEADER, "BACKBONE_INIT", exact=False)
        n, _, h, w, c, scale, zp, size, crc, _ = cls._HEAD.unpack_from(payload)
        _need(payload, cls.HEADER + n * BackboneLayerRecord.SIZE, "BACKBONE_INIT")
        rec = BackboneLayerRecord.SIZE
        layers = tuple(BackboneLayerRecord.unpack(payload[cls.HEADER + i * rec:
                                                          cls.HEADER + (i + 1) * rec])
                       for i in range(n))
        return cls((h, w, c), scale, zp, size, crc, layers)


@dataclass(frozen=True)
class BackboneInitResult:
    blob_size: int
    n_features: int
    act_bytes: int  # largest activation tensor (one of two buffers)
    scratch_bytes: int  # largest kernel scratch buffer
    macs: int  # multiply-accumulates per sample

    _S: ClassVar[struct.Struct] = struct.Struct("<IHHIII")

    def pack(self) -> bytes:
        return self._S.pack(self.blob_size, self.n_features, 0, self.act_bytes,
                            self.scratch_bytes, self.macs)

    @classmethod
    def unpack(cls, payload: bytes) -> BackboneInitResult:
        _need(payload, cls._S.size, "BACKBONE_INIT response")
        size, nf, _, act, scratch, macs = cls._S.unpack(payload)
        return cls(size, nf, act, scratch, macs)


@dataclass(frozen=True)
class BackboneWrite:
    offset: int
    data: bytes

    OVERHEAD: ClassVar[int] = 4

    def pack(self) -> bytes:
        return struct.pack("<I", self.offset) + bytes(self.data)

    @classmethod
    def unpack(cls, payload: bytes) -> BackboneWrite:
        _need(payload, 4, "BACKBONE_WRITE", exact=False)
        return cls(struct.unpack_from("<I", payload)[0], bytes(payload[4:]))


@dataclass(frozen=True, eq=False)
class FeaturesResult:
    """FEATURES response: int8 backbone output [count][n_features]."""

    features: np.ndarray

    OVERHEAD: ClassVar[int] = 4

    def pack(self) -> bytes:
        f = np.asarray(self.features, dtype=np.int8)
        return struct.pack("<HH", f.shape[0], f.shape[1]) + f.tobytes()

    @classmethod
    def unpack(cls, payload: bytes) -> FeaturesResult:
        _need(payload, 4, "FEATURES response", exact=False)
        count, nf = struct.unpack_from("<HH", payload)
        _need(payload, 4 + count * nf, "FEATURES response")
        return cls(np.frombuffer(payload, np.int8, offset=4).reshape(count, nf).copy())


@dataclass(frozen=True)
class BackboneInfo:
    param_capacity: int
    act_capacity: int
    scratch_capacity: int
    max_layers: int
    kernels: int  # KernelImpl
    state: int  # 0 none, 1 loaded (blob not verified yet), 2 verified
    n_layers: int
    n_features: int
    blob_size: int
    max_sample_features: int  # DATA_CONFIG n_features limit (backbone input size)

    _S: ClassVar[struct.Struct] = struct.Struct("<IIIHBBHHIHH")
    SIZE: ClassVar[int] = 28

    @property
    def kernels_name(self) -> str:
        try:
            return {KernelImpl.TINYRIG_C: "tinyrig (plain C)",
                    KernelImpl.TINYRIG_DSP: "tinyrig (Cortex-M DSP)",
                    KernelImpl.CMSIS_NN: "CMSIS-NN"}[KernelImpl(self.kernels)]
        except ValueError:
            return f"kernels {self.kernels}"

    def pack(self) -> bytes:
        return self._S.pack(self.param_capacity, self.act_capacity, self.scratch_capacity,
                            self.max_layers, self.kernels, self.state, self.n_layers,
                            self.n_features, self.blob_size, self.max_sample_features, 0)

    @classmethod
    def unpack(cls, payload: bytes) -> BackboneInfo:
        _need(payload, cls.SIZE, "BACKBONE_INFO response")
        return cls(*cls._S.unpack(payload)[:-1])


# --- fault frames ----------------------------------------------------------------------

@dataclass(frozen=True)
class FaultInfo:
    exception: int
    r0: int
    r1: int
    r2: int
    r3: int
    r12: int
    lr: int
    pc: int
    xpsr: int
    cfsr: int
    hfsr: int
    mmfar: int
    bfar: int

    _S: ClassVar[struct.Struct] = struct.Struct("<13I")
    SIZE: ClassVar[int] = 52

    def registers(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def exception_name(self) -> str:
        return exception_name(self.exception)

    @property
    def cfsr_flags(self) -> list[str]:
        return flags(CFSR_BITS, self.cfsr)

    @property
    def hfsr_flags(self) -> list[str]:
        return flags(HFSR_BITS, self.hfsr)

    def summary(self) -> str:
        """One paragraph a lab engineer can act on."""
        return fault_summary(self.exception, self.pc, self.lr, self.cfsr, self.hfsr,
                             self.mmfar, self.bfar)

    def pack(self) -> bytes:
        return self._S.pack(*self.registers().values())

    @classmethod
    def unpack(cls, payload: bytes) -> FaultInfo:
        _need(payload, cls.SIZE, "FAULT")
        return cls(*cls._S.unpack(payload))

