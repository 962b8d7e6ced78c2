"""`rig list` (probes and ports), `rig flash`, `rig sizes` and `rig run` on a small board."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rig import cli
from rig.targets import pyocd as pyocd_target

needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                                reason="qemu-system-arm not installed")


def test_list_shows_probes_ports_and_the_boards(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("qemu-netduino", "qemu-microbit", "nucleo-f429zi", "nrf52840dk"):
        assert name in out
    assert "debug probes (pyocd)" in out and "serial ports" in out
    assert "no debug probe" in out


def test_list_names_the_target_a_probe_would_serve(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    class Info:
        name, target = "NUCLEO-F429ZI", "stm32f429xi"

    class Probe:
        unique_id = "066DFF555150898367094540"
        associated_board_info = Info()
        description = "STM32 STLink"

    class Helper:
        @staticmethod
        def get_all_connected_probes(blocking: bool = True, unique_id: str | None = None,
                                     print_wait_message: bool = True) -> list[object]:
            return [Probe()]

    monkeypatch.setattr(pyocd_target, "ConnectHelper", Helper)
    monkeypatch.setattr(pyocd_target, "FileProgrammer", object)
    pyocd_target.forget_probes()
    try:
        assert cli.main(["list"]) == 0
    finally:
        pyocd_target.forget_probes()
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines()
               if line.strip("│ ").startswith("066DFF5551508983"))  # the probes table
    assert "NUCLEO-F429ZI" in row and "stm32f429xi" in row and "nucleo-f429zi" in row


def test_sizes_lists_every_image(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sizes"]) == 0
    out = capsys.readouterr().out
    for board in ("mps2-an386", "netduinoplus2", "microbit", "nucleo-f429zi", "nrf52840dk"):
        assert board in out
    assert "of 16 K" in out  # the microbit's RAM


@needs_qemu
@pytest.mark.skipif(shutil.which("gdb-multiarch") is None, reason="gdb-multiarch missing")
def test_flash_qemu_over_the_gdbstub(capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    log = tmp_path / "flash.log"
    assert cli.main(["flash", "--target", "qemu-microbit", "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "ok: microbit runs build" in out and f"flash log: {log}" in out
    # gdb's chatter (compare-sections' "matched", missing-source notes) only in the log
    assert "matched" not in out and "matched" in log.read_text()


def test_hello_prints_names_not_codes() -> None:
    from rig.cli.boards import hello_lines
    from rig.protocol import HelloInfo

    hello = HelloInfo(proto_version=1, counter_kind=2, max_payload=1024, clock_hz=25_000_000,
                      param_capacity=8000, data_capacity=65536, max_layers=4, max_width=64,
                      max_batch=16, strategies=0b101, board="mps2-an386", build_hash="ab" * 6,
                      fw_version="0.1")
    lines = dict(hello_lines(hello))
    assert lines["counter_kind"] == f"{hello.counter_label} (2)"
    assert not hello.counter_label.startswith("unknown")
    assert lines["strategies"] == (f"{hello.strategy_names[0]}, {hello.strategy_names[1]} "
                                   "(bitmask 0x5)")
    assert lines["clock_hz"] == "25,000,000 Hz" and lines["board"] == "mps2-an386"


def test_flash_refuses_targets_it_cannot_flash(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["flash", "--target", "native"]) == 2
    assert "not flashed by the rig" in capsys.readouterr().out
    assert cli.main(["flash", "--target", "nucleo-f429zi"]) == 2
    assert "no debug probe for a stm32f429xi" in capsys.readouterr().out.replace("\n", " ")


@needs_qemu
def test_run_on_the_microbit_uses_its_own_job(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", "--target", "qemu-microbit", "--train-samples", "32",
                     "--test-samples", "16", "--epochs", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "board overrides dims=(64, 8, 10)" in out and "batch 16 -> 2" not in out
    assert "dims 64-8-10, batch 2" in out
