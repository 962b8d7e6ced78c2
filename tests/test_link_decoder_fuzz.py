"""Hypothesis fuzzing of the host's decoders and the bounds of frame resynchronisation.

Every payload type's `unpack` raises only PayloadError/LinkError on arbitrary bytes; COBS
and frame decoding never raise and never return a packet that was not sent; decoding time
is linear in the input and bounded per byte (CPU time, so the shared machine's load does
not make these flaky); a frame is never searched past the device's maximum size.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig import protocol as P
from rig.errors import LinkError
from rig.link import cobs
from rig.link.frame import FrameDecoder, FrameError, Packet, encode_frame

#: every payload layout with an `unpack(payload)` classmethod
UNPACKERS = sorted(
    (obj for obj in vars(P).values()
     if inspect.isclass(obj) and obj.__module__ == P.__name__
     and callable(getattr(obj, "unpack", None))),
    key=lambda c: c.__name__)


def test_every_payload_type_is_covered() -> None:
    names = {c.__name__ for c in UNPACKERS}
    assert {"HelloInfo", "ParamWrite", "StepResult", "EvalResult", "Nak", "FaultInfo",
            "BackboneInit", "FeaturesResult", "Mask", "SelectResult"} <= names


@pytest.mark.parametrize("cls", UNPACKERS, ids=lambda c: c.__name__)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=64), st.binary(min_size=64, max_size=700)))
def test_unpack_raises_only_payload_errors(cls: Any, data: bytes) -> None:
    with contextlib.suppress(LinkError):  # PayloadError is one; anything else fails
        if cls is P.DigestResult:  # its layout depends on the request: every request shape
            for count, bits in ((0, 4), (1, 4), (7, 8), (300, 16), (513, 4), (300, 0)):
                with contextlib.suppress(LinkError):
                    cls.unpack(data, count, bits)
            return
        cls.unpack(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_cobs_decode_raises_only_decode_errors(data: bytes) -> None:
    try:
        out = cobs.decode(data)
    except cobs.DecodeError:
        return
    assert cobs.decode(cobs.encode(out)) == out


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=80), st.just(b"\x00"),
                          st.builds(lambda p, s: encode_frame(Packet(p, s, b"x" * (s % 40))),
                                    st.integers(0, 255), st.integers(0, 0xFFFF))),
                max_size=30),
       st.integers(16, 2048))
def test_frame_decoder_never_raises_and_yields_only_sent_packets(parts: list[bytes],
                                                                 max_payload: int) -> None:
    stream = b"".join(parts)
    sent = {p for p in FrameDecoder().feed(stream + b"\x00") if isinstance(p, Packet)}
    dec = FrameDecoder(max_payload=max_payload)
    for item in dec.feed(stream) + dec.flush():
        assert isinstance(item, (Packet, FrameError))
        if isinstance(item, Packet):
            assert item in sent and len(item.payload) <= max_payload
    assert len(dec.pending) <= dec.max_encoded


# ---- bounds ------------------------------------------------------------------------------

def _cpu(fn: object, *args: object) -> float:
    t0 = time.process_time()
    fn(*args)  # type: ignore[operator]
    return time.process_time() - t0


def _decode_all(dec: FrameDecoder, data: bytes) -> None:
    for i in range(0, len(data), 4096):  # as the link reads: in chunks
        dec.feed(data[i:i + 4096])
    dec.feed(b"\x00")


#: a strong sample of the 256 byte values: the edges of COBS codes and every 7th value
SAMPLE = sorted({0x00, 0x01, 0x02, 0x03, 0x08, 0x09, 0x0C, 0x0D, 0x7E, 0x7F, 0x80, 0x81,
                 0xFD, 0xFE, 0xFF, *range(4, 256, 7)})


@pytest.mark.parametrize("value", SAMPLE, ids=lambda v: f"0x{v:02x}")
def test_64k_of_one_repeated_byte_decodes_in_under_half_a_second(value: int) -> None:
    # No HELLO yet: the decoder must assume the largest frame the u16 length allows.
    dec = FrameDecoder()
    assert _cpu(_decode_all, dec, bytes([value]) * 65536) < 0.5
    assert not dec.pending


def test_the_8k_run_of_the_issue_is_fast_with_and_without_hello() -> None:
    for max_payload in (P.MAX_LEN_FIELD, 2048):
        assert _cpu(_decode_all, FrameDecoder(max_payload=max_payload), b"\x01" * 8192) < 0.1


adversarial = st.one_of(
    st.tuples(st.integers(0, 255), st.integers(1, 20000)).map(lambda t: bytes([t[0]]) * t[1]),
    # nested delimiters: runs broken by 0x00 at varying distances
    st.tuples(st.integers(1, 255), st.integers(1, 300), st.integers(1, 60)).map(
        lambda t: (bytes([t[0]]) * t[1] + b"\x00") * t[2]),
    # valid-looking frames repeated without delimiters (every suffix starts a chain)
    st.tuples(st.integers(0, 255), st.integers(0, 200), st.integers(1, 40)).map(
        lambda t: encode_frame(Packet(t[0], 7, bytes([1]) * t[1]))[:-1] * t[2]),
    # a header with a plausible version and length field, repeated
    st.integers(1, 400).map(lambda n: (b"\x09\x01\x81\x07\x00\x10\x00\x01\x01" * n)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(adversarial, st.sampled_from([64, 320, 2048, P.MAX_LEN_FIELD]))
def test_time_per_byte_is_bounded_on_adversarial_streams(data: bytes, max_payload: int
                                                         ) -> None:
    dec = FrameDecoder(max_payload=max_payload)
    spent = _cpu(_decode_all, dec, data)
    # 20 us per byte (a 2 KB frame in 40 ms) plus a fixed 20 ms: linear, never quadratic
    assert spent < 0.02 + 20e-6 * len(data), f"{spent:.3f} s for {len(data)} bytes"


def test_frame_glued_behind_long_noise_is_still_found() -> None:
    p = Packet(type=0x81, seq=3, payload=b"payload")
    dec = FrameDecoder(max_payload=64)
    items = dec.feed(b"boot chatter " * 100 + encode_frame(p))
    assert items == [p]
    assert "boot chatter" in dec.noise_text()


def test_segment_is_never_kept_past_the_maximum_frame() -> None:
    dec = FrameDecoder(max_payload=100)
    dec.feed(b"\x05" * 10_000)
    assert len(dec.pending) == dec.max_encoded == cobs.max_encoded_len(112)
    (err,) = dec.feed(b"\x00")
    assert isinstance(err, FrameError) and err.reason == P.NakReason.TOO_LONG
