"""Load and validate `lab_config.yaml`: the lab's boards, targets, defaults and main job.

The file is composed into a YAML node tree (not loaded straight into dicts) so every
error can name the file, the line and the dotted key, say what was expected, and suggest
the closest known key for a typo. Validation is complete at load time: a `LabConfig`
that exists is consistent (every target names a known board, every QEMU target has a
machine, the default target exists).

Where the file is found: explicit path > `$TINYRIG_LAB_CONFIG` > `./lab_config.yaml` >
the package's default (`rig/data/lab_config.yaml`, the repository's own lab file).

The board catalogue ships with the package (`rig/data/boards.yaml`): a lab file lists its
targets, and its own `boards:` section only overrides a catalogue board key by key (a key
it gives replaces the catalogue's, `power:` and `training:` as a whole) or adds a board.
Errors name the file the offending key came from.

Kind-specific target options are declared in `rig.target_options` (one typed dataclass per
kind, defaults and checks on its fields); each target gets a finished instance. A plug-in
kind adds its class with `register_target_options` before the file is loaded. This module
imports nothing from `rig.targets` (dependency direction).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rig import resources, strategies
from rig.errors import ConfigError
from rig.link.policy import LinkPolicy
from rig.link.transport import DEFAULT_BAUD_POLICY, DEFAULT_BAUDRATE, DEFAULT_MAX_BAUD
from rig.locks import DEFAULT_BUSY_TIMEOUT_S, DEFAULT_ON_BUSY, OnBusy
from rig.schema import (
    MISSING,
    Field,
    Invalid,
    boolean,
    build,
    choice,
    fields_of,
    integer,
    list_of,
    number,
    optional,
    text,
    type_name,
)
from rig.strategies import NAMES as STRATEGIES
from rig.suggest import suggest
from rig.target_options import (  # noqa: F401 - plug-in kinds register through rig.config too
    TARGET_OPTIONS,
    TargetOptions,
    register_target_options,
)

ENV_VAR = "TINYRIG_LAB_CONFIG"
#: the default lab file inside the package (used when no other is found)
PACKAGE_CONFIG = resources.default_lab()
#: the board catalogue inside the package
BOARD_CATALOGUE = resources.board_catalogue()

CPUS = ("cortex-m4f", "cortex-m0", "host")
#: `defaults.target` values that are not a target name: categories resolved by rig.targets
TARGET_CATEGORIES = ("auto", "board")

_MISSING = MISSING
_MISSING_OK: Any = object()  # optional key without a default: left out of the result
_Bad = Invalid
_type_name = type_name


# --- typed result -------------------------------------------------------------------------


@dataclass(frozen=True)
class Power:
    """A calibrated energy model: current rises linearly with the core clock."""

    voltage_v: float
    current_ma_per_mhz: float
    static_current_ma: float = 0.0  # clock-independent part (leakage, regulators, board)


@dataclass(frozen=True)
class Board:
    name: str
    cpu: str
    clock_hz: int | None  # None only for the host (native) pseudo-board
    firmware: str  # board name of the prebuilt image in firmware/prebuilt/manifest.json
    uart: str = ""
    qemu_machine: str | None = None
    pyocd_target: str | None = None
    power: Power | None = None
    #: the measurement marker GPIO the firmware drives around each TRAIN_STEP (e.g.
    #: "PF13", "P1.08"), for a power monitor's logic input; "" = none (docs/profiling.md)
    marker: str = ""
    line: int = 0
    source: str = ""  # "file:line" of the board's entry (the lab's override, else catalogue)
    #: this board's overrides of the lab's `training:` section (only the keys it sets),
    #: for boards that cannot run the main job as is (e.g. the 16 KB microbit)
    training: Mapping[str, Any] = field(default_factory=dict)

    @property
    def counter_label(self) -> str:
        """What the firmware's counters mean on this board's real silicon."""
        return {"cortex-m4f": "cycles (DWT)", "cortex-m0": "SysTick ticks"}.get(
            self.cpu, "none (host)")


@dataclass(frozen=True)
class Defaults:
    target: str = "auto"
    timeout_s: float = 2.0
    retries: int = LinkPolicy.retries
    baudrate: int = DEFAULT_BAUDRATE
    link_rate: str = DEFAULT_BAUD_POLICY  # negotiate | fixed (rig.link_rate)
    link_max_baud: int = DEFAULT_MAX_BAUD
    #: a board held by another process (rig.locks, a labgrid place): wait | error
    on_busy: str = DEFAULT_ON_BUSY.value
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S


@dataclass(frozen=True)
class TargetConfig:
    name: str
    kind: str
    board: str
    enabled: bool = True
    #: the kind's options (rig.target_options), validated, every default filled in
    options: TargetOptions = field(default_factory=TargetOptions)
    source: str = ""  # "file:line" of the target's entry, for messages


@dataclass(frozen=True)
class Training:
    """The main job. Field names match `rig.session.RunSpec` so it can be built from this."""

    dims: tuple[int, ...] = (64, 32, 10)
    lr: float = 0.2
    momentum: float = 0.0
    batch: int = 16
    epochs: int = 3
    train_samples: int = 0
    test_samples: int = 0
    val_samples: int = 64
    seed: int = 0
    strategy: str = "full"
    sparams: tuple[float, ...] | None = None


@dataclass(frozen=True)
class LabConfig:
    path: Path
    defaults: Defaults
    boards: Mapping[str, Board]
    targets: Mapping[str, TargetConfig]
    training: Training

    def board(self, name: str) -> Board:
        try:
            return self.boards[name]
        except KeyError:
            raise ConfigError(f"{self.path}: no board {name!r}{suggest(name, self.boards)};"
                              f" boards: {', '.join(self.boards) or 'none'}") from None

    def target(self, name: str) -> TargetConfig:
        try:
            return self.targets[name]
        except KeyError:
            raise ConfigError(f"{self.path}: no target {name!r}{suggest(name, self.targets)}"
                              f"; targets: {', '.join(self.targets) or 'none'}") from None

    def board_of(self, target: TargetConfig | str) -> Board:
        tc = self.target(target) if isinstance(target, str) else target
        return self.board(tc.board)

    def enabled_targets(self, kind: str | None = None) -> list[TargetConfig]:
        """Enabled targets in file order, optionally of one kind."""
        return [t for t in self.targets.values()
                if t.enabled and (kind is None or t.kind == kind)]


# --- schema -------------------------------------------------------------------------------

_TOP = ("version", "defaults", "boards", "targets", "training")

_DEFAULTS = {
    "target": Field(text, "auto"),
    "timeout_s": Field(number(positive=True), Defaults.timeout_s),
    "retries": Field(integer(0, 100), Defaults.retries),
    "baudrate": Field(integer(300), Defaults.baudrate),
    "link_rate": Field(choice("negotiate", "fixed"), Defaults.link_rate),
    "link_max_baud": Field(integer(300), Defaults.link_max_baud),
    "on_busy": Field(choice(*(p.value for p in OnBusy)), Defaults.on_busy),
    "busy_timeout_s": Field(number(positive=True), Defaults.busy_timeout_s),
}

_BOARD = {
    "cpu": Field(choice(*CPUS)),
    "clock_hz": Field(optional(integer(1)), None),
    "firmware": Field(text, None),  # None: the board's own name
    "uart": Field(text, ""),
    "qemu_machine": Field(optional(text), None),
    "pyocd_target": Field(optional(text), None),
    "power": Field(lambda v: v, None),  # nested mapping, checked by _power
    "marker": Field(text, ""),
    "training": Field(lambda v: v, None),  # nested mapping: keys of training:, checked there
}

_POWER = {
    "voltage_v": Field(number(positive=True)),
    "current_ma_per_mhz": Field(number(positive=True)),
    "static_current_ma": Field(number(lo=0.0), 0.0),
}

_TARGET_COMMON = {
    "kind": Field(text),
    "board": Field(text),
    "enabled": Field(boolean, True),
}


_TRAINING = {
    "dims": Field(list_of(integer(1, 65535), min_len=2), Training.dims),
    "lr": Field(number(positive=True), Training.lr),
    "momentum": Field(number(lo=0.0), Training.momentum),
    "batch": Field(integer(1, 65535), Training.batch),
    "epochs": Field(integer(1), Training.epochs),
    "train_samples": Field(integer(0), Training.train_samples),
    "test_samples": Field(integer(0), Training.test_samples),
    "val_samples": Field(integer(0), Training.val_samples),
    "seed": Field(integer(0), Training.seed),
    "strategy": Field(choice(*STRATEGIES), Training.strategy),
    "sparams": Field(optional(list_of(number())), None),
}


# --- loading ------------------------------------------------------------------------------


def find_config(path: str | os.PathLike[str] | None = None) -> Path:
    """The lab file to use: explicit > $TINYRIG_LAB_CONFIG > ./lab_config.yaml > repo's."""
    if path is not None:
        chosen, why = Path(path), "given path"
    elif os.environ.get(ENV_VAR):
        chosen, why = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    elif Path("lab_config.yaml").is_file():
        chosen, why = Path("lab_config.yaml"), "current directory"
    else:
        chosen, why = PACKAGE_CONFIG, "the package's default"
    if chosen.is_dir():
        raise ConfigError(f"{chosen}: is a directory ({why}); expected a lab config file "
                          "such as lab_config.yaml")
    if not chosen.is_file():
        raise ConfigError(f"{chosen}: lab config not found ({why})")
    return chosen


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from exc


