"""Live terminal view of a watch: per target and probe, attempts, failures,
failure rate with a 95 % interval, the current outage, and the last events.
A rich table on a terminal; plain periodic lines otherwise."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from netsleuth.stats import wilson
from netsleuth.watch.live import LiveStats

__all__ = ["WatchView", "stats_table"]


def stats_table(stats: LiveStats, elapsed: float, now_ns: int | None = None) -> Table:
    now_ns = now_ns if now_ns is not None else time.time_ns()
    table = Table(title=f"netsleuth watch — {elapsed:.0f} s", title_justify="left")
    for col in ("target", "probe", "server", "attempts", "failed", "rate (95 % CI)", "outage"):
        table.add_column(col, justify="right" if col in ("attempts", "failed") else "left")
    for (target, probe, server), s in sorted(stats.series.items()):
        lo, hi = wilson(s.failed, s.attempts)
        rate = (
            f"{100 * s.failed / s.attempts:.2f} % ({100 * lo:.2f}–{100 * hi:.2f})"
            if (s.attempts)
            else "-"
        )
        outage = Text("-")
        if s.outage_since_ns is not None:
            outage = Text(f"DOWN {(now_ns - s.outage_since_ns) / 1e9:.1f} s", style="bold red")
        table.add_row(
            target,
            probe,
            server,
            str(s.attempts),
            str(s.failed),
            rate,
            outage,
            style="red" if s.failed else None,
        )
    return table


class WatchView:
    def __init__(self, console: Console, quiet: bool = False, line_every: float = 10.0) -> None:
        self.console = console
        self.quiet = quiet
        self.line_every = line_every
        self._live: Live | None = None
        self._last_line = 0.0
        self._risks_printed: list[str] = []
        if console.is_terminal and not quiet:
            self._live = Live(console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> WatchView:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()

    def update(self, stats: LiveStats, elapsed: float) -> None:
        if self.quiet:
            return
        if self._live is not None:
            events = Text("\n".join(stats.recent_events[-5:]) or "(no events yet)", style="dim")
            parts: list[Table | Text] = [stats_table(stats, elapsed)]
            if stats.risks:
                parts.append(Text("\n".join(f"at risk: {r}" for r in stats.risks), style="yellow"))
            self._live.update(Group(*parts, Text("last events:"), events))
            return
        if stats.risks != self._risks_printed:
            for r in stats.risks:
                if r not in self._risks_printed:
                    self.console.print(
                        f"{elapsed:7.1f}s at risk: {r}", highlight=False, markup=False
                    )
            self._risks_printed = list(stats.risks)
        now = time.monotonic()
        if now - self._last_line < self.line_every:
            return
        self._last_line = now
        for (target, probe, _server), s in sorted(stats.series.items()):
            self.console.print(
                f"{elapsed:7.1f}s {target} {probe}: {s.attempts} attempts, {s.failed} failed"
                + (" (DOWN)" if s.outage_since_ns is not None else ""),
                highlight=False,
                markup=False,
            )
