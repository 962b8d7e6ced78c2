"""Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999).

`encode` never emits 0x00, so 0x00 can delimit frames on the wire. Overhead is at most
1 + len(data) // 254 bytes. The encoder emits the minimal form (no trailing 0x01 code
after a full 254-byte block at the very end); the decoder accepts both forms, since a
peer written from another reference may add it.
"""

from __future__ import annotations

from rig.errors import DecodeError

_MAX_BLOCK = 254  # data bytes after a 0xFF code


def max_encoded_len(n: int) -> int:
    """Upper bound of `len(encode(x))` for `len(x) == n`."""
    return n + 1 + n // _MAX_BLOCK


def encode(data: bytes) -> bytes:
    out = bytearray()
    parts = bytes(data).split(b"\x00")
    last = len(parts) - 1
    for idx, part in enumerate(parts):
        pos = 0
        while len(part) - pos >= _MAX_BLOCK:
            out.append(0xFF)
            out += part[pos:pos + _MAX_BLOCK]
            pos += _MAX_BLOCK
        # The final part, if it ended exactly on a full block, needs no closing code.
        if idx == last and part and pos == len(part):
            break
        out.append(len(part) - pos + 1)
        out += part[pos:]
    return bytes(out)


def decode(encoded: bytes) -> bytes:
    n = len(encoded)
    if n == 0:
        raise DecodeError("empty COBS block")
    if 0 in encoded:
        raise DecodeError(f"0x00 inside COBS block at offset {bytes(encoded).index(0)}")
    out = bytearray()
    i = 0
    while i < n:
        code = encoded[i]
        end = i + code
        if end > n:
            raise DecodeError(f"COBS code {code} at offset {i} runs past the end ({n} bytes)")
        out += encoded[i + 1:end]
        if code != 0xFF and end < n:
            out.append(0)
        i = end
    return bytes(out)


def chain_ends_at_end(encoded: bytes) -> list[bool]:
    """`ok[i]` is True when the COBS code chain starting at offset i lands exactly on the
    end of `encoded`."""
    n = len(encoded)
    ok = [False] * (n + 1)
    ok[n] = True
    for i in range(n - 1, -1, -1):
        code = encoded[i]
        ok[i] = code != 0 and i + code <= n and ok[i + code]
    return ok[:n]


def suffix_candidates(encoded: bytes, min_size: int, max_size: int) -> list[tuple[int, int]]:
    """(offset, decoded size) of every suffix `encoded[offset:]` that is a well-formed COBS
    block decoding to `min_size..max_size` bytes, longest first. One backward pass, O(n):
    lets the frame decoder find a frame glued behind noise without decoding every suffix.
    """
    n = len(encoded)
    # size[i]: decoded length of encoded[i:], -1 if its code chain does not end at n.
    size = [-1] * (n + 1)
    size[n] = 0
    out = []
    for i in range(n - 1, -1, -1):
        code = encoded[i]
        j = i + code
        if code == 0 or j > n or size[j] < 0:
            continue
        # a short block is followed by an implied 0x00 unless it ends the data
        size[i] = code - 1 + size[j] + (1 if code != 0xFF and j < n else 0)
        if min_size <= size[i] <= max_size:
            out.append((i, size[i]))
    out.reverse()
    return out


def decode_prefix(encoded: bytes, start: int, count: int) -> bytes:
    """The first `count` decoded bytes of the block `encoded[start:]` (fewer if it is
    shorter), reading only as many codes as they need."""
    out = bytearray()
    i, n = start, len(encoded)
    while i < n and len(out) < count:
        code = encoded[i]
        if code == 0:
            break
        out += encoded[i + 1:min(i + code, n)]
        i += code
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out[:count])
