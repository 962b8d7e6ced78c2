"""Targets: ways of reaching a device. Importing this package registers the built-in kinds
(qemu, serial, native, pyocd, labgrid, twin); `resolve_target` turns a lab config and a
name into a Target.

Selection (`defaults.target` or the caller's choice):
- a target name: that target (it must be enabled);
- a kind (`qemu`, `native`, `serial`, …): the first enabled target of that kind;
- `board`: the first enabled hardware target that is present;
- `auto`: like `board`, else the first enabled QEMU target.
"""

from __future__ import annotations

from rig.config import TARGET_CATEGORIES, LabConfig, TargetConfig, suggest
from rig.errors import ConfigError, TargetUnavailable
from rig.targets import (  # noqa: F401 - registers the built-in kinds
    labgrid,
    native,
    pyocd,
    qemu,
    serial,
    twin,
)
from rig.targets.base import (
    Flashable,
    FlashReport,
    Target,
    make_target,
    register_target,
    target_kinds,
)

__all__ = ["FlashReport", "Flashable", "Target", "build_target", "make_target",
           "register_target", "resolve_target", "target_kinds"]


def build_target(config: LabConfig, target: TargetConfig | str) -> Target:
    """Instantiate one configured target (not started)."""
    tc = config.target(target) if isinstance(target, str) else target
    return make_target(tc.name, tc.kind, tc.options, config.board(tc.board))


def resolve_target(config: LabConfig, name_or_auto: str | None = None) -> Target:
    """The target to use for `name_or_auto` (default: the config's `defaults.target`)."""
    choice = name_or_auto or config.defaults.target
    if choice in config.targets:
        tc = config.targets[choice]
        if not tc.enabled:
            raise TargetUnavailable(f"target {choice!r} ({tc.source}) is disabled; set "
                                    "enabled: true in the lab config")
        return build_target(config, tc)
    if choice in TARGET_CATEGORIES:
        return _pick_hardware(config, fallback_qemu=choice == "auto")
    if choice in target_kinds():
        enabled = config.enabled_targets(choice)
        if not enabled:
            raise TargetUnavailable(f"{config.path}: no enabled target of kind {choice!r}")
        return build_target(config, enabled[0])
    known = (*TARGET_CATEGORIES, *target_kinds(), *config.targets)
    raise ConfigError(f"{config.path}: unknown target {choice!r}{suggest(choice, known)}; "
                      f"expected auto, board, a kind ({', '.join(target_kinds())}) or a "
                      f"target name ({', '.join(config.targets) or 'none defined'})")


def _pick_hardware(config: LabConfig, fallback_qemu: bool) -> Target:
    reasons = []
    for tc in config.enabled_targets():
        if tc.kind not in target_kinds():  # declared in the config schema, not installed
            reasons.append(f"{tc.name}: no {tc.kind} target support installed")
            continue
        target = build_target(config, tc)
        if not target.hardware:
            continue
        why = target.unavailable_reason()
        if why is None:
            return target
        reasons.append(f"{tc.name}: {why}")
    if fallback_qemu:
        emulated = config.enabled_targets("qemu")
        if emulated:
            return build_target(config, emulated[0])
    tried = "; ".join(reasons) or "no enabled hardware target (serial, pyocd) in the config"
    raise TargetUnavailable(f"{config.path}: no board available ({tried})"
                            + ("" if not fallback_qemu else " and no enabled qemu target"))
