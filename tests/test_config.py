"""lab_config.yaml loading: defaults, lookup order, and errors that name file, line, key."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rig.config import (
    BOARD_CATALOGUE,
    ENV_VAR,
    PACKAGE_CONFIG,
    Defaults,
    Training,
    find_config,
    load_config,
    parse_config,
)
from rig.errors import ConfigError
from rig.target_options import QemuOptions, SerialOptions

GOOD = """\
version: 1
defaults:
  target: qemu
  timeout_s: 1.5
boards:
  an386:
    cpu: cortex-m4f
    clock_hz: 25000000
    firmware: mps2-an386
    qemu_machine: mps2-an386
    power:
      voltage_v: 3.3
      current_ma_per_mhz: 0.2
targets:
  qemu:
    kind: qemu
    board: an386
  uart:
    kind: serial
    board: an386
    port: socket://127.0.0.1:4000
    enabled: false
training:
  dims: [64, 16, 10]
  strategy: tinyprop
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_repo_config_loads() -> None:
    cfg = load_config(PACKAGE_CONFIG)
    assert "mps2-an386" in cfg.boards
    board = cfg.boards["mps2-an386"]
    assert (board.cpu, board.clock_hz, board.qemu_machine) == ("cortex-m4f", 25_000_000,
                                                                "mps2-an386")
    assert cfg.targets["qemu"].kind == "qemu" and cfg.targets["qemu"].enabled
    assert cfg.training.dims == (64, 32, 10)


def test_good_file_values_and_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.defaults == Defaults(target="qemu", timeout_s=1.5)
    board = cfg.board("an386")
    assert board.firmware == "mps2-an386" and board.power is not None
    assert board.power.voltage_v == 3.3 and board.line == 6
    assert board.counter_label == "cycles (DWT)"
    q = cfg.targets["qemu"]
    assert isinstance(q.options, QemuOptions)
    assert q.options.flash == "kernel" and q.options.extra_args == ()
    assert q.source.endswith("lab.yaml:15")
    uart = cfg.targets["uart"].options
    assert isinstance(uart, SerialOptions) and uart.baudrate == 115200  # defaults.baudrate
    assert [t.name for t in cfg.enabled_targets()] == ["qemu"]
    assert cfg.training == Training(dims=(64, 16, 10), strategy="tinyprop")


def test_empty_sections_take_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "version: 1\nboards:\ntargets:\n"))
    assert cfg.defaults == Defaults() and cfg.training == Training()
    assert dict(cfg.targets) == {}
    # no boards of its own: the package's catalogue, every board from there
    assert "mps2-an386" in cfg.boards and "microbit" in cfg.boards
    assert all(b.source.startswith(f"{BOARD_CATALOGUE}:") for b in cfg.boards.values())


def test_lab_lists_only_targets_and_overrides_a_board_key_by_key(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, """\
boards:
  microbit:
    clock_hz: 32000000
  my-board:
    cpu: cortex-m0
    clock_hz: 48000000
    firmware: microbit
targets:
  q:
    kind: qemu
    board: microbit
  mine:
    kind: serial
    board: my-board
    port: socket://127.0.0.1:9
"""))
    microbit = cfg.board("microbit")
    assert microbit.clock_hz == 32_000_000  # the lab's key
    assert microbit.qemu_machine == "microbit" and microbit.cpu == "cortex-m0"  # catalogue's
    assert microbit.training["dims"] == (64, 8, 10)
    assert microbit.source.endswith("lab.yaml:2")
    assert cfg.board("my-board").source.endswith("lab.yaml:4")
    assert cfg.board("mps2-an386").source.startswith(f"{BOARD_CATALOGUE}:")


def test_board_override_errors_name_the_lab_file(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "boards:\n  microbit:\n    clock_hz: fast\n")
    assert msg.startswith(f"{tmp_path / 'lab.yaml'}:3: boards.microbit.clock_hz:"), msg
    msg = error_of(tmp_path, "boards:\n  new-board:\n    clock_hz: 1000\n")
    assert msg.startswith(f"{tmp_path / 'lab.yaml'}:2: boards.new-board.cpu: missing"), msg
    msg = error_of(tmp_path, "boards:\n  microbit:\n    cpus: cortex-m0\n")
    assert "lab.yaml:3: boards.microbit.cpus: unknown key (did you mean 'cpu'?)" in msg, msg


