"""Firmware core (firmware/src/cobs.c, crc32.c, proto.c) compiled for the host and loaded
with ctypes: COBS against a Python reference written here, CRC-32 against zlib, and the
whole firmware in-process through tr_lib_feed.

Builds `make -C firmware native BUILD=<tmp>` once per session.
"""

from __future__ import annotations

import ctypes
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
COBS_OK, COBS_E_SPACE, COBS_E_FORMAT = 0, -1, -2


# ---- Python reference COBS (Cheshire & Baker 1999, minimal form) ----------------------
def ref_cobs_encode(data: bytes) -> bytes:
    out, block = bytearray(), bytearray()
    for i, b in enumerate(data):
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block.clear()
            continue
        block.append(b)
        if len(block) == 254:
            out += b"\xff" + block
            block.clear()
            if i == len(data) - 1:
                return bytes(out)  # a final full block takes no closing 0x01
    return bytes(out + bytes([len(block) + 1]) + block)


def ref_cobs_decode(data: bytes) -> bytes:
    if 0 in data:
        raise ValueError("0x00 is the delimiter, never part of a frame body")
    out, i = bytearray(), 0
    while i < len(data):
        code = data[i]
        if code == 0 or i + code > len(data):
            raise ValueError("malformed COBS")
        out += data[i + 1:i + code]
        i += code
        if code < 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


# ---- build + load ------------------------------------------------------------------
@pytest.fixture(scope="session")
def core(native_build: Callable[[str], Path]) -> Iterator[ctypes.CDLL]:
    lib = ctypes.CDLL(str(native_build("native") / "libtinyrig_core.so"))
    sz, u8p = ctypes.c_size_t, ctypes.c_char_p
    for name in ("cobs_encode", "cobs_decode"):
        fn = getattr(lib, name)
        fn.argtypes = [u8p, sz, ctypes.c_void_p, sz, ctypes.POINTER(sz)]
        fn.restype = ctypes.c_int
    lib.crc32_update.argtypes = [ctypes.c_uint32, u8p, sz]
    lib.crc32_update.restype = ctypes.c_uint32
    lib.tr_lib_init.argtypes = []
    lib.tr_lib_init.restype = None
    lib.tr_lib_feed.argtypes = [u8p, sz, ctypes.c_void_p, sz, ctypes.POINTER(sz)]
    lib.tr_lib_feed.restype = ctypes.c_long
    lib.tr_lib_halted.restype = ctypes.c_int
    yield lib


def c_encode(lib: ctypes.CDLL, data: bytes, cap: int | None = None) -> tuple[int, bytes]:
    cap = len(data) + len(data) // 254 + 1 if cap is None else cap
    buf = ctypes.create_string_buffer(max(cap, 1))
    n = ctypes.c_size_t(0)
    st_ = lib.cobs_encode(data, len(data), buf, cap, ctypes.byref(n))
    return st_, buf.raw[:n.value]


def c_decode(lib: ctypes.CDLL, data: bytes, cap: int | None = None) -> tuple[int, bytes]:
    cap = max(len(data), 1) if cap is None else cap
    buf = ctypes.create_string_buffer(max(cap, 1))
    n = ctypes.c_size_t(0)
    st_ = lib.cobs_decode(data, len(data), buf, cap, ctypes.byref(n))
    return st_, buf.raw[:n.value]


# Byte strings rich in zeros and in long zero-free runs (the interesting cases for COBS).
zero_heavy = st.lists(st.sampled_from([0, 0, 1, 0xFF, 7]), max_size=600).map(bytes)
long_runs = st.builds(lambda n, k, z: (bytes([1 + (i % 255) for i in range(n)]) + b"\0" * z) * k,
                      st.integers(0, 800), st.integers(1, 3), st.integers(0, 2))
any_bytes = st.one_of(st.binary(max_size=2100), zero_heavy, long_runs)

