"""Progress of long commands (`rig profile`, `rig experiment`): a rich progress bar on a
terminal; on a pipe or a CI log a few plain lines instead (start, each quarter, end), so
a log is not flooded and a bar's redraws never land in a file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class StepProgress:
    """`advance(task, note)` one unit of `task` (total from `add`); plain lines when
    `console` is not a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self._bar: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._done: dict[str, int] = {}
        self._total: dict[str, int | None] = {}

    def __enter__(self) -> StepProgress:
        if self.live:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                                 TimeElapsedColumn(), console=self.console, transient=True)
            self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

    def add(self, task: str, total: int | None) -> None:
        self._done[task] = 0
        self._total[task] = total
        if self._bar is not None:
            self._tasks[task] = self._bar.add_task(task, total=total, note="")
        else:
            self.console.print(f"{task}: started" + (f", {total} steps" if total else ""),
                               markup=False)

    def advance(self, task: str, note: str = "") -> None:
        if task not in self._done:
            self.add(task, None)
        self._done[task] += 1
        done, total = self._done[task], self._total[task]
        if self._bar is not None:
            self._bar.update(self._tasks[task], advance=1, note=note)
        elif total and done < total and done * 4 // total != (done - 1) * 4 // total:
            self.console.print(f"{task}: {done}/{total}" + (f", {note}" if note else ""),
                               markup=False)

    def finish(self, task: str, note: str = "") -> None:
        if self._bar is not None:
            if task in self._tasks:
                self._bar.update(self._tasks[task], completed=self._done.get(task, 0),
                                 total=self._done.get(task, 0) or None, note=note)
            self.console.print(f"{task}: done" + (f", {note}" if note else ""), markup=False)
        else:
            self.console.print(f"{task}: {self._done.get(task, 0)} done"
                               + (f", {note}" if note else ""), markup=False)


@contextmanager
def step_progress(console: Console) -> Iterator[StepProgress]:
    with StepProgress(console) as progress:
        yield progress
