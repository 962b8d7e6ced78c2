#!/usr/bin/env python3
"""Write the fuzz harness's seed corpus (fuzz/corpus/) from real traffic.

Runs the native firmware (`make native`), drives it through rig's Device client with
every message type (model, parameters, data, each strategy's TRAIN_CONFIG and steps,
EVAL, SELECT, MASK_READ, UPDATE_READ, a small int8 backbone with FEATURES, STATS, ECHO,
RESET), records the frames the host really sent, and turns them into harness records
(fuzz_proto.c: PACKET records, so mutated payloads still get a valid CRC; one RAW seed of
the unmodified byte stream). Deterministic; run from the repository root:

    python firmware/fuzz/seeds.py [--out firmware/fuzz/corpus]
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

from rig.device import Device
from rig.link.frame import FrameDecoder, Packet
from rig.link.link import Link
from rig.link.transport import Transport
from rig.protocol import BackboneInit, BackboneLayerRecord, MsgType
from rig.targets.native import NativeTarget

MAX_SEED = 12_000  # bytes per seed file (fuzz-run passes -max_len above this)


class Recorder:
    """Transport wrapper that keeps every byte the host writes."""

    def __init__(self, inner: Transport) -> None:
        self.inner, self.name, self.sent = inner, inner.name, bytearray()

    def write(self, data: bytes) -> None:
        self.sent += data
        self.inner.write(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        return self.inner.read(max_bytes, timeout)

    def close(self) -> None:
        self.inner.close()


def drive(dev: Device) -> None:
    """One of every message the host sends, on a small model that fits the fuzz build."""
    rng = np.random.default_rng(0)
    dev.hello()
    dev.echo(b"tinyrig\x00echo")
    dev.stats()
    dims = (16, 8, 4)
    dev.load_model([(rng.standard_normal((dims[i + 1], dims[i])).astype(np.float32) * 0.3,
                     np.zeros(dims[i + 1], np.float32)) for i in range(len(dims) - 1)])
    n = 24
    feats = rng.integers(0, 256, (n, dims[0])).astype(np.uint8)
    labels = rng.integers(0, dims[-1], n)
    dev.data_config(dims[0], "u8", 1 / 255, 0.0, n)
    dev.write_samples(0, labels, feats)
    for strategy in ("full", "tinyprop", "tinypropv2", "neq", "velocity-budget",
                     "random-budget", "static"):
        dev.train_config(0.1, 0.5 if strategy == "full" else 0.0, strategy)
        dev.select(0, 8)
        for step in range(2):
            dev.train_step(np.arange(step * 4, step * 4 + 4))
        dev.read_mask(0)
        dev.read_update(0, "w")
    dev.evaluate(0, n)
    dev.read_model()
    # int8 backbone: one FC layer 16 -> 8 over the u8 samples (blob layout protocol.md §7)
    weights = rng.integers(-20, 20, (8, 16)).astype(np.int8).tobytes()
    blob = (weights + struct.pack("<8i", *range(8)) + struct.pack("<8i", *[1 << 30] * 8)
            + struct.pack("<8i", *[-2] * 8))
    layer = BackboneLayerRecord(op=2, out_shape=(1, 1, 8), input_offset=128,
                                output_offset=-3)
    dev.backbone_info()
    dev.backbone_init(BackboneInit((4, 4, 1), 0.05, -3, len(blob), zlib.crc32(blob), (layer,)))
    dev.backbone_write(0, blob)
    dev.features(0, 4)
    dev.model_init((8, 4))
    dev.train_config(0.05, 0.0, "full")
    dev.train_step(np.arange(4))
    dev.remove_backbone()
    dev.reset()


def record(op: int, packet: Packet) -> bytes:
    return bytes([op, packet.type]) + struct.pack("<H", len(packet.payload)) + packet.payload


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "corpus"))
    args = ap.parse_args(argv)
    target = NativeTarget("seeds", {})
    try:
        rec = Recorder(target.start())
        drive(Device(Link(rec, timeout=5.0, first_seq=1)))
    finally:
        target.close()
    packets = [p for p in FrameDecoder().feed(bytes(rec.sent)) if isinstance(p, Packet)]
    # Every seed starts from a fresh device: the set-up prefix (up to the first step) is
    # repeated in front of each later slice so the steps meet a configured model.
    first_step = next(i for i, p in enumerate(packets) if p.type == MsgType.TRAIN_STEP)
    setup = b"".join(record(0, p) for p in packets[:first_step])
    seeds = [setup]
    chunk = b""
    for p in packets[first_step:]:
        r = record(0, p)
        # a new seed at each TRAIN_CONFIG (one strategy each) or when a seed gets long
        if chunk and (p.type == MsgType.TRAIN_CONFIG
                      or len(setup) + len(chunk) + len(r) > MAX_SEED):
            seeds.append(setup + chunk)
            chunk = b""
        chunk += r
    seeds.append(setup + chunk)
    raw = bytes(rec.sent[:4000])
    seeds.append(bytes([1]) + struct.pack("<H", len(raw)) + raw)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("seed-*"):
        old.unlink()
    for s in seeds:
        (out / f"seed-{hashlib.sha1(s).hexdigest()[:16]}").write_bytes(s)
    print(f"{len(packets)} frames -> {len(seeds)} seeds, {sum(map(len, seeds))} bytes in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
