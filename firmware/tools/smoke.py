#!/usr/bin/env python3
"""End-to-end smoke test of a tinyrig firmware, independent of rig/ (own COBS/CRC).

    smoke.py --native build/native/tinyrig_fw          firmware as a process on pipes
    smoke.py --qemu build/mps2-an386/tinyrig.elf       starts QEMU mps2-an386 itself
    smoke.py --connect socket://127.0.0.1:PORT         an already running target

Checks HELLO, ECHO, MODEL_INIT 64-32-10, PARAM_WRITE/READ, DATA_CONFIG/WRITE,
TRAIN_CONFIG, TRAIN_STEP (against numpy float32 math of docs/training.md), UPDATE_READ,
MASK_READ, SELECT, EVAL, NAKs (bad CRC without state change, too long, bad args, unknown
type), duplicate seq (cached response, DUP flag, step not re-run), DEBUG fault (FAULT
frame, exit code 0x80+n). Exit status 0 = all passed.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import subprocess
import sys
import time
import zlib

import numpy as np

PROTO = 1
HELLO, ECHO, RESET, DEBUG = 0x01, 0x02, 0x03, 0x0F
MODEL_INIT, PARAM_WRITE, PARAM_READ, TRAIN_CONFIG = 0x10, 0x11, 0x12, 0x13
DATA_CONFIG, DATA_WRITE = 0x20, 0x21
TRAIN_STEP, EVAL, SELECT, MASK_READ, UPDATE_READ = 0x30, 0x31, 0x32, 0x33, 0x34
FAULT, NAK = 0x7E, 0x7F
NAK_NAMES = {1: "BAD_CRC", 2: "BAD_COBS", 3: "TOO_LONG", 4: "BAD_HEADER", 5: "UNKNOWN_TYPE",
             6: "BAD_LENGTH", 7: "BAD_ARG", 8: "BAD_STATE", 9: "NO_SPACE"}


def cobs_enc(data: bytes) -> bytes:
    out, blk = bytearray(), bytearray()
    for i, b in enumerate(data):
        if b == 0:
            out += bytes([len(blk) + 1]) + blk
            blk.clear()
        else:
            blk.append(b)
            if len(blk) == 254:
                out += b"\xff" + blk
                blk.clear()
                if i == len(data) - 1:
                    return bytes(out)  # a full block that ends the data needs no tail
    return bytes(out + bytes([len(blk) + 1]) + blk)


def cobs_dec(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(data):
        code = data[i]
        if code == 0 or i + code > len(data):
            raise ValueError("bad cobs")
        out += data[i + 1:i + code]
        i += code
        if code < 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


def packet(typ: int, seq: int, payload: bytes, flags: int = 0, version: int = PROTO) -> bytes:
    hdr = struct.pack("<BBHHBB", version, typ, seq, len(payload), flags, 0)
    return hdr + payload + struct.pack("<I", zlib.crc32(hdr + payload))


class Wire:
    def write(self, b: bytes) -> None: ...
    def read(self, timeout: float) -> bytes: ...


class PipeWire(Wire):
    def __init__(self, exe: str):
        self.p = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        os.set_blocking(self.p.stdout.fileno(), False)

    def write(self, b):
        self.p.stdin.write(b)
        self.p.stdin.flush()

    def read(self, timeout):
        import select
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        return os.read(self.p.stdout.fileno(), 65536) if r else b""

    def exit_code(self, timeout=5.0):
        return self.p.wait(timeout)


class SerialWire(Wire):
    def __init__(self, url: str, proc: subprocess.Popen | None = None):
        import serial
        self.proc = proc
        deadline = time.monotonic() + 10
        while True:
            try:
                self.s = serial.serial_for_url(url, timeout=0)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def write(self, b):
        self.s.write(b)
        self.s.flush()

    def read(self, timeout):
        self.s.timeout = timeout
        first = self.s.read(1)
        if not first:
            return b""
        self.s.timeout = 0
        return first + self.s.read(65536)

    def exit_code(self, timeout=5.0):
        return self.proc.wait(timeout) if self.proc else None


class Dev:
    def __init__(self, wire: Wire):
        self.w, self.seq, self.buf, self.noise = wire, 0, bytearray(), []

    def frames(self, timeout: float):
        """Yield decoded packets (or None for undecodable chunks) until timeout."""
        deadline = time.monotonic() + timeout
        while True:
            while 0 in self.buf:
                i = self.buf.index(0)
                chunk = bytes(self.buf[:i])
                del self.buf[:i + 1]
                if not chunk:
                    continue
                try:
                    pkt = cobs_dec(chunk)
                    if len(pkt) < 12 or zlib.crc32(pkt[:-4]) != struct.unpack("<I", pkt[-4:])[0]:
                        raise ValueError("crc")
                    yield pkt
                except ValueError:
                    self.noise.append(chunk)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.buf += self.w.read(min(left, 0.5))

    def recv(self, timeout=30.0):
        for pkt in self.frames(timeout):
            ver, typ, seq, ln, flags, _ = struct.unpack("<BBHHBB", pkt[:8])
            assert ver == PROTO and ln == len(pkt) - 12, pkt
            return typ, seq, flags, pkt[8:8 + ln]
        raise TimeoutError(f"no frame; noise={self.noise[-3:]!r} buf={bytes(self.buf[-64:])!r}")

    def send_raw(self, pkt: bytes) -> bytes:
        frame = cobs_enc(pkt) + b"\x00"
        self.w.write(frame)
        return frame

    def req(self, typ: int, payload: bytes = b"", expect_nak: int | None = None, timeout=60.0):
        self.seq = (self.seq + 1) & 0xFFFF
        self.send_raw(packet(typ, self.seq, payload))
        rt, rs, fl, pl = self.recv(timeout)
        assert rs == self.seq, (hex(rt), rs, self.seq)
        if expect_nak is not None:
            assert rt == NAK and pl[0] == expect_nak, (hex(rt), pl)
            return pl
        if rt == NAK:
            raise AssertionError(f"NAK {NAK_NAMES.get(pl[0])} for {typ:#x}: detail "
                                 f"{struct.unpack('<H', pl[2:4])[0]} {pl[4:].decode()!r}")
        assert rt == typ | 0x80, hex(rt)
        return pl


# ---- numpy reference of docs/training.md (float32, full strategy) ---------------------
def ref_forward(Ws, bs, x):
    acts = [x]
    for li, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        z = (acts[-1] @ W.T).astype(np.float32) + b
        acts.append(np.maximum(z, np.float32(0)) if li < len(Ws) - 1 else z)
    return acts


def ref_loss(z, y):
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m, dtype=np.float32)
    s = e.sum(axis=1, keepdims=True, dtype=np.float32)
    loss = (m[:, 0] + np.log(s[:, 0])) - z[np.arange(len(y)), y]
    return loss.astype(np.float32), e, s


def ref_step(Ws, bs, vW, vb, x, y, lr, mu):
    B = np.float32(len(y))
    acts = ref_forward(Ws, bs, x)
    z = acts[-1]
    loss, e, s = ref_loss(z, y)
    correct = int((z.argmax(axis=1) == y).sum())
    d = e / s
    d[np.arange(len(y)), y] -= np.float32(1)
    d = (d / B).astype(np.float32)
    gWs, gbs = [None] * len(Ws), [None] * len(Ws)
    for li in range(len(Ws) - 1, -1, -1):
        gWs[li] = (d.T @ acts[li]).astype(np.float32)
        gbs[li] = d.sum(axis=0, dtype=np.float32)
        if li > 0:
            d = ((d @ Ws[li]) * (acts[li] > 0)).astype(np.float32)
    uW, ub = [], []
    for li in range(len(Ws)):
        for p, v, g, us in ((Ws[li], vW[li], gWs[li], uW), (bs[li], vb[li], gbs[li], ub)):
            if mu == 0:
                u = np.float32(lr) * g
            else:
                v[...] = np.float32(mu) * v + g
                u = np.float32(lr) * v
            p -= u
            us.append(u)
    return float(np.float32(loss.sum(dtype=np.float32)) / B), correct, uW, ub


def maxabs(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def run(dev: Dev, wire: Wire, do_fault: bool, log=print) -> int:
    rng = np.random.default_rng(1234)
    # HELLO
    h = dev.req(HELLO)
    (ver, ck, maxpl, clk, pcap, dcap, ml, mw, mb, strat) = struct.unpack("<BBHIIIHHHH", h[:24])
    o = 24
    strs = []
    for _ in range(3):
        n = h[o]
        strs.append(h[o + 1:o + 1 + n].decode())
        o += 1 + n
    board, bhash, fwv = strs
    log(f"HELLO proto={ver} counter_kind={ck} max_payload={maxpl} clock={clk} "
        f"param_cap={pcap} data_cap={dcap} max_layers={ml} max_width={mw} max_batch={mb} "
        f"strategies={strat:#x} board={board} hash={bhash[:16]}.. fw={fwv}")
    assert ver == 1 and o == len(h) and len(bhash) == 64

    # ECHO (incl. zeros and a full-size payload)
    for n in (0, 1, 253, 254, 255, maxpl):
        data = bytes(rng.integers(0, 256, n, dtype=np.uint8))
        assert dev.req(ECHO, data) == data
    log("ECHO ok (0..max_payload bytes)")

    # state checks before a model exists
    dev.req(TRAIN_STEP, struct.pack("<HHH", 1, 0, 0), expect_nak=8)
    dev.req(0x55, b"", expect_nak=5)

    # MODEL_INIT 64-32-10
    dims = [64, 32, 10]
    n_params = struct.unpack("<I", dev.req(MODEL_INIT, struct.pack("<BB3H", 2, 0, *dims)))[0]
    assert n_params == 64 * 32 + 32 + 32 * 10 + 10, n_params
    dev.req(MODEL_INIT, struct.pack("<BB3H", 2, 0, 64, 300, 10), expect_nak=7)
    Ws = [(rng.standard_normal((dims[i + 1], dims[i])) * 0.05).astype(np.float32) for i in range(2)]
    bs = [(rng.standard_normal(dims[i + 1]) * 0.1).astype(np.float32) for i in range(2)]

    def write_tensor(layer, which, arr):
        flat = arr.ravel()
        per = (maxpl - 8) // 4
        for off in range(0, flat.size, per):
            chunk = flat[off:off + per]
            dev.req(PARAM_WRITE, struct.pack("<BBHI", layer, which, 0, off) + chunk.tobytes())

    def read_tensor(layer, which, n, typ=PARAM_READ):
        out, per = [], maxpl // 4
        for off in range(0, n, per):
            c = min(per, n - off)
            out.append(np.frombuffer(dev.req(typ, struct.pack("<BBHI", layer, which, c, off)),
                                     np.float32))
        return np.concatenate(out)

    def read_all(typ=PARAM_READ):
        return ([read_tensor(li, 0, Ws[li].size, typ).reshape(Ws[li].shape) for li in range(2)],
                [read_tensor(li, 1, bs[li].size, typ) for li in range(2)])

    for li in range(2):
        write_tensor(li, 0, Ws[li])
        write_tensor(li, 1, bs[li])
    rW, rb = read_all()
    assert all(np.array_equal(a, b) for a, b in zip(rW + rb, Ws + bs, strict=True))
    dev.req(PARAM_WRITE, struct.pack("<BBHI", 1, 1, 0, 8) + b"\0" * 12, expect_nak=7)
    log(f"MODEL_INIT 64-32-10 n_params={n_params}; PARAM_WRITE/READ round trip bit-exact")

    # data: u8 features, scale 1/16, zero point 8
    NS, NF = 200, 64
    scale, zp = np.float32(1 / 16), np.float32(8)
    X8 = rng.integers(0, 256, (NS, NF), dtype=np.uint8)
    Y = rng.integers(0, 10, NS, dtype=np.uint8)
    X = ((X8.astype(np.float32) - zp) * scale).astype(np.float32)
    dev.req(DATA_CONFIG, struct.pack("<HBBffI", NF, 1, 0, scale, zp, NS))
    per = (maxpl - 8) // (1 + NF)
    for s0 in range(0, NS, per):
        c = min(per, NS - s0)
        recs = b"".join(bytes([Y[i]]) + X8[i].tobytes() for i in range(s0, s0 + c))
        dev.req(DATA_WRITE, struct.pack("<IHH", s0, c, 0) + recs)
    dev.req(DATA_WRITE, struct.pack("<IHH", NS, 1, 0) + bytes(1 + NF), expect_nak=7)
    log(f"DATA_CONFIG/WRITE {NS} samples u8 x {NF}")

    dev.req(TRAIN_STEP, struct.pack("<HHH", 1, 0, 0), expect_nak=8)  # no TRAIN_CONFIG yet
    lr, mu = 0.05, 0.9
    dev.req(TRAIN_CONFIG, struct.pack("<ffBBH", lr, mu, 1, 0, 0), expect_nak=7)  # tinyprop: absent
    dev.req(TRAIN_CONFIG, struct.pack("<ffBBH", lr, mu, 0, 0, 0))
    vW = [np.zeros_like(w) for w in Ws]
    vb = [np.zeros_like(b) for b in bs]

    B = 16
    worst = {"loss": 0.0, "param": 0.0, "update": 0.0}

    def step(idx, seq_dup=False):
        pl = struct.pack("<HH", len(idx), 0) + struct.pack(f"<{len(idx)}H", *idx)
        r = dev.req(TRAIN_STEP, pl)
        loss, correct, skipped, nl = struct.unpack("<fHBB", r[:8])
        ks = struct.unpack(f"<{nl}H", r[8:8 + 2 * nl])
        ctr = struct.unpack("<4I", r[8 + 2 * nl:])
        rloss, rcorrect, uW, ub = ref_step(Ws, bs, vW, vb, X[idx], Y[idx].astype(np.int64), lr, mu)
        assert skipped == 0 and ks == (32, 10), (skipped, ks)
        assert correct == rcorrect, (correct, rcorrect)
        e = abs(loss - rloss) / abs(rloss)
        worst["loss"] = max(worst["loss"], e)
        assert e < 1e-5, (loss, rloss)
        return loss, e, ctr, uW, ub, pl, r

    for t in range(3):
        idx = rng.choice(NS, B, replace=False)
        loss, e, ctr, uW, ub, _, _ = step(idx)
        dW, db = read_all()
        dUW, dUb = read_all(UPDATE_READ)
        pe = max(maxabs(a, b) for a, b in zip(dW + db, Ws + bs, strict=True))
        ue = max(maxabs(a, b) / float(np.max(np.abs(b)))
                 for a, b in zip(dUW + dUb, uW + ub, strict=True))
        worst["param"] = max(worst["param"], pe)
        worst["update"] = max(worst["update"], ue)
        assert pe < 1e-5 and ue < 1e-5, (pe, ue)
        # keep the reference on the device's parameters so drift cannot accumulate
        for li in range(2):
            Ws[li][...] = dW[li]
            bs[li][...] = db[li]
        log(f"TRAIN_STEP {t}: loss={loss:.7f} rel.err={e:.2e} counters={ctr} "
            f"max|dp|={pe:.2e} max|du|/max|u|={ue:.2e}")

    # MASK_READ / SELECT for full: all ones, k = N
    mr = dev.req(MASK_READ, struct.pack("<BBH", 0, 0, 0))
    assert struct.unpack("<H", mr[:2])[0] == 32 and mr[2:] == b"\x01" * 64
    sr = dev.req(SELECT, struct.pack("<IHH", 0, 10, 0))
    assert struct.unpack("<BBHHI", sr) == (2, 0, 32, 10, n_params), sr
    log("MASK_READ all ones, SELECT k=(32,10) trainable=n_params")

    # corrupt frame: NAK BAD_CRC and no state change
    before = read_all()
    idx = rng.choice(NS, B, replace=False)
    pl = struct.pack("<HH", B, 0) + struct.pack(f"<{B}H", *idx)
    dev.seq = (dev.seq + 1) & 0xFFFF
    bad = bytearray(packet(TRAIN_STEP, dev.seq, pl))
    bad[10] ^= 0x40
    dev.send_raw(bytes(bad))
    rt, rs, _, npl = dev.recv()
    assert rt == NAK and npl[0] == 1 and rs == dev.seq, (rt, npl)
    after = read_all()
    assert all(np.array_equal(a, b)
               for a, b in zip(before[0] + before[1], after[0] + after[1], strict=True))
    log(f"corrupt frame -> NAK BAD_CRC ({npl[4:].decode()!r}), parameters unchanged")

    # oversize frame
    dev.seq = (dev.seq + 1) & 0xFFFF
    dev.send_raw(packet(ECHO, dev.seq, bytes(maxpl + 1)))
    rt, rs, _, npl = dev.recv()
    assert rt == NAK and npl[0] == 3, (rt, npl)
    # garbage between frames, COBS cut short, bad header
    dev.w.write(b"\x05ab\x00")
    rt, _, _, npl = dev.recv()
    assert rt == NAK and npl[0] == 2, npl
    dev.seq = (dev.seq + 1) & 0xFFFF
    dev.send_raw(packet(ECHO, dev.seq, b"x", version=2))
    rt, _, _, npl = dev.recv()
    assert rt == NAK and npl[0] == 4, npl
    log("oversize -> NAK TOO_LONG; cut-short COBS -> BAD_COBS; version 2 -> BAD_HEADER")

    # duplicate: same request twice -> one execution, cached response with DUP
    loss, e, ctr, uW, ub, pl, r1 = step(idx)
    frame = packet(TRAIN_STEP, dev.seq, pl)
    dev.send_raw(frame)
    rt, rs, fl, r2 = dev.recv()
    assert rt == TRAIN_STEP | 0x80 and rs == dev.seq and fl & 1 and r2 == r1, (rt, fl)
    dW, db = read_all()
    pe = max(maxabs(a, b) for a, b in zip(dW + db, Ws + bs, strict=True))
    assert pe < 1e-5, pe  # parameters moved once (the reference did one step)
    log(f"duplicate TRAIN_STEP -> cached response flags={fl:#x}, step ran once (max|dp|={pe:.2e})")
    for li in range(2):
        Ws[li][...] = dW[li]
        bs[li][...] = db[li]

    # EVAL all samples vs reference
    acc_loss, acc_ok, preds = np.float32(0), 0, []
    for s0 in range(0, NS, 128):
        c = min(128, NS - s0)
        r = dev.req(EVAL, struct.pack("<IHH", s0, c, 0))
        ls, ok, cnt = struct.unpack("<fHH", r[:8])
        assert cnt == c
        acc_loss += np.float32(ls)
        acc_ok += ok
        preds += list(r[8:])
    z = ref_forward(Ws, bs, X)[-1]
    rl, _, _ = ref_loss(z, Y.astype(np.int64))
    assert list(z.argmax(axis=1)) == preds
    el = abs(float(acc_loss) - float(rl.sum())) / float(rl.sum())
    assert el < 1e-5 and acc_ok == int((z.argmax(axis=1) == Y).sum())
    log(f"EVAL {NS}: loss_sum={float(acc_loss):.5f} rel.err={el:.2e} correct={acc_ok} preds match")
    dev.req(EVAL, struct.pack("<IHH", NS - 1, 2, 0), expect_nak=7)

    # the other sample encodings: f32 raw and s8 with scale/zero point
    for dtype, name in ((0, "f32"), (2, "s8")):
        n = 40
        if dtype == 0:
            Xe = (rng.standard_normal((n, NF)) * 3).astype(np.float32)
            Xd, enc, sc, z0 = Xe, Xe, np.float32(1), np.float32(0)
        else:
            Xq = rng.integers(-128, 128, (n, NF), dtype=np.int8)
            sc, z0 = np.float32(0.07), np.float32(-3)
            Xd = ((Xq.astype(np.float32) - z0) * sc).astype(np.float32)
            enc = Xq
        Yd = rng.integers(0, 10, n, dtype=np.uint8)
        dev.req(DATA_CONFIG, struct.pack("<HBBffI", NF, dtype, 0, sc, z0, n))
        per = (maxpl - 8) // (1 + NF * (4 if dtype == 0 else 1))
        for s0 in range(0, n, per):
            c = min(per, n - s0)
            dev.req(DATA_WRITE, struct.pack("<IHH", s0, c, 0)
                    + b"".join(bytes([Yd[i]]) + enc[i].tobytes() for i in range(s0, s0 + c)))
        r = dev.req(EVAL, struct.pack("<IHH", 0, n, 0))
        ls, ok, cnt = struct.unpack("<fHH", r[:8])
        z = ref_forward(Ws, bs, Xd)[-1]
        rl, _, _ = ref_loss(z, Yd.astype(np.int64))
        ed = abs(ls - float(rl.sum())) / float(rl.sum())
        assert ed < 1e-5 and list(r[8:]) == list(z.argmax(axis=1)), (ed,)
        log(f"EVAL {name} samples: loss_sum rel.err={ed:.2e}, preds match")

    # RESET forgets everything
    dev.req(RESET)
    dev.req(PARAM_READ, struct.pack("<BBHI", 0, 0, 1, 0), expect_nak=8)
    log("RESET -> model gone (BAD_STATE)")
    log(f"worst: loss rel.err {worst['loss']:.2e}, param max abs {worst['param']:.2e}, "
        f"update max|du|/max|u| {worst['update']:.2e}")

    if do_fault:
        dev.seq = (dev.seq + 1) & 0xFFFF
        dev.send_raw(packet(DEBUG, dev.seq, b"\x01"))
        rt, rs, _, fp = dev.recv(10)
        assert rt == FAULT and rs == 0 and len(fp) == 52, (rt, fp)
        w = struct.unpack("<13I", fp)
        code = wire.exit_code(10)
        log(f"DEBUG fault -> FAULT exception={w[0]} pc={w[7]:#x} cfsr={w[9]:#x} hfsr={w[10]:#x} "
            f"bfar={w[12]:#x}; exit code {code} (expect {0x80 + w[0]}); text={dev.noise[-1:]!r}")
        assert code == 0x80 + w[0], code
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--native")
    g.add_argument("--qemu")
    g.add_argument("--connect")
    ap.add_argument("--no-fault", action="store_true")
    a = ap.parse_args()
    proc = None
    if a.native:
        wire = PipeWire(a.native)
    elif a.qemu:
        port = free_port()
        cmd = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-kernel", a.qemu,
               "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on",
               "-semihosting-config", "enable=on,target=native", "-no-reboot", "-monitor", "none"]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        wire = SerialWire(f"socket://127.0.0.1:{port}", proc)
    else:
        wire = SerialWire(a.connect)
    t0 = time.monotonic()
    try:
        rc = run(Dev(wire), wire, do_fault=not a.no_fault)
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        if a.native and wire.p.poll() is None:
            wire.p.kill()
    print(f"SMOKE PASSED in {time.monotonic() - t0:.1f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
