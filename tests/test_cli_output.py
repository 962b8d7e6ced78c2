"""What the CLI prints when its output is not a terminal (a CI log, a pipe): the profile
table fits 100 columns without cutting a value, progress is a few plain lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from rig.cli.profile import phase_tables
from rig.cli.progress import step_progress
from rig.profile.render import TABLE_HEAD, phase_rows

SUMMARY = Path(__file__).resolve().parent.parent / "docs" / "results" / "profile" / "summary.json"


def test_profile_tables_fit_100_columns_without_cuts() -> None:
    summary = json.loads(SUMMARY.read_text(encoding="utf-8"))
    out = Console(width=100, file=io.StringIO(), force_terminal=False)
    for table in phase_tables(summary):
        out.print(table)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "…" not in text
    ratio = TABLE_HEAD.index("/full: MACs / instr / cycles")
    rows = phase_rows(summary, ratio_digits=2)
    shown = [r for r in rows if r[0] != "full" and r[ratio] not in ("", "–/–/–")]
    assert shown
    for row in rows:  # every value of the terminal columns appears whole
        for i, head in enumerate(TABLE_HEAD):
            skipped = i == ratio and (row[0] == "full" or row[i] == "–/–/–")
            if head != "cycles band" and i > 1 and not skipped:
                assert row[i] in text, (head, row[i])


def test_progress_is_a_few_plain_lines_off_a_terminal() -> None:
    out = Console(width=100, file=io.StringIO(), force_terminal=False)
    with step_progress(out) as progress:
        assert not progress.live
        progress.add("tinyprop", 100)
        for i in range(100):
            progress.advance("tinyprop", f"{i} instructions")
        progress.finish("tinyprop")
    lines = out.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert lines == ["tinyprop: started, 100 steps", "tinyprop: 25/100, 24 instructions",
                     "tinyprop: 50/100, 49 instructions", "tinyprop: 75/100, 74 instructions",
                     "tinyprop: 100 done"]


def test_progress_bar_on_a_terminal() -> None:
    out = Console(width=100, file=io.StringIO(), force_terminal=True)
    with step_progress(out) as progress:
        assert progress.live
        progress.add("full", 4)
        for _ in range(4):
            progress.advance("full")
        progress.finish("full", "4 steps")
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert "━" in text and "4/4" in text  # a bar, drawn to completion
