"""COBS: known vectors, round trip, invariants, rejection of malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.link import cobs

# Vectors from Cheshire & Baker's scheme as commonly tabulated (minimal form).
VECTORS = [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
]


@pytest.mark.parametrize(("raw", "enc"), VECTORS)
def test_known_vectors(raw: bytes, enc: bytes) -> None:
    assert cobs.encode(raw) == enc
    assert cobs.decode(enc) == raw


def test_decoder_accepts_trailing_code_after_full_block() -> None:
    # Some encoders close a final 254-byte block with an extra 0x01.
    assert cobs.decode(b"\xff" + bytes(range(1, 255)) + b"\x01") == bytes(range(1, 255))


@given(st.binary(max_size=2000))
def test_round_trip(data: bytes) -> None:
    enc = cobs.encode(data)
    assert 0 not in enc
    assert len(enc) <= cobs.max_encoded_len(len(data))
    assert cobs.decode(enc) == data


@given(st.lists(st.sampled_from([0, 1, 0xFF, 0x7F]), max_size=1200).map(bytes))
def test_round_trip_on_block_edges(data: bytes) -> None:
    assert cobs.decode(cobs.encode(data)) == data


@pytest.mark.parametrize("bad", [b"", b"\x03\x11", b"\x02\x00", b"\x05\x01\x02\x03"])
def test_rejects_malformed(bad: bytes) -> None:
    with pytest.raises(cobs.DecodeError):
        cobs.decode(bad)


@given(st.binary(min_size=1, max_size=300).filter(lambda b: 0 not in b))
def test_chain_table_matches_brute_force(seg: bytes) -> None:
    ok = cobs.chain_ends_at_end(seg)
    for i in range(len(seg)):
        try:
            cobs.decode(seg[i:])
            valid = True
        except cobs.DecodeError:
            valid = False
        assert ok[i] == valid