def load_config(path: str | os.PathLike[str] | None = None) -> LabConfig:
    """Read and validate the lab file (see `find_config` for which one)."""
    file = find_config(path)
    return parse_config(_read(file), file)


def parse_config(source: str, file: str | os.PathLike[str] = "<string>",
                 catalogue: str | os.PathLike[str] | None = None) -> LabConfig:
    """Validate `source` (the lab file's text) over the board catalogue `catalogue`
    (default: the package's)."""
    cat_file = Path(catalogue) if catalogue is not None else BOARD_CATALOGUE
    return _Parser(source, Path(file), _Parser(_read(cat_file), cat_file)).parse()


_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _NamedText(io.StringIO):
    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


class _Parser:
    def __init__(self, source: str, file: Path, catalogue: _Parser | None = None) -> None:
        self.source = source
        self.file = file
        # libyaml's parser where PyYAML has it (~10x the pure-Python one: the lab file and
        # the board catalogue are parsed on every start); the stream's name is what every
        # node's mark names as its file (merged boards)
        self.loader = _LOADER(_NamedText(source, str(file)))
        self.catalogue = catalogue

    # -- errors --

    def error(self, node: yaml.Node | None, key: str, problem: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else 1
        file = node.start_mark.name if node is not None else str(self.file)
        where = f"{key}: " if key else ""
        return ConfigError(f"{file}:{line}: {where}{problem}")

    def syntax_error(self, exc: yaml.YAMLError) -> ConfigError:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        key = self._key_near(line)
        near = f"near key {key!r}: " if key else ""
        col = f":{mark.column + 1}" if mark is not None else ""
        return ConfigError(f"{self.file}:{line}{col}: {near}YAML syntax error: {problem}"
                           + (f" ({context})" if context else "")
                           + "; expected valid YAML (check indentation, quotes and colons)")

    def _key_near(self, line: int) -> str | None:
        """The closest `key:` at or above `line`, to point at the entry a syntax error is in."""
        lines = self.source.splitlines()
        for text_line in reversed(lines[:line]):
            m = re.match(r"\s*-?\s*([A-Za-z0-9_.\-]+)\s*:", text_line)
            if m:
                return m.group(1)
        return None

    # -- node helpers --

    def value(self, node: yaml.Node) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:  # !ENV, !!python/..., other tags
            where = exc.problem_mark or node.start_mark
            m = re.search(r"tag '([^']*)'", str(exc.problem))
            tag = (m.group(1) if m else node.tag).replace("tag:yaml.org,2002:", "!!")
            raise ConfigError(
                f"{self.file}:{where.line + 1}: unsupported YAML tag {tag}; the lab file is "
                "plain YAML (no !ENV, !!python/... or other tags): write the value itself"
            ) from None

    def mapping(self, node: yaml.Node, key: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Entries of a mapping node by key; rejects non-mappings and duplicate keys."""
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, key, f"expected a mapping (key: value lines), got "
                                        f"{_type_name(self.value(node))}")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            name = self.value(knode)
            if not isinstance(name, str):
                hint = (" (YAML 1.1 reads yes/no/on/off/true/false as booleans: quote the "
                        f"name, e.g. '{knode.value}':)" if isinstance(name, bool) else "")
                raise self.error(knode, key, f"expected a string key, got {name!r}{hint}")
            if name in out:
                first = out[name][0].start_mark.line + 1
                raise self.error(knode, _join(key, name),
                                 f"duplicate key (first defined on line {first})")
            out[name] = (knode, vnode)
        return out

    def fields(self, node: yaml.Node, key: str, schema: Mapping[str, Field],
               foreign: Mapping[str, str] | None = None,
               owner: yaml.Node | None = None,
               entries: Mapping[str, tuple[yaml.Node, yaml.Node]] | None = None
               ) -> dict[str, Any]:
        """Check a mapping against `schema`; `foreign` maps keys of other kinds to a hint.
        A missing key is reported at `owner` (the key naming this mapping) when given.
        `entries`: the mapping's entries already merged (a board over the catalogue's)."""
        if entries is None:
            entries = self.mapping(node, key)
        for name, (knode, _) in entries.items():
            if name not in schema:
                hint = (foreign or {}).get(name)
                extra = f"; {hint}" if hint else suggest(name, schema)
                raise self.error(knode, _join(key, name),
                                 f"unknown key{extra}; expected one of: {', '.join(schema)}")
        out: dict[str, Any] = {}
        for name, spec in schema.items():
            if name in entries:
                vnode = entries[name][1]
                try:
                    out[name] = spec.check(self.value(vnode))
                except _Bad as exc:
                    raise self.error(vnode, _join(key, name), str(exc)) from None
            elif spec.default is _MISSING:
                raise self.error(owner or node, _join(key, name), f"missing required key {name!r} "
                                                         f"in {key or 'the file'}")
            else:
                out[name] = spec.default
        return out

    # -- sections --

    def parse(self) -> LabConfig:
        try:
            root = self.loader.get_single_node()
        except yaml.YAMLError as exc:
            raise self.syntax_error(exc) from None
        if root is None:
            raise ConfigError(f"{self.file}:1: the file is empty; expected the sections "
                              f"{', '.join(_TOP)}")
        top = self.mapping(root, "")
        for name, (knode, _) in top.items():
            if name not in _TOP:
                raise self.error(knode, name, f"unknown section{suggest(name, _TOP)}; "
                                              f"expected one of: {', '.join(_TOP)}")
        if "version" in top:
            vnode = top["version"][1]
            if self.value(vnode) != 1:
                raise self.error(vnode, "version", f"expected 1, got {self.value(vnode)!r}")
        null = yaml.ScalarNode("tag:yaml.org,2002:null", "", root.start_mark, root.end_mark)

        def section(name: str) -> yaml.Node:
            return top[name][1] if name in top else null

        defaults = Defaults(**self.fields(section("defaults"), "defaults", _DEFAULTS))
        boards = self.boards(section("boards"))
        targets = self.targets(section("targets"), boards, defaults)
        training = self.training(section("training"))
        self.check_default_target(section("defaults"), defaults, targets)
        return LabConfig(self.file, defaults, boards, targets, training)

    def catalogue_boards(self) -> dict[str, tuple[yaml.Node, dict[str, tuple[yaml.Node,
                                                                          yaml.Node]]]]:
        """{board: (key node, entries)} of the catalogue file this parser reads."""
        try:
            root = self.loader.get_single_node()
        except yaml.YAMLError as exc:
            raise self.syntax_error(exc) from None
        if root is None:
            return {}
        top = self.mapping(root, "")
        for name, (knode, _) in top.items():
            if name != "boards":
                raise self.error(knode, name, "unknown section; a board catalogue holds only "
                                              "boards:")
        if "boards" not in top:
            return {}
        return {name: (knode, self.mapping(vnode, f"boards.{name}"))
                for name, (knode, vnode) in self.mapping(top["boards"][1], "boards").items()}

    def boards(self, node: yaml.Node) -> dict[str, Board]:
        merged = self.catalogue.catalogue_boards() if self.catalogue is not None else {}
        for name, (knode, vnode) in self.mapping(node, "boards").items():
            own = self.mapping(vnode, f"boards.{name}")
            base = merged.get(name, (knode, {}))[1]
            merged[name] = (knode, {**base, **own})
        out = {}
        for name, (knode, entries) in merged.items():
            key = f"boards.{name}"
            vnode = knode  # a merged board has no single mapping node; errors point at its key
            f = self.fields(vnode, key, _BOARD, owner=knode, entries=entries)
            if f["cpu"] != "host" and f["clock_hz"] is None:
                raise self.error(knode, f"{key}.clock_hz",
                                 f"missing required key 'clock_hz' for a {f['cpu']} board "
                                 "(core clock in Hz, e.g. 25000000)")
            power = None
            if f["power"] is not None:
                pkey, pnode = entries["power"]
                power = Power(**self.fields(pnode, f"{key}.power", _POWER, owner=pkey))
            training: dict[str, Any] = {}
            if f["training"] is not None:
                tnode = entries["training"][1]
                only_given = {k: Field(spec.check, _MISSING_OK) for k, spec in _TRAINING.items()}
                training = {k: v for k, v in self.fields(tnode, f"{key}.training",
                                                         only_given).items()
                            if v is not _MISSING_OK}
            out[name] = Board(name=name, cpu=f["cpu"], clock_hz=f["clock_hz"],
                              firmware=f["firmware"] or name, uart=f["uart"],
                              qemu_machine=f["qemu_machine"], pyocd_target=f["pyocd_target"],
                              power=power, marker=f["marker"], line=knode.start_mark.line + 1,
                              source=f"{knode.start_mark.name}:{knode.start_mark.line + 1}",
                              training=training)
        return out

    def targets(self, node: yaml.Node, boards: Mapping[str, Board], defaults: Defaults
                ) -> dict[str, TargetConfig]:
        out = {}
        for name, (knode, vnode) in self.mapping(node, "targets").items():
            key = f"targets.{name}"
            entries = self.mapping(vnode, key)
            if "kind" not in entries:
                raise self.error(knode, f"{key}.kind",
                                 f"missing required key 'kind'; expected one of "
                                 f"{', '.join(TARGET_OPTIONS)}")
            kind_node = entries["kind"][1]
            kind = self.value(kind_node)
            if kind not in TARGET_OPTIONS:
                raise self.error(kind_node, f"{key}.kind",
                                 f"expected one of {', '.join(TARGET_OPTIONS)}, got {kind!r}"
                                 f"{suggest(str(kind), TARGET_OPTIONS)}")
            own = fields_of(TARGET_OPTIONS[kind])
            owners: dict[str, list[str]] = {}
            for k, cls in TARGET_OPTIONS.items():
                for opt in fields_of(cls):
                    if k != kind and opt not in own:
                        owners.setdefault(opt, []).append(k)
            foreign = {opt: f"{opt!r} is an option of kind {' and '.join(ks)}, not {kind}"
                       for opt, ks in owners.items()}
            f = self.fields(vnode, key, {**_TARGET_COMMON, **own}, foreign, owner=knode)
            board = f["board"]
            if board not in boards:
                raise self.error(entries["board"][1], f"{key}.board",
                                 f"unknown board {board!r}{suggest(board, boards)}; expected "
                                 f"one of the boards: section: {', '.join(boards) or 'none'}")
            given = {k: v for k, v in f.items() if k not in _TARGET_COMMON}
            where = f"{self.file}:{knode.start_mark.line + 1}: {key}"
            options = build(TARGET_OPTIONS[kind], given, where, defaults, checked=True)
            if kind == "qemu" and not (getattr(options, "machine", None)
                                       or boards[board].qemu_machine):
                raise self.error(knode, f"{key}.machine",
                                 f"missing QEMU machine: board {board!r} has no qemu_machine;"
                                 " set machine: (e.g. mps2-an386)")
            out[name] = TargetConfig(name=name, kind=kind, board=board, enabled=f["enabled"],
                                     options=options,
                                     source=f"{self.file}:{knode.start_mark.line + 1}")
        return out

    def training(self, node: yaml.Node) -> Training:
        f = self.fields(node, "training", _TRAINING)
        if f["sparams"] is not None:  # count and ranges from the strategy catalogue
            try:
                strategies.get(f["strategy"]).resolve(f["sparams"])
            except ConfigError as exc:
                vnode = self.mapping(node, "training")["sparams"][1]
                raise self.error(vnode, "training.sparams", str(exc)) from None
        return Training(**f)

    def check_default_target(self, node: yaml.Node, defaults: Defaults,
                             targets: Mapping[str, TargetConfig]) -> None:
        known = (*TARGET_CATEGORIES, *TARGET_OPTIONS, *targets)
        if defaults.target not in known:
            vnode = self.mapping(node, "defaults")["target"][1]
            raise self.error(vnode, "defaults.target",
                             f"expected auto, board, a target kind ({', '.join(TARGET_OPTIONS)}"
                             f") or a target name ({', '.join(targets) or 'none defined'}), "
                             f"got {defaults.target!r}{suggest(defaults.target, known)}")


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key
