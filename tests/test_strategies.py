"""The strategy catalogue (`rig.strategies`): lookups, parameter checks, and agreement with
the golden model's arithmetic classes."""

from __future__ import annotations

import pytest

from rig import strategies
from rig.errors import ConfigError
from rig.strategies import STRATEGIES, StrategyId


def test_ids_are_dense_and_in_wire_order() -> None:
    assert [int(s.id) for s in STRATEGIES] == list(range(len(STRATEGIES)))
    assert [s.id.name.lower().replace("_", "-") for s in STRATEGIES] == list(strategies.NAMES)
    assert strategies.get(StrategyId.VELOCITY_BUDGET.value).name == "velocity-budget"


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as exc:
        strategies.get("tinyprp")
    assert str(exc.value) == "'tinyprp': unknown strategy; did you mean 'tinyprop'?"
    with pytest.raises(ConfigError, match="known: full, tinyprop"):
        strategies.get("xyzzy")
    with pytest.raises(ConfigError, match="unknown strategy id 99"):
        strategies.get(99)


def test_resolve_fills_defaults_rounds_to_f32_and_checks() -> None:
    spec, values = strategies.resolve("tinyprop", [0.2])
    assert spec.id == StrategyId.TINYPROP
    assert values == (pytest.approx(0.2), 0.8999999761581421, 0.5)  # 0.9 as f32
    assert values[0] != 0.2  # rounded to what TRAIN_CONFIG carries
    with pytest.raises(ConfigError, match=r"takes 3 sparams \(S_min, S_max, zeta\), got 6"):
        strategies.resolve("tinyprop", [1, 2, 3, 4, 5, 6])
    with pytest.raises(ConfigError, match="S_min=0.9, S_max=0.1"):
        strategies.resolve("tinyprop", [0.9, 0.1])
    with pytest.raises(ConfigError, match="seed must be an integer"):
        strategies.resolve("random-budget", [0.5, 1.5])
    assert strategies.resolve("full")[1] == ()


def test_golden_classes_follow_the_catalogue() -> None:
    from rig.golden.strategies import CLASSES, make_strategy

    assert list(CLASSES) == list(strategies.NAMES)
    for spec in STRATEGIES:
        strat = make_strategy(spec.name, [4, 3, 2])
        assert strat.spec is spec and strat.name == spec.name
        assert strat.uses_select == spec.uses_select
        assert strat.params.tolist() == list(spec.resolve())


def test_per_step_strategies_are_the_firmwares() -> None:
    """`per_step` (the step needs the whole batch: memory plan rows) is what the firmware's
    ops table says: masks_on_delta, a skip hook or a layer_select hook."""
    import re
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "firmware" / "src"
    seen = {}
    for path in sorted(src.glob("strategy_*.c")):
        table = re.search(r"const strategy_ops_t strategy_\w+ = \{(.*?)\};", path.read_text(),
                          re.S)
        if table is None:
            continue
        fields = dict(re.findall(r"\.(\w+)\s*=\s*([^,\n]+),", table.group(1)))
        name = fields["name"].strip('"')
        seen[name] = (fields.get("masks_on_delta", "0") != "0"
                      or fields.get("skip", "0") not in ("0", "NULL")
                      or fields.get("layer_select", "0") not in ("0", "NULL"))
    assert seen == {s.name: s.per_step for s in STRATEGIES}
