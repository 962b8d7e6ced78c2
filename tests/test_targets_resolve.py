"""Choosing a target from the lab config: by name, by kind, `board`, `auto`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rig.config import load_config
from rig.errors import ConfigError, TargetUnavailable
from rig.targets import build_target, resolve_target, target_kinds
from rig.targets.base import Target, make_target, register_target
from rig.targets.native import NativeTarget
from rig.targets.qemu import QemuTarget
from rig.targets.serial import SerialTarget


def lab(tmp_path: Path, port: str, default: str = "auto", qemu_enabled: bool = True) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(textwrap.dedent(f"""\
        defaults:
          target: {default}
          baudrate: 57600
        boards:
          an386: {{cpu: cortex-m4f, clock_hz: 25000000, qemu_machine: mps2-an386}}
          host: {{cpu: host}}
        targets:
          uart:
            kind: serial
            board: an386
            port: {port}
          spare:
            kind: native
            board: host
            enabled: false
          native:
            kind: native
            board: host
          emu:
            kind: qemu
            board: an386
            enabled: {str(qemu_enabled).lower()}
        """))
    return path


def test_builtin_kinds_registered() -> None:
    assert {"qemu", "serial", "native"} <= set(target_kinds())


def test_by_name_carries_board_and_defaults(tmp_path: Path) -> None:
    cfg = load_config(lab(tmp_path, "socket://127.0.0.1:9"))
    t = resolve_target(cfg, "uart")
    assert isinstance(t, SerialTarget) and t.baudrate == 57600
    assert t.board is not None and t.board.name == "an386"
    q = build_target(cfg, "emu")
    assert isinstance(q, QemuTarget) and q.machine == "mps2-an386"


def test_disabled_target(tmp_path: Path) -> None:
    cfg = load_config(lab(tmp_path, "socket://127.0.0.1:9"))
    with pytest.raises(TargetUnavailable, match=r"'spare' \(.*lab.yaml:12\) is disabled"):
        resolve_target(cfg, "spare")


def test_by_kind(tmp_path: Path) -> None:
    cfg = load_config(lab(tmp_path, "socket://127.0.0.1:9"))
    t = resolve_target(cfg, "native")
    assert isinstance(t, NativeTarget) and t.name == "native"  # the name wins over the kind
    assert isinstance(resolve_target(cfg, "qemu"), QemuTarget)


def test_auto_prefers_present_board(tmp_path: Path) -> None:
    tty = tmp_path / "ttyACM0"
    tty.touch()
    cfg = load_config(lab(tmp_path, str(tty)))
    assert isinstance(resolve_target(cfg), SerialTarget)


def test_auto_falls_back_to_qemu(tmp_path: Path) -> None:
    cfg = load_config(lab(tmp_path, str(tmp_path / "ttyACM0")))
    assert isinstance(resolve_target(cfg), QemuTarget)


def test_board_only_explains(tmp_path: Path) -> None:
    cfg = load_config(lab(tmp_path, str(tmp_path / "ttyACM0"), default="board"))
    with pytest.raises(TargetUnavailable, match=r"no board available \(uart: .*ttyACM0 does "
                                                r"not exist"):
        resolve_target(cfg)


def test_auto_skips_kinds_without_a_class(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A configured kind whose Target class is not registered (a plug-in not installed)."""
    path = lab(tmp_path, str(tmp_path / "ttyACM0"))
    path.write_text(path.read_text() + "  probe:\n    kind: pyocd\n    board: an386\n")
    cfg = load_config(path)
    from rig.targets import base
    monkeypatch.delitem(base._REGISTRY, "pyocd")
    assert "pyocd" not in target_kinds()
    assert isinstance(resolve_target(cfg), QemuTarget)
    with pytest.raises(TargetUnavailable, match="probe: no pyocd target support installed"):
        resolve_target(cfg, "board")


def test_auto_without_anything(tmp_path: Path) -> None:
    cfg = load_config(lab(tmp_path, str(tmp_path / "ttyACM0"), qemu_enabled=False))
    with pytest.raises(TargetUnavailable, match="no enabled qemu target"):
        resolve_target(cfg, "auto")


def test_unknown_choice_suggests(tmp_path: Path) -> None:
    cfg = load_config(lab(tmp_path, "socket://127.0.0.1:9"))
    with pytest.raises(ConfigError, match=r"unknown target 'uartt' \(did you mean 'uart'\?\)"):
        resolve_target(cfg, "uartt")


def test_repo_config_default_is_qemu() -> None:
    cfg = load_config()
    if any(t.kind == "serial" and t.enabled for t in cfg.targets.values()):
        pytest.skip("this lab has an enabled board")
    assert isinstance(resolve_target(cfg), QemuTarget)


def test_plugin_kind_registers_without_core_changes() -> None:
    @register_target
    class Fake(Target):
        kind = "fake-test-kind"

        def start(self):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def close(self) -> None:
            pass

    assert "fake-test-kind" in target_kinds()
    assert isinstance(make_target("f", "fake-test-kind", {}), Fake)
    with pytest.raises(ConfigError, match="unknown kind 'nope'"):
        make_target("f", "nope", {})
