"""Emulated HIL: a faulting or hung firmware becomes a precise error, never a hang, and the
fixtures recover so the next test runs on a healthy device."""

from __future__ import annotations

import time

import pytest

from rig.errors import DeviceFault, LinkTimeout

pytestmark = pytest.mark.hil


def test_fault_becomes_error_with_registers(rig_dut, rig_target) -> None:
    with pytest.raises(DeviceFault) as info:
        rig_dut.debug_fault()
    regs = info.value.registers
    assert {"pc", "lr", "cfsr", "hfsr", "bfar"} <= set(regs)
    if rig_target.kind == "qemu" and getattr(rig_target.board, "cpu", "") == "cortex-m0":
        # microbit (ARMv6-M): every fault is a HardFault, and there is no CFSR (sent as 0)
        assert regs["exception"] == 3 and regs["cfsr"] == 0
        assert "HardFault" in str(info.value)
    elif rig_target.kind == "twin":
        # the board images take `udf`: a UsageFault (UNDEFINSTR), as on the silicon
        assert regs["exception"] == 6 and regs["cfsr"] == 1 << 16
        assert "UsageFault" in str(info.value)
    elif rig_target.kind == "qemu":
        # mps2-an386, netduinoplus2: an unmapped load is a precise BusFault
        # (CFSR.PRECISERR|BFARVALID).
        assert regs["exception"] in (3, 5)
        assert regs["cfsr"] & (1 << 15)  # BFARVALID
        assert "BusFault" in str(info.value) or "HardFault" in str(info.value)


def test_device_healthy_after_fault(rig_dut) -> None:
    """The pool restarted the target the previous test crashed."""
    assert rig_dut.echo(b"\x00alive\x00") == b"\x00alive\x00"


def test_hang_becomes_timeout_quoting_last_bytes(rig_dut) -> None:
    rig_dut.echo(b"before the hang")
    rig_dut.debug_hang()
    t0 = time.monotonic()
    with pytest.raises(LinkTimeout) as info:
        rig_dut.link.request(0x02, b"ping", timeout=0.3, retries=1)
    assert time.monotonic() - t0 < 5.0
    assert info.value.last_bytes  # the echo response, seen before the device hung
    assert "last bytes seen" in str(info.value)


def test_device_healthy_after_hang(rig_dut) -> None:
    assert rig_dut.echo(b"still here") == b"still here"


def test_failing_test_does_not_poison_next(pytester: pytest.Pytester) -> None:
    """An inner suite: the first test hangs the device and fails; the second must pass."""
    pytester.makepyfile(test_inner="""
        import pytest
        from rig.errors import LinkTimeout

        def test_a_hangs_device(rig_dut):
            rig_dut.debug_hang()
            rig_dut.link.request(0x02, b"x", timeout=0.2, retries=0)

        def test_b_trains(train_session):
            s = train_session(train_samples=32, test_samples=16, epochs=1)
            assert s.run().ok
    """)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_a_hangs_device*LinkTimeout*"])
