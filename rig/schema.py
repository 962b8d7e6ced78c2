"""Declarative value checks for the lab file and for the options each target kind declares.

A check takes a constructed YAML value and returns it converted, or raises `Invalid` saying
what was expected. `Field` pairs a check with a default; `option()` puts the same pair on a
dataclass field, so a target kind declares its options once (`rig.target_options`) and the
config loader validates them with file:line:key errors (`fields_of`). Standard library only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rig.errors import ConfigError
from rig.suggest import suggest

#: a Field without a default: the key is required
MISSING: Any = object()


class Invalid(Exception):
    """A value does not fit; the message says what was expected."""


@dataclass(frozen=True)
class Field:
    """One key of a mapping: what it accepts and its default (`MISSING` = required)."""

    check: Callable[[Any], Any]
    default: Any = MISSING


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[Any], int]:
    what = "an integer" + (f" >= {lo}" if lo is not None else "") + (
        f" <= {hi}" if hi is not None else "")

    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise Invalid(f"expected {what}, got {type_name(v)} {v!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise Invalid(f"expected {what}, got {v}")
        return v
    return check


def number(lo: float | None = None, positive: bool = False) -> Callable[[Any], float]:
    what = "a number" + (" > 0" if positive else f" >= {lo}" if lo is not None else "")

    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise Invalid(f"expected {what}, got {type_name(v)} {v!r}")
        if not math.isfinite(v):  # YAML's .nan / .inf
            raise Invalid(f"expected {what} (finite), got {v}")
        if (positive and v <= 0) or (lo is not None and v < lo):
            raise Invalid(f"expected {what}, got {v}")
        return float(v)
    return check


def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise Invalid(f"expected true or false, got {type_name(v)} {v!r}")
    return v


def text(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise Invalid(f"expected a non-empty string, got {type_name(v)} {v!r}")
    return v


def choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise Invalid(f"expected one of {', '.join(options)}, got {v!r}"
                       f"{suggest(str(v), options)}")
        return v
    return check


def optional(inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        return None if v is None else inner(v)
    return check


def list_of(inner: Callable[[Any], Any], min_len: int = 0) -> Callable[[Any], tuple[Any, ...]]:
    def check(v: Any) -> tuple[Any, ...]:
        if not isinstance(v, list):
            raise Invalid(f"expected a list, got {type_name(v)} {v!r}")
        if len(v) < min_len:
            raise Invalid(f"expected a list of at least {min_len} items, got {len(v)}")
        out = []
        for i, item in enumerate(v):
            try:
                out.append(inner(item))
            except Invalid as exc:
                raise Invalid(f"item {i}: {exc}") from None
        return tuple(out)
    return check


def serial_url(v: Any) -> str:
    v = text(v)
    if "://" not in v and not v.startswith(("/", "COM")):
        raise Invalid(f"expected a device path (/dev/ttyACM0) or a pyserial URL "
                   f"(socket://host:port, rfc2217://host:port), got {v!r}")
    return v


def string_map(v: Any) -> dict[str, str]:
    """A mapping of names to strings (YAML `key: value` lines); numbers become strings."""
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, (str, int))
                                          and not isinstance(x, bool) for k, x in v.items()):
        raise Invalid(f"expected a mapping of names to strings (key: value lines), got "
                      f"{type_name(v)} {v!r}")
    return {k: str(x) for k, x in v.items()}


def option(check: Callable[[Any], Any], default: Any = MISSING, *,
           lab_default: str | None = None) -> Any:
    """A dataclass field that is also a lab-file key: `check` validates the file's value;
    `default` is used when the key is absent. `lab_default` names a `defaults:` entry of the
    lab file that an absent (or null) value takes instead (e.g. `baudrate`)."""
    meta = {"check": check, "lab_default": lab_default}
    if default is MISSING:
        return dataclasses.field(metadata=meta)
    if isinstance(default, list | dict):
        raise TypeError("option defaults must be immutable (use a tuple)")
    return dataclasses.field(default=default, metadata=meta)


def fields_of(cls: type) -> dict[str, Field]:
    """The lab-file schema of an options dataclass: key -> Field (check, default)."""
    out = {}
    for f in dataclasses.fields(cls):
        check = f.metadata.get("check")
        if check is None:
            continue
        default = MISSING if f.default is dataclasses.MISSING else f.default
        if f.metadata.get("lab_default"):
            check, default = optional(check), None  # None: take the lab's default
        out[f.name] = Field(check, default)
    return out


def build(cls: type, values: Mapping[str, Any], where: str, lab_defaults: Any = None, *,
          checked: bool = False) -> Any:
    """An options dataclass from lab-file values (`values` may be partial: the dataclass
    defaults fill the rest). `lab_defaults` (the lab's `defaults:`) fills keys declared with
    `lab_default`. Unless `checked` (the config loader has checked them, with file:line),
    each value is checked here; ConfigError names `where` and the key."""
    schema = fields_of(cls)
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in schema:
            raise ConfigError(f"{where}: unknown option {key!r}{suggest(key, schema)}; "
                              f"expected one of: {', '.join(schema)}")
        try:
            out[key] = value if checked else schema[key].check(value)
        except Invalid as exc:
            raise ConfigError(f"{where}: {key}: {exc}") from None
    for f in dataclasses.fields(cls):
        name = f.metadata.get("lab_default")
        if name and out.get(f.name) is None:
            if lab_defaults is not None:
                out[f.name] = getattr(lab_defaults, name)
            else:
                out.pop(f.name, None)  # the dataclass default
    try:
        return cls(**out)
    except TypeError as exc:  # a required option is missing
        missing = [k for k, fld in schema.items() if fld.default is MISSING and k not in out]
        raise ConfigError(f"{where}: missing required option "
                          f"{', '.join(map(repr, missing)) or exc}") from None
