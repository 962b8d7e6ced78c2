"""Host and firmware agree on every on-wire id.

firmware/src/wire_ids.h is the firmware's one home for them (`#define TR_<KIND>_<NAME>
<int>u`); rig/protocol.py (and the strategy catalogue) is the host's. This test parses the
header and compares family by family in both directions, so an id changed, added or
renamed on one side only fails here instead of on a device.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import IntEnum
from pathlib import Path

import pytest

from rig import protocol, strategies

HEADER = Path(__file__).resolve().parents[1] / "firmware" / "src" / "wire_ids.h"

_DEFINE = re.compile(r"^\s*#\s*define\s+(TR_\w+)\s+(0[xX][0-9A-Fa-f]+|\d+)[uU]?\b")


def header_ids(text: str) -> dict[str, int]:
    """Every `#define TR_X <int>` of the header (the include guard has no value)."""
    ids: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not re.match(r"^\s*#\s*define\s+TR_\w+\s+\S", line):
            continue
        m = _DEFINE.match(line)
        assert m, f"wire_ids.h:{lineno}: not `#define TR_<KIND>_<NAME> <int>u`: {line!r}"
        assert m.group(1) not in ids, f"wire_ids.h:{lineno}: {m.group(1)} defined twice"
        ids[m.group(1)] = int(m.group(2), 0)
    return ids


def host_strategy_ids() -> dict[str, int]:
    """Strategy name -> wire id from the host's one catalogue (rig.strategies)."""
    return {spec.name: int(spec.id) for spec in strategies.STRATEGIES}


def _enum(e: type[IntEnum]) -> dict[str, int]:
    return {m.name: int(m) for m in e}


def host_families() -> dict[str, Mapping[str, int]]:
    """Header kind prefix -> the host's NAME -> id table for it."""
    return {
        "TR_PROTO_": {
            "VERSION": protocol.PROTO_VERSION,
            "HEADER_SIZE": protocol.HEADER_SIZE,
            "CRC_SIZE": protocol.CRC_SIZE,
            "RESPONSE_BIT": protocol.RESPONSE_BIT,
            "FLAG_DUP": protocol.FLAG_DUP,
            "NAK_TEXT_MAX": protocol.NAK_TEXT_MAX,
        },
        "TR_MSG_": _enum(protocol.MsgType),
        "TR_NAK_": _enum(protocol.NakReason),
        "TR_DEBUG_": _enum(protocol.DebugAction),
        "TR_WHICH_": _enum(protocol.Which),
        "TR_DTYPE_": _enum(protocol.DType),
        "TR_COUNTER_": _enum(protocol.CounterKind),
        "TR_STRATEGY_": {n.upper().replace("-", "_"): i for n, i in host_strategy_ids().items()},
        "TR_PHASE_": {p.upper(): i for i, p in enumerate(protocol.StepResult.PHASES)},
        "TR_BB_OP_": _enum(protocol.BackboneOp),
        "TR_KERNELS_": _enum(protocol.KernelImpl),
    }


def split_families(ids: Mapping[str, int], prefixes: list[str]) -> dict[str, dict[str, int]]:
    """Group header ids by kind prefix (longest first); an id of no known kind fails."""
    out: dict[str, dict[str, int]] = {p: {} for p in prefixes}
    for name, value in ids.items():
        kind = next((p for p in sorted(prefixes, key=len, reverse=True)
                     if name.startswith(p)), None)
        assert kind is not None, f"wire_ids.h: {name} has no host counterpart family"
        out[kind][name[len(kind):]] = value
    return out


def differences(fw: Mapping[str, int], host: Mapping[str, int]) -> list[str]:
    """Human-readable mismatches of one family, both directions."""
    diff = [f"{n}: firmware {fw[n]}, host {host[n]}" for n in sorted(fw.keys() & host.keys())
            if fw[n] != host[n]]
    diff += [f"{n}: only in firmware" for n in sorted(fw.keys() - host.keys())]
    diff += [f"{n}: only on the host" for n in sorted(host.keys() - fw.keys())]
    return diff


def compare(text: str) -> dict[str, list[str]]:
    host = host_families()
    fw = split_families(header_ids(text), list(host))
    return {kind: d for kind in host if (d := differences(fw[kind], host[kind]))}


@pytest.fixture(scope="module")
def header_text() -> str:
    return HEADER.read_text()


def test_every_family_is_present(header_text: str) -> None:
    fw = split_families(header_ids(header_text), list(host_families()))
    assert all(fw.values()), [k for k, v in fw.items() if not v]


def test_firmware_and_host_ids_agree(header_text: str) -> None:
    assert compare(header_text) == {}


@pytest.mark.parametrize(("old", "new", "kind"), [
    ("#define TR_MSG_SELECT 0x32u", "#define TR_MSG_SELECT 0x35u", "TR_MSG_"),
    ("#define TR_NAK_NO_SPACE 9u\n", "", "TR_NAK_"),
    ("#define TR_STRATEGY_STATIC 6u", "#define TR_STRATEGY_STATIC 6u\n#define TR_STRATEGY_X 7u",
     "TR_STRATEGY_"),
    ("#define TR_PHASE_SELECTION 2u", "#define TR_PHASE_SELECT 2u", "TR_PHASE_"),
])
def test_a_one_sided_change_is_caught(header_text: str, old: str, new: str, kind: str) -> None:
    """The comparison can fail: an edited copy of the header disagrees in that family."""
    assert old in header_text
    assert kind in compare(header_text.replace(old, new))


def test_no_other_header_restates_an_id() -> None:
    """No other firmware header restates a wire id under the old prefixes."""
    src = HEADER.parent
    stale = re.compile(r"#\s*define\s+(MSG_|STRAT_|HAL_COUNTER_|BB_OP_|DS_|MLP_PH_|MLP_[WB]\b)")
    offenders = [f"{p.name}:{i}" for p in sorted(src.glob("*.[ch]")) if p != HEADER
                 for i, line in enumerate(p.read_text().splitlines(), 1) if stale.search(line)]
    assert offenders == []
