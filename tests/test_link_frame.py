"""Frames: encode/decode round trip, chunked feeding, corruption never yields a wrong
packet, resynchronisation after garbage, noise log, limits."""

from __future__ import annotations

import struct
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from rig.link import cobs
from rig.link.frame import FrameDecoder, FrameError, Packet, encode_frame, encode_packet
from rig.protocol import NakReason

packets = st.builds(
    Packet,
    type=st.integers(0, 255),
    seq=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=600),
    flags=st.integers(0, 255),
)


def feed_all(dec: FrameDecoder, data: bytes, cuts: list[int] | None = None
             ) -> list[Packet | FrameError]:
    points = sorted({c % (len(data) + 1) for c in (cuts or [])})
    out: list[Packet | FrameError] = []
    prev = 0
    for p in [*points, len(data)]:
        out += dec.feed(data[prev:p])
        prev = p
    return out


@given(packets)
def test_round_trip(p: Packet) -> None:
    frame = encode_frame(p)
    assert frame.endswith(b"\x00") and 0 not in frame[:-1]
    assert FrameDecoder().feed(frame) == [p]


@given(st.lists(packets, min_size=1, max_size=6), st.lists(st.integers(0, 10_000), max_size=20))
def test_chunked_feeding(ps: list[Packet], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(p) for p in ps)
    assert feed_all(FrameDecoder(), stream, cuts) == ps


corruptions = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.just(0)),
)


def corrupt(data: bytes, kind: str, pos: int, arg: int) -> bytes:
    buf = bytearray(data)
    i = pos % len(buf)
    if kind == "flip":
        buf[i] ^= 1 << arg
    elif kind == "truncate":
        del buf[i:]
    elif kind == "insert":
        buf.insert(i, arg)
    else:
        del buf[i]
    return bytes(buf)


@settings(max_examples=300)
@given(st.lists(packets, min_size=1, max_size=4), st.lists(corruptions, min_size=1, max_size=4),
       st.lists(st.integers(0, 10_000), max_size=5))
def test_corruption_never_yields_a_wrong_packet(ps: list[Packet], damage: list, cuts: list[int]
                                                ) -> None:
    stream = b"".join(encode_frame(p) for p in ps)
    for kind, pos, arg in damage:
        if stream:
            stream = corrupt(stream, kind, pos, arg)
    if not stream:
        return
    items = feed_all(FrameDecoder(), stream + b"\x00", cuts)
    for item in items:
        assert isinstance(item, FrameError) or item in ps


@given(st.binary(max_size=300), st.lists(packets, min_size=1, max_size=3))
def test_resynchronises_after_garbage(garbage: bytes, ps: list[Packet]) -> None:
    dec = FrameDecoder()
    dec.feed(garbage)
    got = [i for i in dec.feed(b"".join(encode_frame(p) for p in ps)) if isinstance(i, Packet)]
    assert got == ps


def test_boot_text_glued_to_frame_goes_to_noise() -> None:
    p = Packet(type=0x81, seq=7, payload=b"hi")
    dec = FrameDecoder(clock=lambda: 123.0)
    assert dec.feed(b"tinyrig boot v1\r\n" + encode_frame(p)) == [p]
    assert dec.noise[-1].time == 123.0
    assert "tinyrig boot v1" in dec.noise_text()


def test_text_between_delimiters_is_an_error_and_noise() -> None:
    dec = FrameDecoder()
    items = dec.feed(b"\x00HardFault!\n\x00")
    assert len(items) == 1 and isinstance(items[0], FrameError)
    assert "HardFault!" in dec.noise_text()


def test_empty_frames_are_ignored() -> None:
    assert FrameDecoder().feed(b"\x00\x00\x00") == []


def test_noise_log_is_bounded() -> None:
    dec = FrameDecoder(noise_bytes=100)
    for i in range(50):
        dec.feed(f"line {i} of boot chatter\n".encode() + b"\x00")
    assert sum(len(e.data) for e in dec.noise) <= 100
    assert "line 49" in dec.noise_text()


def test_too_long_then_recovers() -> None:
    dec = FrameDecoder(max_payload=16)
    big = Packet(type=2, seq=1, payload=bytes(range(1, 200)))
    small = Packet(type=2, seq=2, payload=b"ok")
    items = dec.feed(encode_frame(big) + encode_frame(small))
    assert isinstance(items[0], FrameError) and items[0].reason == NakReason.TOO_LONG
    assert items[-1] == small


def test_payload_over_limit_but_short_encoding_is_too_long() -> None:
    dec = FrameDecoder(max_payload=4)
    (err,) = dec.feed(encode_frame(Packet(type=2, seq=1, payload=b"\x00" * 5)))
    assert isinstance(err, FrameError) and err.reason == NakReason.TOO_LONG


def _raw_frame(body: bytes) -> bytes:
    return cobs.encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"


def test_header_errors() -> None:
    dec = FrameDecoder()
    (e1,) = dec.feed(_raw_frame(struct.pack("<BBHHBB", 2, 1, 0, 0, 0, 0)))
    assert isinstance(e1, FrameError) and e1.reason == NakReason.BAD_HEADER
    assert "version 2" in e1.detail
    (e2,) = dec.feed(_raw_frame(struct.pack("<BBHHBB", 1, 1, 0, 3, 0, 0) + b"ab"))
    assert isinstance(e2, FrameError) and e2.reason == NakReason.BAD_HEADER
    (e3,) = dec.feed(cobs.encode(b"\x01\x02\x03") + b"\x00")
    assert isinstance(e3, FrameError) and e3.reason == NakReason.BAD_HEADER


def test_bad_crc_and_bad_cobs() -> None:
    raw = bytearray(encode_packet(Packet(type=2, seq=1, payload=b"abc")))
    raw[9] ^= 0x40
    (e1,) = FrameDecoder().feed(cobs.encode(bytes(raw)) + b"\x00")
    assert isinstance(e1, FrameError) and e1.reason == NakReason.BAD_CRC
    (e2,) = FrameDecoder().feed(b"\x09\x01\x02\x00")
    assert isinstance(e2, FrameError) and e2.reason == NakReason.BAD_COBS


def test_dup_flag_and_describe() -> None:
    p = Packet(type=0x82, seq=3, payload=b"x", flags=1)
    assert p.dup and "ECHO+resp" in p.describe() and "DUP" in p.describe()