def test_training_matches_run_spec() -> None:
    """`RunSpec(**asdict(config.training))` must keep working for rig.session."""
    session = pytest.importorskip("rig.session")
    spec_fields = {f.name for f in dataclasses.fields(session.RunSpec)}
    assert {f.name for f in dataclasses.fields(Training)} <= spec_fields
    session.RunSpec(**dataclasses.asdict(Training()))


# --- errors: file, line, key, expectation ---------------------------------------------------


def test_syntax_error_names_file_line_and_nearby_key(tmp_path: Path) -> None:
    msg = error_of(tmp_path, """\
        boards:
          an386:
            cpu: cortex-m4f
            clock_hz: [25000000
        targets: {}
        """)
    assert "lab.yaml:5" in msg and "YAML syntax error" in msg
    assert "near key" in msg


def test_tab_indentation_is_a_syntax_error(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "boards:\n\tan386:\n")
    assert "lab.yaml:2:1: near key 'an386': YAML syntax error" in msg


def test_unknown_top_level_key_suggests(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD + "trainig:\n  lr: 0.1\n")
    assert "lab.yaml:26: trainig: unknown section (did you mean 'training'?)" in msg


def test_unknown_nested_key_suggests(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("    clock_hz: 25000000", "    clock_hx: 25000000"))
    assert "lab.yaml:8: boards.an386.clock_hx: unknown key (did you mean 'clock_hz'?)" in msg
    assert "expected one of: cpu, clock_hz" in msg


def test_option_of_another_kind_is_explained(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("    board: an386\n  uart:",
                                          "    board: an386\n    port: /dev/x\n  uart:"))
    assert "lab.yaml:18: targets.qemu.port: unknown key" in msg
    assert "option of kind serial and pyocd, not qemu" in msg


def test_wrong_type(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("clock_hz: 25000000", "clock_hz: fast"))
    assert "lab.yaml:8: boards.an386.clock_hz: expected an integer >= 1, got str 'fast'" in msg


def test_wrong_type_in_list(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("[64, 16, 10]", "[64, x, 10]"))
    assert "lab.yaml:24: training.dims: item 1: expected an integer" in msg


def test_bool_is_not_an_integer(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("  timeout_s: 1.5", "  timeout_s: 1.5\n  retries: yes"))
    assert "lab.yaml:5: defaults.retries: expected an integer" in msg


def test_bad_choice_suggests(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("cpu: cortex-m4f", "cpu: cortex-m4"))
    assert "lab.yaml:7: boards.an386.cpu: expected one of cortex-m4f, cortex-m0, host" in msg
    assert "did you mean 'cortex-m4f'?" in msg


def test_unknown_kind(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("kind: qemu", "kind: qemuu"))
    assert "lab.yaml:16: targets.qemu.kind: expected one of qemu, serial, native, pyocd" in msg
    assert "did you mean 'qemu'?" in msg


def test_missing_required_key(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("    cpu: cortex-m4f\n", ""))
    assert "lab.yaml:6: boards.an386.cpu: missing required key 'cpu'" in msg


def test_missing_kind(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("    kind: serial\n", ""))
    assert "lab.yaml:18: targets.uart.kind: missing required key 'kind'" in msg


def test_missing_serial_port(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("    port: socket://127.0.0.1:4000\n", ""))
    assert "lab.yaml:18: targets.uart.port: missing required key 'port'" in msg


def test_missing_clock_for_mcu(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("    clock_hz: 25000000\n", ""))
    assert "lab.yaml:6: boards.an386.clock_hz: missing required key 'clock_hz'" in msg


def test_unknown_board_reference(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("    board: an386\n  uart:", "    board: an368\n  uart:"))
    assert "lab.yaml:17: targets.qemu.board: unknown board 'an368' (did you mean 'an386'?)" in msg


def test_qemu_target_needs_a_machine(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("    qemu_machine: mps2-an386\n", ""))
    assert "lab.yaml:14: targets.qemu.machine: missing QEMU machine" in msg


def test_bad_default_target(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("target: qemu", "target: uartt"))
    assert "lab.yaml:3: defaults.target:" in msg and "did you mean 'uart'?" in msg


def test_duplicate_key(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("    kind: qemu\n", "    kind: qemu\n    kind: qemu\n"))
    assert "lab.yaml:17: targets.qemu.kind: duplicate key (first defined on line 16)" in msg


