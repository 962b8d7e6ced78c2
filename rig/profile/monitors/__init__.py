"""Power monitors behind one interface (`PowerMonitor`), created by kind from a registry.

    from rig.profile.monitors import create_monitor
    with create_monitor("ppk2", port="/dev/ttyACM0") as mon:
        mon.configure(voltage_v=3.3, sample_rate_hz=100_000)
        mon.start(); ...; trace = mon.stop()
    for w in trace.window_energy(): print(w.label, w.energy_j, w.source)

Kinds register themselves with `@register_monitor(kind)`; importing this package loads the
built-in ones (ppk2, joulescope, lpm01a). A lab's own instrument registers the same way.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Sequence
from types import NoneType, UnionType
from typing import Any

from rig.errors import InstrumentError, RigError
from rig.profile.monitors import joulescope, lpm01a, ppk2  # noqa: F401  (registration)
from rig.profile.monitors.base import (
    PowerMonitor,
    monitor_class,
    monitor_kinds,
    register_monitor,
)

_NONE = ("none", "null")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def create_monitor(kind: str, **options: Any) -> PowerMonitor:
    """A monitor of `kind` built from its options (e.g. lab_config's monitor entry). A
    wrong option name or value is an InstrumentError naming it, never a TypeError."""
    cls = monitor_class(kind)
    known = _options(cls)
    extra = sorted(set(options) - set(known))
    if extra:
        raise InstrumentError(f"{kind}: unknown option(s) {', '.join(extra)}; known: "
                              f"{', '.join(known) or 'none'}")
    try:
        return cls(**options)
    except RigError:
        raise
    except (TypeError, ValueError) as exc:  # a constructor that missed a type check
        raise InstrumentError(f"{kind}: bad option value: {exc}") from None


def _options(cls: type[PowerMonitor]) -> dict[str, Any]:
    """Constructor option -> its type annotation (resolved)."""
    hints = typing.get_type_hints(cls.__init__)
    return {name: hints.get(name, Any)
            for name, prm in inspect.signature(cls.__init__).parameters.items()
            if name != "self" and prm.kind in (prm.KEYWORD_ONLY, prm.POSITIONAL_OR_KEYWORD)}


def _convert(kind: str, key: str, text: str, annotation: Any) -> Any:
    """One option value from its command-line text, by the constructor's annotation."""
    args = typing.get_args(annotation) if isinstance(annotation, UnionType) or \
        typing.get_origin(annotation) is typing.Union else (annotation,)
    low = text.strip().lower()
    if NoneType in args and low in _NONE:
        return None
    wanted = []
    for t in args:
        if t is bool:
            wanted.append("true/false")
            if low in _TRUE or low in _FALSE:
                return low in _TRUE
        elif t is int:
            wanted.append("an integer")
            try:
                return int(low, 0)
            except ValueError:
                pass
        elif t is float:
            wanted.append("a number")
            try:
                v = float(low)
            except ValueError:
                continue
            if math.isfinite(v):
                return v
        elif t is str:
            return text
    if NoneType in args:
        wanted.append("none")
    if not wanted:
        raise InstrumentError(f"--monitor-opt {key}: the {kind} option {key!r} cannot be "
                              "set from the command line")
    raise InstrumentError(f"--monitor-opt {key}={text!r}: expected {' or '.join(wanted)}")


def monitor_from_options(kind: str, items: Sequence[str]) -> PowerMonitor:
    """A monitor from command-line `KEY=VALUE` strings (`rig profile --monitor-opt`):
    each value is converted by the type the monitor's constructor declares for it
    (`none` for an optional value). Any bad name or value raises one clear RigError."""
    cls = monitor_class(kind)
    known = _options(cls)
    opts: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InstrumentError(f"--monitor-opt {item!r}: expected KEY=VALUE")
        if key not in known:
            raise InstrumentError(f"--monitor-opt {key}: not an option of {kind}; known: "
                                  f"{', '.join(known) or 'none'}")
        opts[key] = _convert(kind, key, value, known[key])
    return create_monitor(kind, **opts)


__all__ = ["PowerMonitor", "create_monitor", "monitor_class", "monitor_from_options",
           "monitor_kinds", "register_monitor"]