SETTINGS = settings(max_examples=3000, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---- COBS ---------------------------------------------------------------------------
@SETTINGS
@given(any_bytes)
def test_cobs_encode_matches_reference_and_round_trips(core: ctypes.CDLL, data: bytes) -> None:
    st_, enc = c_encode(core, data)
    assert st_ == COBS_OK
    assert enc == ref_cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    st_, dec = c_decode(core, enc)
    assert st_ == COBS_OK and dec == data


def test_cobs_edge_lengths(core: ctypes.CDLL) -> None:
    for n in (0, 1, 253, 254, 255, 507, 508, 509, 2060):
        for fill in (b"\x01", b"\x00", b"\xab\x00"):
            data = (fill * n)[:n]
            st_, enc = c_encode(core, data)
            assert st_ == COBS_OK and enc == ref_cobs_encode(data), (n, fill)
            assert c_decode(core, enc) == (COBS_OK, data)
    assert c_encode(core, b"")[1] == b"\x01"
    assert c_encode(core, b"\x00")[1] == b"\x01\x01"
    assert c_encode(core, b"\x11" * 254)[1] == b"\xff" + b"\x11" * 254


def test_cobs_decode_accepts_non_minimal_final_block(core: ctypes.CDLL) -> None:
    data = bytes(range(1, 255))  # 254 nonzero bytes
    assert c_decode(core, b"\xff" + data + b"\x01") == (COBS_OK, data)


def test_cobs_random_bulk(core: ctypes.CDLL) -> None:
    rnd = random.Random(7)
    for _ in range(5000):
        n = rnd.choice([rnd.randrange(0, 16), rnd.randrange(0, 600), rnd.randrange(0, 2100)])
        p0 = rnd.random()
        data = bytes(0 if rnd.random() < p0 else rnd.randrange(1, 256) for _ in range(n))
        st_, enc = c_encode(core, data)
        assert st_ == COBS_OK and enc == ref_cobs_encode(data)
        assert c_decode(core, enc) == (COBS_OK, data)


@SETTINGS
@given(st.binary(max_size=400))
def test_cobs_decode_agrees_with_reference_on_arbitrary_input(core: ctypes.CDLL,
                                                              junk: bytes) -> None:
    st_, dec = c_decode(core, junk, cap=len(junk) + 1)
    try:
        want = ref_cobs_decode(junk)
    except ValueError:
        assert st_ == COBS_E_FORMAT
    else:
        assert st_ == COBS_OK and dec == want


def test_cobs_capacity_errors(core: ctypes.CDLL) -> None:
    data = bytes(range(256)) * 3
    need = len(ref_cobs_encode(data))
    assert c_encode(core, data, cap=need)[0] == COBS_OK
    assert c_encode(core, data, cap=need - 1)[0] == COBS_E_SPACE
    enc = ref_cobs_encode(data)
    assert c_decode(core, enc, cap=len(data))[0] == COBS_OK
    assert c_decode(core, enc, cap=len(data) - 1)[0] == COBS_E_SPACE
    assert c_decode(core, b"\x05ab")[0] == COBS_E_FORMAT  # block cut short
    assert c_decode(core, b"\x03a\x00")[0] == COBS_E_FORMAT  # delimiter inside


# ---- CRC-32 -------------------------------------------------------------------------
@SETTINGS
@given(st.binary(max_size=3000), st.integers(0, 0xFFFFFFFF))
def test_crc32_matches_zlib(core: ctypes.CDLL, data: bytes, start: int) -> None:
    assert core.crc32_update(0, data, len(data)) == zlib.crc32(data)
    assert core.crc32_update(start, data, len(data)) == zlib.crc32(data, start)


def test_crc32_known_values_and_chaining(core: ctypes.CDLL) -> None:
    assert core.crc32_update(0, b"123456789", 9) == 0xCBF43926
    assert core.crc32_update(0, b"", 0) == 0
    rnd = random.Random(3)
    for _ in range(2000):
        data = rnd.randbytes(rnd.randrange(0, 700))
        cut = rnd.randrange(0, len(data) + 1)
        part = core.crc32_update(0, data[:cut], cut)
        assert core.crc32_update(part, data[cut:], len(data) - cut) == zlib.crc32(data)


# ---- the firmware in-process (tr_lib_feed) --------------------------------------------
def frame(typ: int, seq: int, payload: bytes = b"") -> bytes:
    hdr = struct.pack("<BBHHBB", 1, typ, seq, len(payload), 0, 0)
    crc = struct.pack("<I", zlib.crc32(hdr + payload))
    return b"\x00" + ref_cobs_encode(hdr + payload + crc) + b"\x00"


def feed(lib: ctypes.CDLL, data: bytes) -> list[bytes]:
    out = ctypes.create_string_buffer(1 << 16)
    dropped = ctypes.c_size_t(0)
    n = lib.tr_lib_feed(data, len(data), out, len(out), ctypes.byref(dropped))
    assert dropped.value == 0
    pkts = []
    for chunk in out.raw[:n].split(b"\x00"):
        if chunk:
            try:
                pkt = ref_cobs_decode(chunk)
            except ValueError:
                continue
            if len(pkt) >= 12 and zlib.crc32(pkt[:-4]) == struct.unpack("<I", pkt[-4:])[0]:
                pkts.append(pkt)
    return pkts


def test_in_process_firmware_hello_echo_nak_dup(core: ctypes.CDLL) -> None:
    core.tr_lib_init()
    (hello,) = feed(core, frame(0x01, 10))
    assert hello[1] == 0x81 and hello[8] == 1  # proto_version 1
    payload = bytes(range(256)) * 4
    (echo,) = feed(core, frame(0x02, 11, payload))
    assert echo[1] == 0x82 and echo[8:-4] == payload and echo[6] == 0
    (dup,) = feed(core, frame(0x02, 11, payload))
    assert dup[6] & 1 and dup[8:-4] == payload  # cached replay with DUP flag
    bad = bytearray(frame(0x02, 12, b"hello"))
    bad[5] ^= 0x20
    (nak,) = feed(core, bytes(bad))
    assert nak[1] == 0x7F and nak[8] in (1, 2, 4)  # BAD_CRC (or header/COBS damage)
    (nak,) = feed(core, frame(0x30, 13, struct.pack("<HHH", 1, 0, 0)))
    assert nak[1] == 0x7F and nak[8] == 8 and nak[9] == 0x30  # BAD_STATE: no model
    # A frame split across many feeds is reassembled.
    f = frame(0x02, 14, b"split")
    got = []
    for i in range(len(f)):
        got += feed(core, f[i:i + 1])
    assert len(got) == 1 and got[0][8:-4] == b"split"
    # DEBUG fault: FAULT frame (type 0x7E, seq 0, 52 bytes) and the device halts.
    (fault,) = feed(core, frame(0x0F, 15, b"\x01"))
    assert fault[1] == 0x7E and fault[2:4] == b"\0\0" and len(fault) == 8 + 52 + 4
    assert core.tr_lib_halted() == 1
    core.tr_lib_init()
    assert core.tr_lib_halted() == 0
