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

from typing import Any

from rig.profile.monitors import joulescope, lpm01a, ppk2  # noqa: F401  (registration)
from rig.profile.monitors.base import (
    PowerMonitor,
    monitor_class,
    monitor_kinds,
    register_monitor,
)


def create_monitor(kind: str, **options: Any) -> PowerMonitor:
    """A monitor of `kind` built from its options (e.g. lab_config's monitor entry)."""
    return monitor_class(kind)(**options)


__all__ = ["PowerMonitor", "create_monitor", "monitor_class", "monitor_kinds",
           "register_monitor"]
