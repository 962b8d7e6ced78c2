"""Lockstep read-back that costs what changed (docs/protocol.md PARAM_DIGEST).

After a lockstep step the golden model's parameters equal the device's up to a few units
in the last place (both started the step from the same values). So the device sends only
the low 8 bits of each float plus a CRC-32 of the exact values; the host takes, for each
value, the bit pattern nearest the golden one that has those low bits, and checks the
CRC. A matching CRC means the rebuilt parameters are the device's, bit for bit; a chunk
whose CRC does not match (a value more than 127 ulp away, a sign change) is read in full
with PARAM_READ. Values the step did not change (sparse updates) come out exact for free.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rig.device import Device, chunks
from rig.errors import LinkError
from rig.protocol import ParamDigest, Which


@dataclass
class ResyncStats:
    reads: int = 0  # digest read-backs
    chunks: int = 0  # PARAM_DIGEST requests
    fallbacks: int = 0  # chunks re-read in full because the CRC did not match
    bytes_saved: int = 0  # response payload bytes saved against a full PARAM_READ
    history: list[int] = field(default_factory=list, repr=False)


def rebuild(golden: np.ndarray, low: np.ndarray, bits: int) -> np.ndarray:
    """float32 values whose low `bits` are `low`, each nearest (in bit-pattern distance,
    i.e. ulp for same-sign values) to the corresponding `golden` value."""
    g = np.ascontiguousarray(golden, dtype="<f4").view("<u4").astype(np.int64)
    m = 1 << bits
    r = (g & ~(m - 1)) | low.astype(np.int64)
    best = r.copy()
    for cand in (r - m, r + m):
        closer = (np.abs(cand - g) < np.abs(best - g)) & (cand >= 0) & (cand < 1 << 32)
        best[closer] = cand[closer]
    return best.astype("<u4").view("<f4")


def read_params_digest(device: Device, golden: Sequence[tuple[np.ndarray, np.ndarray]],
                       bits: int = 8, stats: ResyncStats | None = None
                       ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The device's parameters, rebuilt from PARAM_DIGEST and `golden` (same shapes)
    and verified by CRC-32; chunks that fail are read with PARAM_READ."""
    flat_gold = np.concatenate([np.asarray(t, np.float32).reshape(-1)
                                for layer in golden for t in layer])
    out = np.empty_like(flat_gold)
    width = bits // 8
    per = (device.max_payload - ParamDigest.OVERHEAD) // width
    n_fallback = 0
    for off, n in chunks(flat_gold.size, per):
        res = device.param_digest(off, n, bits)
        values = rebuild(flat_gold[off:off + n], res.low, bits)
        if zlib.crc32(values.tobytes()) != res.crc32:
            values = _read_flat(device, golden, off, n)
            n_fallback += 1
            if zlib.crc32(values.astype("<f4").tobytes()) != res.crc32:
                raise LinkError(f"PARAM_DIGEST CRC of parameters {off}..{off + n - 1} does not"
                                " match their PARAM_READ (the device changed them in between?)")
        out[off:off + n] = values
    if stats is not None:
        stats.reads += 1
        stats.chunks += len(range(0, flat_gold.size, per))
        stats.fallbacks += n_fallback
        stats.bytes_saved += flat_gold.size * (4 - width)
    params = []
    pos = 0
    for w, b in golden:
        ws, bs = np.shape(w), np.shape(b)
        nw, nb = int(np.prod(ws)), int(np.prod(bs))
        params.append((out[pos:pos + nw].reshape(ws).copy(),
                       out[pos + nw:pos + nw + nb].reshape(bs).copy()))
        pos += nw + nb
    return params


def _read_flat(device: Device, golden: Sequence[tuple[np.ndarray, np.ndarray]], off: int,
               n: int) -> np.ndarray:
    """PARAM_READ of flat range [off, off+n), tensor by tensor."""
    parts = []
    base = 0
    for layer, tensors in enumerate(golden):
        for which, t in zip((Which.WEIGHT, Which.BIAS), tensors, strict=True):
            size = int(np.size(t))
            lo, hi = max(off, base), min(off + n, base + size)
            if lo < hi:
                parts.append(device.read_params(layer, which, count=hi - lo, offset=lo - base))
            base += size
    return np.concatenate(parts).astype(np.float32)
