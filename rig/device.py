"""The typed client of the training firmware (docs/protocol.md §3).

`Device(link)` turns every message into a method with numpy in and out, splits bulk
transfers into packets that fit the device's `max_payload`, and gives each request a
timeout that grows with the bytes it moves and the arithmetic it asks for.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rig.errors import DeviceFault, DeviceNak, LinkError

if TYPE_CHECKING:
    from rig.golden.int8 import QBackbone
from rig.link.errors import FrameTooBig
from rig.link.link import Link, Preload
from rig.protocol import (
    RESET_DROP_DATA,
    BackboneInfo,
    BackboneInit,
    BackboneInitResult,
    BackboneLayerRecord,
    BackboneWrite,
    DataConfig,
    DataInfo,
    DataWrite,
    Debug,
    DebugAction,
    DigestResult,
    DType,
    EvalResult,
    FeaturesResult,
    HelloInfo,
    Mask,
    MaskRead,
    ModelInit,
    MsgType,
    NakReason,
    ParamDigest,
    ParamWrite,
    RangeRequest,
    SelectResult,
    Stats,
    StepResult,
    TensorRead,
    TrainConfig,
    TrainStep,
    Which,
    dataset_hash,
    encode_records,
    strategy_id,
    unpack_f32,
    unpack_u32,
)


@dataclass
class Timing:
    """How long a request may take: `base + bytes/byte_rate + macs/mac_rate` seconds.

    The defaults are pessimistic on purpose (a Cortex-M0 with soft float; QEMU's UART,
    measured at 3-15 kB/s host to device with stalls of several hundred ms) so nothing
    times out on a slow but healthy target; a hung target is still detected within
    seconds for small requests. A timeout that is too short costs a retransmission, never
    a double execution (the device answers the repeat from its cache).
    """

    base: float = 1.0  # the fixed part; `connect` sets it from lab_config `defaults.timeout_s`
    byte_rate: float = 2_000.0   # B/s both ways together
    mac_rate: float = 100_000.0  # multiply-accumulates per second

    def budget(self, tx_bytes: int = 0, rx_bytes: int = 0, macs: int = 0) -> float:
        return self.base + (tx_bytes + rx_bytes) / self.byte_rate + macs / self.mac_rate


class Device:
    def __init__(self, link: Link, timing: Timing | None = None) -> None:
        self.link = link
        self.timing = timing or Timing()
        self.dims: tuple[int, ...] | None = None
        self.data: DataConfig | None = None
        self.backbone_macs = 0  # per sample, of the loaded int8 backbone (timeouts)
        self.backbone_features = 0
        #: what the device's counters mean when the target says better than HELLO can
        self.counter_label: str | None = None

    # -- identity and housekeeping ---------------------------------------------------------

    @property
    def info(self) -> HelloInfo:
        """The device's HELLO (sent on first use)."""
        return self.link.hello if self.link.hello is not None else self.hello()

    @property
    def max_payload(self) -> int:
        return self.info.max_payload

    def hello(self, timeout: float | None = None) -> HelloInfo:
        self._call(MsgType.HELLO, b"", timeout)
        assert self.link.hello is not None  # the link parses HELLO responses itself
        return self.link.hello

    def echo(self, data: bytes, timeout: float | None = None) -> bytes:
        if len(data) > self.max_payload:
            raise ValueError(f"ECHO of {len(data)} bytes exceeds max_payload {self.max_payload}")
        reply = self._call(MsgType.ECHO, data, timeout, rx=len(data))
        if reply != data:
            raise LinkError(f"ECHO returned {len(reply)} different bytes for {len(data)} sent")
        return reply

    def reset(self, timeout: float | None = None, *, drop_data: bool = False) -> None:
        """RESET: forget model, optimiser, backbone and the last request; the stored data
        set survives (DATA_INFO tells whether it is still the one wanted) unless
        `drop_data`."""
        self._call(MsgType.RESET, bytes([RESET_DROP_DATA]) if drop_data else b"", timeout)
        self.dims = None
        if drop_data:
            self.data = None
        self.backbone_macs = 0
        self.backbone_features = 0

    def stats(self, timeout: float | None = None) -> Stats:
        """STATS: stack high-water mark, stack size and static RAM of the firmware."""
        return Stats.unpack(self._call(MsgType.STATS, b"", timeout))

    # -- model ---------------------------------------------------------------------------------

    def model_init(self, dims: Sequence[int], timeout: float | None = None) -> int:
        """Create a zeroed model with layer sizes `dims`; returns the parameter count."""
        dims = tuple(int(d) for d in dims)
        n_params = unpack_u32(self._call(MsgType.MODEL_INIT, ModelInit(dims).pack(), timeout,
                                         macs=2 * _n_params(dims)), "MODEL_INIT response")
        self.dims = dims
        return n_params

    def write_params(self, layer: int, which: int | str, values: np.ndarray,
                     offset: int = 0, timeout: float | None = None) -> None:
        w = _which(which)
        flat = np.ascontiguousarray(np.asarray(values, dtype=np.float32).reshape(-1))
        expected = self._tensor_size(layer, w)
        if expected is not None and offset + flat.size > expected:
            raise ValueError(f"layer {layer} {w.name.lower()} holds {expected} values;"
                             f" writing {flat.size} at offset {offset}")
        def send(off: int, n: int) -> None:
            req = ParamWrite(layer, w, offset + off, flat[off:off + n])
            self._call(MsgType.PARAM_WRITE, req.pack(), timeout, bulk=_splittable(n, 4 * n))

        self._bulk(flat.size, 4, ParamWrite.OVERHEAD, send)

    def read_params(self, layer: int, which: int | str, count: int | None = None,
                    offset: int = 0, timeout: float | None = None) -> np.ndarray:
        """A tensor (shaped [out, in] or [out] when the model layout is known)."""
        return self._read_tensor(MsgType.PARAM_READ, layer, _which(which), count, offset,
                                 timeout)

    def read_update(self, layer: int, which: int | str, count: int | None = None,
                    offset: int = 0, timeout: float | None = None) -> np.ndarray:
        """The step `u` the last TRAIN_STEP applied (p_new = p_old - u)."""
        return self._read_tensor(MsgType.UPDATE_READ, layer, _which(which), count, offset,
                                 timeout)

    def load_model(self, weights: Sequence[tuple[np.ndarray, np.ndarray]],
                   timeout: float | None = None) -> int:
        """MODEL_INIT from the shapes, then write every W [out, in] and b [out]."""
        if not weights:
            raise ValueError("a model needs at least one layer")
        dims = [int(np.shape(weights[0][0])[1])]
        for i, (w, b) in enumerate(weights):
            out, inp = np.shape(w)
            if inp != dims[-1] or np.shape(b) != (out,):
                raise ValueError(f"layer {i}: W {np.shape(w)} / b {np.shape(b)} do not follow"
                                 f" a layer of width {dims[-1]}")
            dims.append(int(out))
        n_params = self.model_init(dims, timeout)
        for i, (w, b) in enumerate(weights):
            self.write_params(i, Which.WEIGHT, w, timeout=timeout)
            self.write_params(i, Which.BIAS, b, timeout=timeout)
        return n_params

    def param_digest(self, offset: int, count: int, bits: int = 8,
                     timeout: float | None = None) -> DigestResult:
        """PARAM_DIGEST of flat parameters [offset, offset+count): block CRC-32s + low bits
        (one request: count <= ParamDigest.max_count(max_payload, bits))."""
        payload = self._call(MsgType.PARAM_DIGEST, ParamDigest(offset, count, bits).pack(),
                             timeout, rx=ParamDigest.response_size(count, bits), macs=count)
        return DigestResult.unpack(payload, count, bits)

    def read_model(self, timeout: float | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        dims = self._require_dims()
        return [(self.read_params(i, Which.WEIGHT, timeout=timeout),
                 self.read_params(i, Which.BIAS, timeout=timeout))
                for i in range(len(dims) - 1)]

    def train_config(self, lr: float, momentum: float = 0.0, strategy: str | int = "full",
                     sparams: Sequence[float] = (), timeout: float | None = None,
                     batch: int = 0) -> None:
        """`batch`: the largest TRAIN_STEP batch to come (the memory plan is sized for it;
        a larger step is refused); 0: the board's max_batch."""
        req = TrainConfig(float(lr), float(momentum), strategy_id(strategy),
                          tuple(float(s) for s in sparams), int(batch))
        self._call(MsgType.TRAIN_CONFIG, req.pack(), timeout)

    # -- data ------------------------------------------------------------------------------------

    def data_config(self, n_features: int, dtype: DType | int | str, scale: float = 1.0,
                    zero_point: float = 0.0, n_samples: int = 0,
                    timeout: float | None = None) -> None:
        cfg = DataConfig(int(n_features), DType.coerce(dtype), float(scale), float(zero_point),
                         int(n_samples))
        self._call(MsgType.DATA_CONFIG, cfg.pack(), timeout)
        self.data = cfg

    def data_info(self, timeout: float | None = None) -> DataInfo:
        """DATA_INFO: the stored data set's layout, samples written and content hash."""
        return DataInfo.unpack(self._call(MsgType.DATA_INFO, b"", timeout,
                                          macs=self.info.data_capacity))

    def ensure_samples(self, n_features: int, dtype: DType | int | str, scale: float,
                       zero_point: float, labels: np.ndarray, features_encoded: np.ndarray,
                       timeout: float | None = None) -> bool:
        """Make the device store exactly these samples at 0..n-1: DATA_CONFIG + DATA_WRITE
        only when DATA_INFO's hash says the stored set differs. True if it uploaded.
        Firmware without DATA_INFO (UNKNOWN_TYPE) always gets the upload."""
        cfg = DataConfig(int(n_features), DType.coerce(dtype), float(scale), float(zero_point),
                         int(np.shape(labels)[0]))
        records = encode_records(labels, np.asarray(features_encoded), cfg.dtype)
        try:
            info = self.data_info(timeout)
        except DeviceNak as exc:
            if exc.reason != NakReason.UNKNOWN_TYPE:
                raise
            info = None
        if info is not None and info.complete and info.crc32 == dataset_hash(cfg, records) \
                and (info.n_features, info.dtype, info.n_samples) == (
                    cfg.n_features, cfg.dtype, cfg.n_samples):
            self.data = cfg
            return False
        self.data_config(cfg.n_features, cfg.dtype, cfg.scale, cfg.zero_point, cfg.n_samples,
                         timeout)
        self.write_samples(0, labels, features_encoded, timeout)
        return True

    def write_samples(self, start: int, labels: np.ndarray | Sequence[int],
                      features_encoded: np.ndarray, timeout: float | None = None) -> None:
        """Store samples `start..` as encoded (dtype of DATA_CONFIG), in several packets."""
        if self.data is None:
            raise LinkError("write_samples before data_config: the record layout is unknown")
        cfg = self.data
        feats = np.asarray(features_encoded)
        if feats.ndim != 2 or feats.shape[1] != cfg.n_features:
            raise ValueError(f"features {feats.shape}: want (n, {cfg.n_features})")
        records = encode_records(labels, feats, cfg.dtype)
        size = cfg.record_size
        def send(off: int, n: int) -> None:
            req = DataWrite(start + off, n, records[off * size:(off + n) * size])
            self._call(MsgType.DATA_WRITE, req.pack(), timeout, bulk=_splittable(n, n * size))

        self._bulk(feats.shape[0], size, DataWrite.OVERHEAD, send)

    # -- training ----------------------------------------------------------------------------------

    def preload_samples(self, start: int, labels: np.ndarray | Sequence[int],
                        features_encoded: np.ndarray) -> tuple[Preload, int]:
        """The first DATA_WRITE of `write_samples(start, ...)` (as many samples as one
        packet holds), sent ahead with `Link.preload`: call it while the device works on
        another request (`train_step(after_send=)`), then `finish_preload`. Returns the
        preload and the number of samples it carries."""
        if self.data is None:
            raise LinkError("preload_samples before data_config: the record layout is unknown")
        cfg = self.data
        size = cfg.record_size
        n = max(1, min(len(labels), (self.link.payload_budget - DataWrite.OVERHEAD) // size))
        records = encode_records(np.asarray(labels)[:n], np.asarray(features_encoded)[:n],
                                 cfg.dtype)
        return self.link.preload(MsgType.DATA_WRITE, DataWrite(start, n, records).pack()), n

    def finish_preload(self, pre: Preload, timeout: float | None = None) -> None:
        """Complete a preloaded request and await its response (retransmitting as usual)."""
        self._call(MsgType(pre.type), pre.payload, timeout, preloaded=pre)

    def train_step(self, indices: np.ndarray | Sequence[int], timeout: float | None = None,
                   after_send: Callable[[], object] | None = None) -> StepResult:
        """TRAIN_STEP on stored samples `indices`. `after_send` runs once the request is
        out, while the device trains (e.g. `preload_samples` of the next batch)."""
        idx = np.asarray(indices).reshape(-1)
        # forward + weight gradient + error propagation per sample, then the update
        macs = 3 * idx.size * self._macs_per_sample() + 2 * self._macs_per_sample()
        payload = self._call(MsgType.TRAIN_STEP, TrainStep(idx).pack(), timeout, macs=macs,
                             after_send=after_send)
        return StepResult.unpack(payload)

    def evaluate(self, start: int, count: int, timeout: float | None = None) -> EvalResult:
        """EVAL over `count` samples. Split into several requests when the predictions do
        not fit one response; `loss_sum` is then the sum (in float64) of the parts."""
        parts: list[EvalResult] = []

        def send(off: int, n: int) -> None:
            payload = self._call(MsgType.EVAL, RangeRequest(start + off, n).pack(), timeout,
                                 rx=n + EvalResult.OVERHEAD, macs=n * self._macs_per_sample(),
                                 bulk=_splittable(n, n))
            part = EvalResult.unpack(payload)
            if part.count != n:
                raise LinkError(f"EVAL of {n} samples answered for {part.count}")
            parts.append(part)

        self._bulk(count, 1, EvalResult.OVERHEAD, send)
        if len(parts) == 1:
            return parts[0]
        return EvalResult(float(sum(float(p.loss_sum) for p in parts)),
                          sum(p.correct for p in parts), count,
                          np.concatenate([p.pred for p in parts]) if parts
                          else np.zeros(0, np.uint8))

    def select(self, val_start: int, val_count: int,
               timeout: float | None = None) -> SelectResult:
        macs = 2 * val_count * self._macs_per_sample()
        payload = self._call(MsgType.SELECT, RangeRequest(val_start, val_count).pack(), timeout,
                             macs=macs)
        return SelectResult.unpack(payload)

    def read_mask(self, layer: int, timeout: float | None = None) -> Mask:
        return Mask.unpack(self._call(MsgType.MASK_READ, MaskRead(layer).pack(), timeout))

    # -- int8 backbone ---------------------------------------------------------------------------

    def backbone_info(self, timeout: float | None = None) -> BackboneInfo:
        return BackboneInfo.unpack(self._call(MsgType.BACKBONE_INFO, b"", timeout))

    def backbone_init(self, req: BackboneInit, timeout: float | None = None
                      ) -> BackboneInitResult:
        """BACKBONE_INIT: the layer list; the blob is zeroed until written."""
        res = BackboneInitResult.unpack(self._call(MsgType.BACKBONE_INIT, req.pack(), timeout))
        self.backbone_macs = res.macs
        self.backbone_features = res.n_features
        return res

    def backbone_write(self, offset: int, data: bytes, timeout: float | None = None) -> None:
        """BACKBONE_WRITE `data` at `offset` of the parameter blob, in several packets."""
        def send(off: int, n: int) -> None:
            req = BackboneWrite(offset + off, data[off:off + n])
            self._call(MsgType.BACKBONE_WRITE, req.pack(), timeout, bulk=_splittable(n, n))

        self._bulk(len(data), 1, BackboneWrite.OVERHEAD, send)

    def load_backbone(self, backbone: QBackbone, timeout: float | None = None
                      ) -> BackboneInitResult:
        """Stream a quantized backbone (rig.golden.int8.QBackbone): layers, then the blob."""
        blob = backbone.blob()
        records = tuple(BackboneLayerRecord(
            op=int(layer.op), kernel=layer.kernel, stride=layer.stride, padding=layer.padding,
            dilation=layer.dilation, out_shape=layer.out_shape,
            input_offset=layer.input_offset, output_offset=layer.output_offset,
            act_min=layer.act_min, act_max=layer.act_max) for layer in backbone.layers)
        req = BackboneInit(backbone.input_shape, float(backbone.out_scale),
                           int(backbone.out_zero_point), len(blob), zlib.crc32(blob), records)
        res = self.backbone_init(req, timeout)
        if res.n_features != backbone.n_features or res.blob_size != len(blob):
            raise LinkError(f"BACKBONE_INIT answered {res.n_features} features / "
                            f"{res.blob_size} B, expected {backbone.n_features} / {len(blob)}")
        self.backbone_write(0, blob, timeout)
        return res

    def remove_backbone(self, timeout: float | None = None) -> None:
        """BACKBONE_INIT with no layers: the head reads the stored samples directly again."""
        self._call(MsgType.BACKBONE_INIT, BackboneInit((1, 1, 1), 1.0, 0, 0, 0).pack(), timeout)
        self.backbone_macs = 0
        self.backbone_features = 0

    def features(self, start: int, count: int, timeout: float | None = None) -> np.ndarray:
        """FEATURES: the int8 backbone output of stored samples, [count, n_features]."""
        nf = max(self.backbone_features, 1)
        parts: list[np.ndarray] = []

        def send(off: int, n: int) -> None:
            payload = self._call(MsgType.FEATURES, RangeRequest(start + off, n).pack(), timeout,
                                 rx=4 + n * nf, macs=n * self.backbone_macs,
                                 bulk=_splittable(n, n * nf))
            part = FeaturesResult.unpack(payload).features
            if part.shape[0] != n:
                raise LinkError(f"FEATURES of {n} samples answered for {part.shape[0]}")
            parts.append(part)

        self._bulk(count, nf, FeaturesResult.OVERHEAD, send)
        return np.concatenate(parts) if parts else np.zeros((0, nf), np.int8)

    # -- debugging hooks -------------------------------------------------------------------------

    def debug_fault(self, timeout: float | None = None) -> None:
        """Make the firmware fault on purpose. Always raises: DeviceFault when the fault
        frame arrives, LinkError if the device does not fault."""
        wait = self.timing.budget() if timeout is None else timeout
        self.link.request(MsgType.DEBUG, Debug(DebugAction.FAULT).pack(), timeout=wait,
                          retries=0)
        self.link.poll(wait)  # a firmware may acknowledge first and fault afterwards
        raise LinkError("DEBUG fault: the device answered but reported no fault")

    def debug_hang(self) -> None:
        """Make the firmware stop answering (to test timeouts). Does not wait for a reply."""
        self.link.request(MsgType.DEBUG, Debug(DebugAction.HANG).pack(), expect_response=False)

    # -- internals ---------------------------------------------------------------------------------

    def _call(self, type: MsgType, payload: bytes, timeout: float | None, rx: int = 0,
              macs: int = 0, bulk: int = 0, preloaded: Preload | None = None,
              after_send: Callable[[], object] | None = None) -> bytes:
        if timeout is None:
            timeout = self.timing.budget(len(payload) + 16, rx + 16, macs)
        packet = self.link.request(type, payload, timeout=timeout, bulk=bulk,
                                   preloaded=preloaded, after_send=after_send)
        assert packet is not None
        return packet.payload

    def _bulk(self, total: int, unit: int, overhead: int,
              send: Callable[[int, int], None]) -> None:
        """Move `total` items of `unit` bytes as `send(offset, count)` pieces with
        `overhead` bytes per packet. The size is asked anew for every piece (the link
        shrinks it while errors are frequent and grows it back: `Link.payload_budget`),
        and a piece the link hands back as too big (FrameTooBig) is sent again smaller.
        Every bulk message is idempotent, so a piece that did arrive can be repeated."""
        self.info  # noqa: B018  (HELLO first: it states max_payload)
        off = 0
        while off < total:
            per = max(1, min((self.link.payload_budget - overhead) // unit, 0xFFFF))
            n = min(per, total - off)
            try:
                send(off, n)
            except FrameTooBig:
                continue  # the budget fell below this piece: send it again, smaller
            off += n

    def _read_tensor(self, type: MsgType, layer: int, which: Which, count: int | None,
                     offset: int, timeout: float | None) -> np.ndarray:
        size = self._tensor_size(layer, which)
        shaped = count is None and offset == 0
        if count is None:
            if size is None:
                raise LinkError("the model layout is unknown (no model_init/load_model on this"
                                " Device): pass count=")
            count = size - offset
        out = np.empty(count, dtype=np.float32)

        def send(off: int, n: int) -> None:
            req = TensorRead(layer, which, n, offset + off)
            payload = self._call(type, req.pack(), timeout, rx=4 * n, bulk=_splittable(n, 4 * n))
            out[off:off + n] = unpack_f32(payload, n, f"{type.name} response")

        self._bulk(count, 4, 0, send)
        if shaped and size is not None and which == Which.WEIGHT and self.dims is not None:
            return out.reshape(self.dims[layer + 1], self.dims[layer])
        return out

    def _tensor_size(self, layer: int, which: Which) -> int | None:
        if self.dims is None:
            return None
        if not 0 <= layer < len(self.dims) - 1:
            raise ValueError(f"layer {layer} does not exist (model dims {self.dims})")
        out, inp = self.dims[layer + 1], self.dims[layer]
        return out * inp if which == Which.WEIGHT else out

    def _require_dims(self) -> tuple[int, ...]:
        if self.dims is None:
            raise LinkError("the model layout is unknown: call model_init or load_model first")
        return self.dims

    def _macs_per_sample(self) -> int:
        if self.dims is not None:
            return _n_params(self.dims) + self.backbone_macs
        info = self.link.hello
        if info is None:
            return 0
        return info.max_layers * info.max_width * info.max_width  # pessimistic: layout unknown


def _splittable(n: int, nbytes: int) -> int:
    """`bulk=` of a piece of n items: its bytes, or 0 (not to be split) for one item."""
    return nbytes if n > 1 else 0


def _n_params(dims: Sequence[int]) -> int:
    return sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(len(dims) - 1))


def _which(which: int | str) -> Which:
    if isinstance(which, str):
        return {"w": Which.WEIGHT, "weight": Which.WEIGHT, "b": Which.BIAS,
                "bias": Which.BIAS}[which.lower()]
    return Which(which)


def chunks(total: int, size: int) -> Iterable[tuple[int, int]]:
    """(offset, count) pieces of at most `size` covering range(total)."""
    if size < 1:
        raise ValueError("chunk size must be positive (max_payload too small?)")
    for off in range(0, total, size):
        yield off, min(size, total - off)


__all__ = ["Device", "DeviceFault", "Timing"]
