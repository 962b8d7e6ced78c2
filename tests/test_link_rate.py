"""Link-rate negotiation (rig.link_rate, docs/protocol.md §9) against real firmware in QEMU.

QEMU's UARTs ignore the rate, so what these tests check is the exchange and the device's
own state: HELLO's `link_baud` is the rate the firmware has programmed into its UART. A
switch the host confirms sticks; one it never confirms is undone by the device after its
timeout; a host whose wire goes deaf at the new rate falls back and the link keeps working.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from rig.config import load_config
from rig.connection import Connection, connect
from rig.errors import DeviceNak
from rig.link.transport import Transport
from rig.link_rate import ECHO_PATTERN, negotiate, switch
from rig.protocol import BaudSet, MsgType, NakReason
from rig.targets import resolve_target
from tests.test_uart_baud import expected_offers


class DeafAtNewRate:
    """The host's side of a wire that carries nothing once the host leaves its first rate
    (a USB bridge that cannot make the rate): bytes written at another rate are lost. The
    real transport underneath is untouched."""

    def __init__(self, inner: Transport, start: int) -> None:
        self.inner, self.name, self.start = inner, f"{inner.name} (deaf off {start})", start
        self.rate = start
        self.lost = 0

    def set_baudrate(self, baud: int) -> None:
        self.rate = baud

    def write(self, data: bytes) -> None:
        if self.rate == self.start:
            self.inner.write(data)
        else:
            self.lost += len(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        return self.inner.read(max_bytes, timeout)

    def close(self) -> None:
        self.inner.close()


def _connect(name: str, **kw: object) -> Connection:
    lab = load_config(None)
    return connect(resolve_target(lab, name), timeout=lab.defaults.timeout_s, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def mps2() -> Iterator[Connection]:
    conn = _connect("qemu", negotiate_rate=False)
    try:
        yield conn
    finally:
        conn.close()


@pytest.mark.parametrize("name", ["qemu", "qemu-netduino", "qemu-microbit"])
def test_connect_negotiates_the_fastest_rate_the_board_makes(name: str) -> None:
    """HELLO lists exactly the rates the manuals' formulas allow for the board's UART
    clock (tests/test_uart_baud.py), and connect switches to the fastest (default
    max_baud 2 M), which the device then reports as its rate."""
    with _connect(name) as conn:
        board = conn.hello.board
        assert conn.hello.link_baud == 115200
        assert conn.hello.link_rates == expected_offers()[board]
        assert conn.rate is not None and conn.rate.switched and not conn.rate.fell_back
        assert conn.rate.baud == max(conn.hello.link_rates)
        assert conn.device.hello().link_baud == conn.rate.baud
        assert conn.device.echo(ECHO_PATTERN) == ECHO_PATTERN


def test_a_rate_never_confirmed_is_undone_by_the_device(mps2: Connection) -> None:
    dev = mps2.device
    before = dev.hello().link_baud
    target = next(r for r in reversed(mps2.hello.link_rates) if r != before)
    reply = dev.link.request(MsgType.BAUD_SET, BaudSet(target, 200).pack())
    assert reply is not None and int.from_bytes(reply.payload, "little") == before
    time.sleep(0.4)  # the host stays silent (and at its rate) past the device's 200 ms
    assert dev.hello().link_baud == before
    # ... while a switch that is confirmed in time sticks
    result = switch(dev, target, revert_ms=1000)
    assert result.baud == target and not result.fell_back
    time.sleep(1.2)
    assert dev.hello().link_baud == target
    assert switch(dev, before).baud == before and dev.hello().link_baud == before


def test_host_deaf_at_the_new_rate_falls_back_and_the_link_works(mps2: Connection) -> None:
    dev = mps2.device
    before = dev.hello().link_baud
    real = dev.link.transport
    deaf = DeafAtNewRate(real, before)
    dev.link.transport = deaf
    try:
        result = negotiate(dev, 2_000_000, revert_ms=300)
    finally:
        dev.link.transport = real
    assert result.fell_back and result.baud == before and deaf.lost > 0
    assert "failed" in result.reason
    # the device went back by itself (it had switched: nothing reached it at the new rate)
    assert dev.hello().link_baud == before
    assert dev.echo(ECHO_PATTERN) == ECHO_PATTERN


def test_bad_requests_are_refused_and_change_nothing(mps2: Connection) -> None:
    dev = mps2.device
    before = dev.hello().link_baud
    for payload, reason in ((BaudSet(57600, 100).pack(), NakReason.BAD_ARG),      # not offered
                            (BaudSet(2_000_000, 100).pack(), NakReason.BAD_ARG),  # 25 MHz / 12
                            (BaudSet(1_000_000, 20000).pack(), NakReason.BAD_ARG),
                            (b"\x00" * 5, NakReason.BAD_LENGTH)):
        with pytest.raises(DeviceNak) as exc:
            dev.link.request(MsgType.BAUD_SET, payload)
        assert exc.value.reason == reason
    time.sleep(0.15)
    assert dev.hello().link_baud == before
    refused = switch(dev, 57600)
    assert refused.fell_back and refused.baud == before and "refused" in refused.reason


def test_link_rate_options(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`link_rate`/`link_max_baud`: per target, defaulted from the lab's `defaults:`;
    kinds without the options (native, twin) keep their rate; bad values are refused with
    file:line:key before any target starts."""
    from rig.errors import ConfigError
    from rig.targets.native import NativeTarget
    from rig.targets.qemu import QemuTarget
    from rig.targets.serial import SerialTarget

    lab = load_config(None)
    assert resolve_target(lab, "qemu").max_link_baud() == 2_000_000
    assert NativeTarget("n", {}).max_link_baud() == 0
    assert SerialTarget("s", {"port": "/dev/null", "link_max_baud": 921600}).max_link_baud() \
        == 921600
    assert SerialTarget("s", {"port": "/dev/null", "link_rate": "fixed"}).max_link_baud() == 0
    cfg = tmp_path / "lab.yaml"
    cfg.write_text("version: 1\ndefaults:\n  link_rate: fixed\ntargets:\n  q:\n    kind: qemu\n"
                   "    board: mps2-an386\n  q2:\n    kind: qemu\n    board: mps2-an386\n"
                   "    link_rate: negotiate\n    link_max_baud: 921600\n")
    lab = load_config(cfg)
    assert resolve_target(lab, "q").max_link_baud() == 0
    assert resolve_target(lab, "q2").max_link_baud() == 921600
    cfg.write_text("version: 1\ntargets:\n  q:\n    kind: qemu\n    board: mps2-an386\n"
                   "    link_rate: fast\n")
    with pytest.raises(ConfigError, match=r"lab.yaml:6.*link_rate: expected one of negotiate"):
        load_config(cfg)
    assert QemuTarget("q", {"link_rate": "fixed", "board": lab.board("mps2-an386")}
                      ).max_link_baud() == 0


