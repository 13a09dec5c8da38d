"""Terminal rendering of lab progress and results (rich)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from netsleuth.lab.summary import CaseResult
from netsleuth.watch import LiveStats

__all__ = ["LabProgress", "results_table"]


class LabProgress:
    """Progress of lab cases: a live bar on a terminal, a plain line every
    ``line_every`` seconds otherwise. Use as a context manager; pass
    :meth:`update` as the ``progress`` callback."""

    def __init__(self, console: Console, line_every: float = 5.0) -> None:
        self.console = console
        self.line_every = line_every
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._last_line: dict[str, float] = {}
        if console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.fields[case]:<10}"),
                BarColumn(),
                TextColumn("{task.completed:>5.0f}/{task.total:.0f} s"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                console=console,
                transient=False,
            )

    def __enter__(self) -> LabProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, case: str, elapsed: float, planned: float, stats: LiveStats) -> None:
        attempts, failed = stats.attempts, stats.failed
        pct = 100.0 * failed / attempts if attempts else 0.0
        status = f"probes {attempts:>6}  failed {failed:>5} ({pct:4.1f} %)"
        if self._progress is not None:
            task = self._tasks.get(case)
            if task is None:
                task = self._tasks[case] = self._progress.add_task(
                    case, total=planned, case=case, status=status
                )
            self._progress.update(task, completed=min(elapsed, planned), status=status)
            return
        now = time.monotonic()
        if now - self._last_line.get(case, 0.0) >= self.line_every or elapsed >= planned:
            self._last_line[case] = now
            self.console.print(
                f"[{case}] {elapsed:5.1f}/{planned:.0f} s  {status}", highlight=False, markup=False
            )


def _fmt_s(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def results_table(results: Sequence[CaseResult], title: str = "lab results") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for r in results:
        style = "red" if r.failed else "green"
        table.add_column(r.name, justify="right", style=style)

    def row(label: str, *cells: str) -> None:
        table.add_row(label, *cells)

    row("probes", *(f"{r.probes}" for r in results))
    row("failed", *(f"{r.failed}" for r in results))
    row(
        "failure rate (95 % CI)",
        *(
            f"{100 * r.failure_rate:.1f} % ({100 * r.ci95[0]:.1f}–{100 * r.ci95[1]:.1f})"
            for r in results
        ),
    )
    row("bridge MAC changes", *(f"{r.mac_changes}" for r in results))
    row("churn cycles", *(f"{r.churn_cycles}" for r in results))
    stats = [r.outage_stats() for r in results]
    row("outages", *(f"{s['count']}" for s in stats))
    row(
        "outage min / median / max",
        *(f"{_fmt_s(s['min_s'])} / {_fmt_s(s['median_s'])} / {_fmt_s(s['max_s'])}" for s in stats),
    )
    row(
        "outages right after a port",
        *(f"left {s['after_port_left']}, joined {s['after_port_joined']}" for s in stats),
    )
    return table
