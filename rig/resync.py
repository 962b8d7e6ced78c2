"""Lockstep read-back that costs what changed (docs/protocol.md PARAM_DIGEST).

After a lockstep step the golden model's parameters equal the device's bit for bit: both
started the step from the same values and do the same float32 operations in the same order
(docs/training.md). So the device sends a CRC-32 of the exact values per block of 256 and
nothing else (`bits` 0: 40 bytes for the 2,410 parameters of the reference head); a matching
CRC means the golden block is the device's. Where they may differ by a few ulp (a firmware
built with another libm, an arithmetic the golden model does not mirror) the device also
sends the low 8 (or 4) bits of each value and the host takes, for each value, the bit
pattern nearest the golden one with those low bits before checking the CRCs. A block whose
CRC still does not match is read in full with PARAM_READ. `DigestReader` starts with CRCs
only and adds the low bits for the read after one that needed PARAM_READ.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rig.device import Device, chunks
from rig.errors import DeviceNak, LinkError
from rig.protocol import DIGEST_BLOCK, NakReason, ParamDigest, Which, digest_blocks


@dataclass
class ResyncStats:
    reads: int = 0  # digest read-backs
    crc_only: int = 0  # of which with CRCs only (bits 0)
    chunks: int = 0  # PARAM_DIGEST requests
    fallbacks: int = 0  # CRC blocks re-read with PARAM_READ because the CRC did not match
    bytes_saved: int = 0  # response payload bytes saved against a full PARAM_READ

    def as_dict(self) -> dict[str, int]:
        return {"digest_reads": self.reads, "crc_only_reads": self.crc_only,
                "digest_requests": self.chunks, "blocks_reread": self.fallbacks,
                "bytes_saved": self.bytes_saved}

    def summary(self) -> str:
        return (f"{self.reads} digest read-back(s), {self.crc_only} with CRCs only; "
                f"{self.fallbacks} CRC block(s) re-read with PARAM_READ; "
                f"{self.bytes_saved:,} B saved against full reads")


def rebuild(golden: np.ndarray, low: np.ndarray, bits: int) -> np.ndarray:
    """float32 values whose low `bits` are `low`, each nearest (in bit-pattern distance,
    i.e. ulp for same-sign values) to the corresponding `golden` value (bits 0: `golden`)."""
    if bits == 0:
        return np.array(golden, dtype="<f4")
    g = np.ascontiguousarray(golden, dtype="<f4").view("<u4").astype(np.int64)
    m = 1 << bits
    r = (g & ~(m - 1)) | low.astype(np.int64)
    best = r.copy()
    for cand in (r - m, r + m):
        closer = (np.abs(cand - g) < np.abs(best - g)) & (cand >= 0) & (cand < 1 << 32)
        best[closer] = cand[closer]
    return best.astype("<u4").view("<f4")


def digest_bits(n_params: int, max_payload: int) -> int:
    """8 low bits a value, or 4 where that makes the read-back one request instead of
    several (on a loaded link the round trips, not the bytes, cost the time)."""
    if n_params <= ParamDigest.max_count(max_payload, 8):
        return 8
    return 4 if n_params <= ParamDigest.max_count(max_payload, 4) else 8


def read_params_digest(device: Device, golden: Sequence[tuple[np.ndarray, np.ndarray]],
                       bits: int | None = None, stats: ResyncStats | None = None
                       ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The device's parameters, rebuilt from PARAM_DIGEST and `golden` (same shapes)
    and verified block by block by CRC-32; a block that fails is read with PARAM_READ.
    `bits`: low bits a value (0: CRCs only; None: `digest_bits`)."""
    flat_gold = np.concatenate([np.asarray(t, np.float32).reshape(-1)
                                for layer in golden for t in layer])
    out = np.empty_like(flat_gold)
    if bits is None:
        bits = digest_bits(flat_gold.size, device.max_payload)
    per = ParamDigest.max_count(device.max_payload, bits)
    n_chunks = n_fallback = 0
    for off, n in chunks(flat_gold.size, per):
        res = device.param_digest(off, n, bits)
        n_chunks += 1
        values = rebuild(flat_gold[off:off + n], res.low, bits)
        for i, crc in enumerate(res.crcs):
            lo, hi = i * DIGEST_BLOCK, min((i + 1) * DIGEST_BLOCK, n)
            if zlib.crc32(values[lo:hi].tobytes()) != int(crc):
                values[lo:hi] = _read_flat(device, golden, off + lo, hi - lo)
                n_fallback += 1
                if zlib.crc32(values[lo:hi].astype("<f4").tobytes()) != int(crc):
                    raise LinkError(
                        f"PARAM_DIGEST CRC of parameters {off + lo}..{off + hi - 1} does not "
                        "match their PARAM_READ (the device changed them in between?)")
        out[off:off + n] = values
    if stats is not None:
        stats.reads += 1
        stats.crc_only += bits == 0
        stats.chunks += n_chunks
        stats.fallbacks += n_fallback
        stats.bytes_saved += (flat_gold.size * (32 - bits) // 8
                              - 4 * digest_blocks(flat_gold.size) - 8 * n_chunks)
    params = []
    pos = 0
    for w, b in golden:
        ws, bs = np.shape(w), np.shape(b)
        nw, nb = int(np.prod(ws)), int(np.prod(bs))
        params.append((out[pos:pos + nw].reshape(ws).copy(),
                       out[pos + nw:pos + nw + nb].reshape(bs).copy()))
        pos += nw + nb
    return params


@dataclass
class DigestReader:
    """The lockstep read-back of one session: PARAM_DIGEST with CRCs only while they match,
    the low bits (`digest_bits`) for the read after one that fell back to PARAM_READ; for
    an older firmware, low bits from then on where it refuses CRCs only (BAD_ARG on `bits`:
    built before `bits` 0 existed), full PARAM_READs where it has no PARAM_DIGEST."""

    stats: ResyncStats = field(default_factory=ResyncStats)
    digest: bool = True  # the firmware has PARAM_DIGEST
    crc_only: bool = True  # the firmware accepts bits 0
    last_clean: bool = True  # the last read needed no PARAM_READ

    def read(self, device: Device, golden: Sequence[tuple[np.ndarray, np.ndarray]]
             ) -> list[tuple[np.ndarray, np.ndarray]]:
        if not self.digest:
            return device.read_model()
        bits = 0 if self.crc_only and self.last_clean else None
        before = self.stats.fallbacks
        try:
            params = read_params_digest(device, golden, bits=bits, stats=self.stats)
        except DeviceNak as exc:
            if exc.reason == NakReason.UNKNOWN_TYPE:
                self.digest = False
                return device.read_model()
            if bits != 0 or exc.reason != NakReason.BAD_ARG or exc.detail != _BITS_OFFSET:
                raise
            self.crc_only = False
            params = read_params_digest(device, golden, stats=self.stats)
        self.last_clean = self.stats.fallbacks == before
        return params


_BITS_OFFSET = 6  # byte offset of `bits` in the request: a NAK's detail names it


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
