"""`rig experiment`: the quick run reproduces its committed JSON, the statistics match
scipy's independent implementations, the claims' verdicts follow the intervals, and the
device subset agrees with the golden model (native firmware: the same C core as the boards).
The QEMU counter determinism test is in tests/test_experiment_qemu.py."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from rig import cli
from rig import experiment as exp
from rig import experiment_device as dev
from rig.experiment_stats import Interval, holm, interval, paired
from rig.experiment_tasks import TASKS, Phase
from rig.golden.data import epoch_batches
from rig.golden.model import GoldenMLP

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


@pytest.mark.slow
def test_quick_run_reproduces_the_committed_json(tmp_path: Path) -> None:
    """Same seeds → same numbers: the CI smoke run against the committed quick result."""
    assert cli.main(["experiment", "--task", "digits", "--quick", "--out", str(tmp_path)]) == 0
    got = json.loads((tmp_path / "digits-quick.json").read_text())
    want = json.loads((RESULTS / "digits-quick.json").read_text())
    assert got == want
    md = (tmp_path / "digits-quick.md").read_text()
    assert "## The papers' claims" in md and "**Verdict:" in md
    assert (tmp_path / "digits-quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_committed_full_results_answer_every_claim() -> None:
    """The committed full runs: ≥ 30 seeds, one configuration ≤ 10 % of full's backward +
    update compute per task, and a verdict for each paper claim."""
    for task in TASKS:
        result = exp.ExperimentResult.from_json((RESULTS / f"{task}.json").read_text())
        assert len(result.seeds) >= 30 and not result.quick
        rows = exp.summarize(result)
        assert all(r.accuracy.n == len(result.seeds) for r in rows)
        assert any(r.x.mean <= 0.10 for r in rows if r.point.key != "full")
        titles = [c.title for c in exp.claims(result)]
        assert any("TinyPropv2" in t for t in titles) and any("TinyProp (" in t
                                                              for t in titles)
        assert any("Quelennec" in t for t in titles)


def test_interval_and_paired_tests_match_scipy() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.9, 0.03, 30), rng.normal(0.88, 0.03, 30)
    iv = interval(a)
    lo, hi = stats.t.interval(0.95, 29, loc=a.mean(), scale=stats.sem(a))
    assert (iv.lo, iv.hi) == pytest.approx((lo, hi), rel=1e-12)
    p = paired(a, b)
    ref = stats.ttest_rel(a, b)
    assert p.df == 29 and p.t == pytest.approx(ref.statistic, rel=1e-12)
    assert p.p_t == pytest.approx(ref.pvalue, rel=1e-9)
    assert p.p_wilcoxon == pytest.approx(stats.wilcoxon(a - b).pvalue, rel=1e-12)
    assert p.wins + p.losses == 30
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    same = paired([0.5, 0.6], [0.5, 0.6])  # no differences at all: nothing to detect
    assert same.p_t == 1.0 and same.p_wilcoxon == 1.0 and same.diff.mean == 0.0


@pytest.mark.parametrize(("lo", "hi", "word"), [(0.2, 0.9, "holds"),
                                               (1.1, 3.0, "does not hold"),
                                               (0.5, 1.5, "undecided")])
def test_drop_verdict_follows_the_interval(lo: float, hi: float, word: str) -> None:
    assert exp._drop_verdict(Interval(30, (lo + hi) / 2, lo, hi, 1.0)).startswith(word)


def test_random_budget_draws_per_seed() -> None:
    p = next(p for p in exp.sweep() if p.strategy == "random-budget")
    assert p.sparams_for(0) != p.sparams_for(1)
    assert p.sparams_for(3) == (p.value, 4.0)


def test_blas_golden_tracks_the_exact_golden() -> None:
    """The statistics runs' BLAS products change only the summation order: after 20 steps
    the parameters agree to float32 rounding noise."""
    task = TASKS["mnist5k"]
    split = task.transfer(0).pretrain
    x, y = split.train.decode(), split.train.labels
    ga, gb = (GoldenMLP(task.dims, seed=0, exact=e, lr=0.05, momentum=0.9) for e in (True,
                                                                                     False))
    for idx in epoch_batches(len(y), 16, 0, 0)[:20]:
        ga.step(x[idx], y[idx])
        gb.step(x[idx], y[idx])
    for pa, pb in zip(ga.get_params(), gb.get_params(), strict=True):
        assert np.abs(pa.weight - pb.weight).max() < 1e-5


def test_device_subset_agrees_on_native(monkeypatch: pytest.MonkeyPatch) -> None:
    small = replace(TASKS["digits"], pretrain=Phase(2, 0.1, 0.9),
                    finetune=Phase(2, 0.05, 0.9, batch=32))
    monkeypatch.setitem(TASKS, "digits", small)
    d = dev.run_device_subset("digits", None, "native", ("full", "tinyprop", "random-budget"),
                              log=lambda _: None)
    assert [r.strategy for r in d.runs] == ["full", "tinyprop", "random-budget"]
    for r in d.runs:
        assert r.ok, r.failures
        assert r.device_accuracy == pytest.approx(r.golden_accuracy, abs=1 / 359)
        assert r.steps == 2 * len(epoch_batches(len(small.transfer(0).finetune.train), 32, 0,
                                                0))
    assert "| `tinyprop` |" in dev.markdown(d)


@pytest.mark.parametrize(("argv", "line"), [
    (["experiment", "--task", "cifar"],
     "rig experiment: --task: expected one of digits, mnist5k, got 'cifar'"),
    (["experiment", "--seeds", "1"],
     "rig experiment: --seeds: expected an integer >= 2 and <= 1000 (paired statistics need "
     "two), got 1"),
    (["experiment", "--target", "qemu"], "rig experiment: --target: only used with --device"),
    (["experiment", "--quick", "--device"],
     "rig experiment: --device: the device subset belongs to the full run, not --quick"),
    (["experiment", "--replot", "--out", "/nonexistent"],
     "rig experiment: --replot: /nonexistent/digits.json does not exist"),
])
def test_bad_values_exit_2_before_any_work(argv: list[str], line: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert capsys.readouterr().out.splitlines() == [line]