def test_streamed_batches_sent_ahead_train_identically() -> None:
    """overlap_upload (batch i+1 preloaded while the device trains on batch i, into the
    window's other half) on the streaming microbit: every batch but the first went ahead,
    and the device ends with the same parameters, bit for bit, as without it."""
    from rig.session import RunSpec, TrainingSession

    job = RunSpec(dims=(64, 8, 10), lr=0.05, epochs=1, train_samples=24, test_samples=8,
                  val_samples=8, batch=2)
    finals = []
    with _connect("qemu-microbit", negotiate_rate=False) as conn:
        for overlap in (False, True):
            conn.device.reset()
            s = TrainingSession(conn.device, job)
            s.overlap_upload = overlap
            s.prepare()
            assert s.window is not None and s.window >= 2 * job.batch
            rep = s.run()
            assert rep.ok
            assert s.preloaded_batches == (len(rep.steps) - 1 if overlap else 0)
            finals.append(conn.device.read_model())
    for (w0, b0), (w1, b1) in zip(*finals, strict=True):
        assert w0.tobytes() == w1.tobytes() and b0.tobytes() == b1.tobytes()


def test_a_preload_runs_only_when_completed(dev) -> None:  # type: ignore[no-untyped-def]
    """Link.preload on the native firmware: a preloaded PARAM_WRITE changes nothing until
    completed; a request written in between ends (spoils) the partial frame, which the
    device rejects instead of running, and completing it then sends the whole frame."""
    import numpy as np

    from rig.link.link import _PRELOAD_HOLD
    from rig.protocol import ParamWrite, Which

    dev.model_init((2, 2))
    zero = dev.read_params(0, "weight").copy()
    want = np.array([[1, 2], [3, 4]], np.float32)
    req = ParamWrite(0, Which.WEIGHT, 0, want.reshape(-1)).pack()
    pre = dev.link.preload(MsgType.PARAM_WRITE, req)
    # HELLO's leading 0x00 ends the partial frame: it is NAKed, never run
    dev.hello()
    assert not pre.intact and dev.read_params(0, "weight").tobytes() == zero.tobytes()
    dev.link.request(MsgType.PARAM_WRITE, req, preloaded=pre)
    assert dev.read_params(0, "weight").tobytes() == want.tobytes()
    # intact: completing it sends only the held-back bytes
    req2 = ParamWrite(0, Which.WEIGHT, 0, -want.reshape(-1)).pack()
    pre2 = dev.link.preload(MsgType.PARAM_WRITE, req2)
    before = dev.link.stats.bytes_tx
    dev.link.request(MsgType.PARAM_WRITE, req2, preloaded=pre2)
    assert pre2.intact and dev.link.stats.bytes_tx - before == _PRELOAD_HOLD
    assert dev.read_params(0, "weight").tobytes() == (-want).tobytes()


def test_a_board_that_keeps_running_is_left_at_its_boot_rate() -> None:
    """A serial target (hardware: the device outlives the connection) on a running QEMU:
    the first connection switches to 1 M; closing it switches back, so the next
    connection's HELLO (at the boot rate) finds the device at 115200."""
    from rig.targets.serial import SerialTarget

    lab = load_config(None)
    qemu = resolve_target(lab, "qemu")
    started = qemu.start()
    url = started.name  # socket://...; QEMU keeps running after this socket closes
    started.close()
    try:
        seen = []
        for _ in range(2):
            serial = SerialTarget("s", {"port": url}, board=lab.board("mps2-an386"))
            with connect(serial) as conn:
                seen.append(conn.hello.link_baud)
                assert conn.rate is not None and conn.rate.switched
                assert conn.device.hello().link_baud == 1_000_000
        assert seen == [115200, 115200]
    finally:
        qemu.close()
