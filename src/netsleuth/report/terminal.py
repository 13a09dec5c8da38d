"""The terminal summary (rich)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from netsleuth.analysis import Analysis
from netsleuth.analysis.containers import ended_count
from netsleuth.analysis.stats import format_p, p_phrase
from netsleuth.report.json_out import (
    cause_cells,
    container_rows,
    correlation_cells,
    iso,
    real_queries,
    target_cells,
)

__all__ = ["render_terminal"]

_STYLE = {"bridge-mac-flap": "red", "nat-missing": "red", "no-failures": "green"}
MAX_ROWS = 10


def render_terminal(analysis: Analysis, console: Console) -> None:
    """Print the verdict, the control group, the correlations and the episodes."""
    a = analysis
    v = a.verdict
    span = ""
    if a.start_ns is not None and a.end_ns is not None:
        span = f" · {iso(a.start_ns)} → {iso(a.end_ns)} ({(a.end_ns - a.start_ns) / 1e9:.0f} s)"
    runs = ", ".join(str(r) for r in a.runs) or "-"
    console.print(
        Text(f"netsleuth report · {a.source} · run {runs}{span}", style="bold"),
        Text(f"{a.probes} probes, {a.failed} failed, {len(a.episodes)} outage episodes"),
    )
    real, real_failed = real_queries(a.series)
    if real:
        console.print(
            f"{real} real queries observed ({real_failed} failed): series passive:dns/… come "
            "from real traffic (watch --passive); they count in the figures below.",
            highlight=False,
        )
    style = _STYLE.get(v.cause, "yellow")
    body = Text()
    body.append(f"{v.title}\n", style="bold")
    conf = f"confidence: {v.confidence}"
    if v.p_value is not None:
        conf += f" (p {p_phrase(v.p_value)}, corrected)"
    body.append(conf + "\n\n")
    for line in v.evidence:
        body.append(f"• {line}\n")
    body.append(f"\n{v.explanation}\n\n")
    body.append("Fix: ", style="bold")
    body.append(v.fix)
    console.print(Panel(body, title=f"verdict: {v.cause}", border_style=style))

    targets = Table(title="Failure rate per target (95 % Wilson interval)", title_justify="left")
    for col in ("target", "probes", "failed", "rate", "95 % interval", "episodes", "longest"):
        targets.add_column(col, justify="left" if col == "target" else "right")
    for t in a.targets:
        targets.add_row(*target_cells(t))
    parts: list[Table | Text] = []
    if len(a.causes) > 1:
        ranked = Table(
            title="Causes, ranked (the first named one is the verdict)", title_justify="left"
        )
        for col in ("cause", "", "confidence", "p", "bridge", "strongest evidence"):
            ranked.add_column(col)
        for score in a.causes:
            ranked.add_row(*cause_cells(score), style="bold" if score.named else "dim")
        parts.append(ranked)
    parts.append(targets)
    if a.containers:
        parts.append(_containers_table(a))

    if a.correlations:
        corr = Table(
            title="Outage onsets after each event class (Fisher, Holm-corrected)",
            title_justify="left",
        )
        for col in ("event class", "events", "window", "onsets after", "time exposed", "RR", "p"):
            corr.add_column(col, justify="left" if col == "event class" else "right")
        for c in a.correlations[:MAX_ROWS]:
            corr.add_row(
                *correlation_cells(c),
                format_p(c.p_adjusted),
                style="bold" if c.significant else None,
            )
        parts.append(corr)

    if a.drops:
        parts.append(_drops_table(a))

    if a.episodes:
        eps = Table(title="Outage episodes", title_justify="left")
        with_drops = any(d.drops for d in a.episodes)
        cols = ("start (UTC)", "target", "duration", "failed", "events just before")
        for col in (*cols, "kernel drops") if with_drops else cols:
            eps.add_column(col)
        for d in a.episodes[:MAX_ROWS]:
            e = d.episode
            before = "; ".join(f"{label}, {ms:.0f} ms before" for ms, label in d.before[:2]) or "-"
            eps.add_row(
                (iso(e.start_ns) or "")[11:23],
                e.target,
                f"{e.duration_s:.2f} s",
                f"{e.failed}/{e.attempts}",
                before,
                *(["; ".join(dc.text for dc in d.drops[:2]) or "-"] if with_drops else []),
            )
        if len(a.episodes) > MAX_ROWS:
            eps.caption = f"… and {len(a.episodes) - MAX_ROWS} more (--json or --html for all)"
        parts.append(eps)
    for note in a.notes:
        parts.append(Text(f"• {note}"))
    console.print(Group(*parts))


def _containers_table(a: Analysis) -> Table:
    """The containers behind the container series (``watch --containers``)."""
    ended = ended_count(a.containers)
    table = Table(
        title=f"Containers ({ended} came and went; their ends are not failures)",
        title_justify="left",
    )
    for col in ("target", "image", "daemon", "lives", "ended"):
        table.add_column(col, justify="right" if col in ("lives", "ended") else "left")
    rows = container_rows(a.containers)
    for row in rows[:MAX_ROWS]:
        table.add_row(*row)
    if len(rows) > MAX_ROWS:
        table.caption = f"… and {len(rows) - MAX_ROWS} more (--json for all)"
    return table


def _drops_table(a: Analysis) -> Table:
    """Kernel drops by reason: how many, during outages, the failed probes
    they were the packets of, the test of chance, and where (most first)."""
    table = Table(
        title="Kernel drops by reason (against the outages and the failed probes)",
        title_justify="left",
    )
    for col in ("reason", "drops", "in outages", "outages met", "failed probes", "p", "where"):
        table.add_column(col, justify="left" if col in ("reason", "where") else "right")
    for de in a.drops[:MAX_ROWS]:
        top = de.top
        where = top.where[3:] + (f" (+{len(de.places) - 1} more)" if len(de.places) > 1 else "")
        table.add_row(
            de.reason,
            str(de.total),
            str(de.in_outages),
            f"{de.counter.met}/{de.counter.outages}",
            f"{de.linked}/{de.linkable}" if de.linkable else "-",
            format_p(de.p_value),
            where,
            style="bold" if de.linked else None,
        )
    return table
