"""Every `rig run` option with bad values: exit 2, one line naming the option, no traceback,
and no target started (a property test over the parser, in-process through `rig.cli.main`).

Targets start only in `rig.connection.connect`; the test replaces it with a recorder, so a
bad value that slipped through to the bring-up is caught as "a target was started".
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig import backbones, cli, strategies
from rig.config import TARGET_CATEGORIES, TARGET_OPTIONS, load_config
from rig.errors import RigError

# A training split larger than any digits split (1797 samples in all).
TOO_MANY = 1797
_LAB = load_config()
KNOWN_TARGETS = {*_LAB.targets, *TARGET_CATEGORIES, *TARGET_OPTIONS}


class _Started(RigError):
    pass


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    import rig.connection

    record: list[str] = []

    def connect(target: object, **kwargs: object) -> None:
        record.append(str(target))
        raise _Started("a target was started")

    monkeypatch.setattr(rig.connection, "connect", connect)
    yield record


def _words() -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="ascii", categories=("L", "N", "P")), min_size=1,
                   max_size=12).filter(lambda s: not s.startswith("-"))


def _floats_bad(positive: bool) -> st.SearchStrategy[float]:
    low = st.floats(max_value=0.0 if positive else -1e-30, allow_nan=False)
    return st.one_of(low, st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e39,
                                           *([1e-50] if positive else [])]))


def _num(x: float) -> str:
    return repr(x)


# option -> hypothesis strategy of bad argument lists; the line must name `option`
BAD: dict[str, st.SearchStrategy[list[str]]] = {
    "--epochs": st.integers(max_value=0).map(lambda n: ["--epochs", str(n)]),
    "--batch": st.one_of(st.integers(max_value=0), st.integers(min_value=65536)).map(
        lambda n: ["--batch", str(n)]),
    "--lr": _floats_bad(True).map(lambda x: ["--lr", _num(x)]),
    "--momentum": _floats_bad(False).map(lambda x: ["--momentum", _num(x)]),
    "--train-samples": st.one_of(st.integers(max_value=-1), st.integers(min_value=TOO_MANY))
    .map(lambda n: ["--train-samples", str(n)]),
    "--test-samples": st.one_of(st.integers(max_value=-1), st.integers(min_value=TOO_MANY))
    .map(lambda n: ["--test-samples", str(n)]),
    "--seed": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32)).map(
        lambda n: ["--seed", str(n)]),
    "--params-every": st.integers(max_value=-1).map(lambda n: ["--params-every", str(n)]),
    "--backbone": _words().filter(lambda s: s not in backbones.NAMES).map(
        lambda s: ["--backbone", s]),
    "--strategy": _words().filter(lambda s: s not in strategies.NAMES).map(
        lambda s: ["--strategy", s]),
    "--sparams": st.one_of(
        st.lists(st.floats(0, 1), min_size=4, max_size=6).map(
            lambda v: ["--strategy", "tinyprop", "--sparams", *map(_num, v)]),
        st.floats(min_value=1.01, max_value=1e30).map(
            lambda x: ["--strategy", "velocity-budget", "--sparams", _num(x)]),
        st.sampled_from(["nan", "inf"]).map(lambda x: ["--sparams", x])),
    "--target": st.one_of(_words().filter(lambda s: s not in KNOWN_TARGETS),
                          st.just("")).map(lambda s: ["--target", s]),
    "--json": st.sampled_from(["/nonexistent-dir/report.json", "/tmp", ""]).map(
        lambda p: ["--json", p]),
    # --lockstep reads parameters every step: another --params-every contradicts it
    "--lockstep --params-every": st.integers(min_value=2, max_value=10**6).map(
        lambda n: ["--lockstep", "--params-every", str(n)]),
}
# values argparse itself rejects (type errors) name the option too
NOT_A_NUMBER = st.sampled_from(["--epochs", "--batch", "--lr", "--momentum",
                                "--train-samples", "--test-samples", "--seed",
                                "--params-every", "--sparams"])


def _run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli.main(argv)
    return code, out.getvalue()


def _assert_rejected(argv: list[str], option: str, started: list[str]) -> None:
    started.clear()  # one fixture instance serves every hypothesis example
    code, out = _run(argv)
    lines = out.splitlines()
    assert code == 2, (argv, out)
    assert "Traceback" not in out, out
    assert len(lines) == 1, (argv, lines)
    assert option.split()[-1] in lines[0], (argv, lines)
    assert not started, (argv, started)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(sorted(BAD)).flatmap(lambda o: BAD[o].map(lambda a: (o, a))))
def test_bad_option_values_exit_2_before_any_target(case: tuple[str, list[str]],
                                                    started: list[str]) -> None:
    option, args = case
    _assert_rejected(["run", *args], option, started)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=NOT_A_NUMBER, value=_words().filter(
    lambda s: not _is_number(s)))
def test_non_numbers_exit_2_naming_the_option(option: str, value: str,
                                              started: list[str]) -> None:
    _assert_rejected(["run", option, value], option, started)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("config", ["dir", "missing"])
def test_bad_config_path_exits_2_naming_it(config: str, tmp_path: Path,
                                           started: list[str]) -> None:
    path = tmp_path if config == "dir" else tmp_path / "nope.yaml"
    code, out = _run(["--config", str(path), "run"])
    assert code == 2 and len(out.splitlines()) == 1 and str(path) in out, out
    assert ("is a directory" if config == "dir" else "not found") in out
    assert not started


def test_valid_options_do_reach_the_target(started: list[str]) -> None:
    """The recorder is real: good values get as far as starting a target."""
    code, out = _run(["run", "--target", "native", "--epochs", "1"])
    assert code == 2 and started and "a target was started" in out