def test_section_must_be_mapping(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "boards: [a, b]\n")
    assert "lab.yaml:1: boards: expected a mapping" in msg


def test_boolean_looking_name_is_explained(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("  uart:", "  off:"))
    assert "lab.yaml:18: targets: expected a string key, got False" in msg
    assert "quote the name, e.g. 'off':" in msg


def test_bad_serial_url(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("socket://127.0.0.1:4000", "ttyACM0"))
    assert "lab.yaml:21: targets.uart.port: expected a device path" in msg


def test_bad_version(tmp_path: Path) -> None:
    assert "lab.yaml:1: version: expected 1, got 2" in error_of(tmp_path, "version: 2\n")


def test_empty_file(tmp_path: Path) -> None:
    assert "lab.yaml:1: the file is empty" in error_of(tmp_path, "# nothing\n")


@settings(max_examples=30, deadline=None)
@given(st.from_regex(r"[a-z][a-z_]{2,12}", fullmatch=True))
def test_any_unknown_key_is_named_with_its_line(key: str) -> None:
    if key in ("version", "defaults", "boards", "targets", "training", "target", "timeout_s",
               "retries", "baudrate"):
        return
    text = f"defaults:\n  target: auto\n  {key}: 1\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yaml")
    assert f"x.yaml:3: defaults.{key}: unknown key" in str(info.value)


# --- which file -----------------------------------------------------------------------------


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = write(tmp_path, GOOD)
    env_file = tmp_path / "env.yaml"
    env_file.write_text(GOOD)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert find_config() == PACKAGE_CONFIG
    (cwd / "lab_config.yaml").write_text(GOOD)
    assert find_config() == Path("lab_config.yaml")
    monkeypatch.setenv(ENV_VAR, str(env_file))
    assert find_config() == env_file
    assert find_config(explicit) == explicit


def test_missing_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=r"nope.yaml: lab config not found \(\$TINYRIG"):
        load_config()


def test_pyocd_hello_timeout_is_an_option(tmp_path: Path) -> None:
    """Every option a target reads is declared, so the lab file can set it."""
    from rig.target_options import PyocdOptions

    cfg = load_config(write(tmp_path, """\
version: 1
defaults:
  baudrate: 57600
boards:
  nucleo:
    cpu: cortex-m4f
    clock_hz: 180000000
    pyocd_target: stm32f429xi
targets:
  board:
    kind: pyocd
    board: nucleo
    hello_timeout_s: 2.5
"""))
    opts = cfg.targets["board"].options
    assert isinstance(opts, PyocdOptions)
    assert opts.hello_timeout_s == 2.5 and opts.baudrate == 57600 and opts.flash == "auto"


def test_training_sparams_checked_against_the_catalogue(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\ntraining:\n  strategy: tinyprop\n"
                           "  sparams: [0.9, 0.1]\n")
    with pytest.raises(ConfigError, match=r"lab.yaml:4: training.sparams: strategy "
                                          r"'tinyprop': need 0 ≤ S_min ≤ S_max ≤ 1"):
        load_config(path)


@pytest.mark.parametrize(("line", "tag"), [
    ("  timeout_s: !ENV ${TIMEOUT}", "!ENV"),
    ("  timeout_s: !!python/object/apply:os.system [echo]", "!!python/object/apply:os.system"),
])
def test_yaml_tags_are_a_config_error_with_the_line(tmp_path: Path, line: str,
                                                    tag: str) -> None:
    msg = error_of(tmp_path, GOOD.replace("  timeout_s: 1.5", line))
    assert f"lab.yaml:4: unsupported YAML tag {tag};" in msg


@pytest.mark.parametrize(("line", "key"), [("  lr: .nan", "training.lr"),
                                           ("  momentum: .inf", "training.momentum"),
                                           ("  sparams: [0.1, .nan]", "training.sparams")])
def test_non_finite_numbers_are_rejected(tmp_path: Path, line: str, key: str) -> None:
    msg = error_of(tmp_path, GOOD + line + "\n")
    assert f"lab.yaml:26: {key}:" in msg and "finite" in msg


def test_a_directory_is_not_a_lab_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_markup_in_a_config_value_prints_as_text(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from rig import cli

    path = write(tmp_path, GOOD.replace("target: qemu", 'target: "[/x] [bold]"'))
    assert cli.main(["--config", str(path), "run"]) == 2
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1 and "got '[/x] [bold]'" in out
