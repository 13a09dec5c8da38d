"""One self-contained HTML page: verdict, timeline (inline SVG), correlation
table, control group and episodes. No external resources."""

from __future__ import annotations

import html
from pathlib import Path

from netsleuth.analysis import Analysis
from netsleuth.analysis.stats import format_p, p_phrase
from netsleuth.errors import NetsleuthError
from netsleuth.report.json_out import cause_cells, correlation_cells, iso, target_cells

__all__ = ["MAX_EPISODE_ROWS", "render_html", "write_html"]

MAX_EPISODE_ROWS = 500

_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 20px; margin-bottom: 4px; } .meta { color: #666; font-size: 13px; }
.verdict { border-left: 6px solid #b03a48; background: #fbeff1; padding: 12px 16px;
  margin: 16px 0; }
.verdict.ok { border-color: #2e9e4f; background: #eef8f1; }
.verdict.maybe { border-color: #e0a010; background: #fdf6e6; }
.verdict h2 { margin: 0 0 6px 0; font-size: 18px; } code { background: #eee; padding: 1px 4px; }
table { border-collapse: collapse; margin: 8px 0 20px 0; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child, td:last-child { text-align: left; }
tr.sig { font-weight: bold; }
.plot svg { width: 100%; height: auto; }
"""


def _e(x: object) -> str:
    return html.escape(str(x))


def _table(head: list[str], rows: list[tuple[list[str], str]]) -> str:
    out = ["<table><thead><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for cells, cls in rows:
        attr = f' class="{cls}"' if cls else ""
        out.append(f"<tr{attr}>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_html(analysis: Analysis) -> str:
    """The page as a string."""
    from netsleuth.report.plot import timeline_svg  # matplotlib only when a page is drawn

    a = analysis
    v = a.verdict
    kind = {"no-failures": "ok", "bridge-mac-flap": "", "nat-missing": ""}.get(v.cause, "maybe")
    p = f" (p {p_phrase(v.p_value)}, corrected)" if v.p_value is not None else ""
    evidence = "".join(f"<li>{_e(x)}</li>" for x in v.evidence)
    targets = _table(
        ["target", "probes", "failed", "rate", "95 % Wilson interval", "episodes", "longest"],
        [(target_cells(t), "") for t in a.targets],
    )
    corr = _table(
        [
            "event class",
            "events",
            "window",
            "onsets after",
            "time exposed",
            "relative risk",
            "p (raw)",
            "p (corrected)",
        ],
        [
            (
                [*correlation_cells(c), format_p(c.p_value), format_p(c.p_adjusted)],
                "sig" if c.significant else "",
            )
            for c in a.correlations
        ],
    )
    episodes = _table(
        [
            "start (UTC)",
            "target",
            "duration",
            "failed/attempts",
            "gateway stale",
            "events just before",
        ],
        [
            (
                [
                    iso(d.episode.start_ns) or "",
                    d.episode.target,
                    f"{d.episode.duration_s:.2f} s",
                    f"{d.episode.failed}/{d.episode.attempts}",
                    "-" if d.gateway_stale is None else ("yes" if d.gateway_stale else "no"),
                    "; ".join(f"{label} ({ms:.0f} ms before)" for ms, label in d.before) or "-",
                ],
                "",
            )
            for d in a.episodes[:MAX_EPISODE_ROWS]
        ],
    )
    more = (
        f"<p>… and {len(a.episodes) - MAX_EPISODE_ROWS} more episodes (see --json).</p>"
        if len(a.episodes) > MAX_EPISODE_ROWS
        else ""
    )
    ranked = _table(
        ["cause", "", "confidence", "p", "bridge", "strongest evidence (for, or against)"],
        [(cause_cells(c), "sig" if c.named else "") for c in a.causes],
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in a.notes)
    runs = ", ".join(str(r) for r in a.runs) or "-"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>netsleuth report: {_e(v.cause)}</title><style>{_CSS}</style></head>
<body>
<h1>netsleuth report</h1>
<div class="meta">{_e(a.source)} · run {_e(runs)} · {_e(iso(a.start_ns) or "-")} →
{_e(iso(a.end_ns) or "-")} · {a.probes} probes, {a.failed} failed, {len(a.episodes)} episodes</div>
<div class="verdict {kind}" id="verdict">
<h2>{_e(v.cause)}: {_e(v.title)}</h2>
<div>confidence: <b>{_e(v.confidence)}</b>{_e(p)}</div>
<ul>{evidence}</ul>
<p>{_e(v.explanation)}</p>
<p><b>Fix:</b> {_e(v.fix)}</p>
</div>
<h2>Causes, ranked</h2>
<p class="meta">Every catalogued cause, scored against this record; the first named one is the
verdict, the others show why they lost. Bold: named.</p>
<div id="causes">{ranked}</div>
<h2>Timeline</h2>
<div class="plot" id="timeline">{timeline_svg(a)}</div>
<h2>Outage onsets after each event class</h2>
<p class="meta">One-sided Fisher exact test per class; window chosen per class from the data
(Bonferroni over the windows tried), Holm correction across classes. Bold: significant.</p>
{corr if a.correlations else "<p>No outages or no events to correlate.</p>"}
<h2>Control group</h2>
{targets}
<ul>{notes}</ul>
<h2>Outage episodes</h2>
{episodes if a.episodes else "<p>None.</p>"}{more}
</body></html>
"""


def write_html(analysis: Analysis, path: str | Path) -> None:
    """Write the page to ``path``."""
    try:
        Path(path).write_text(render_html(analysis), encoding="utf-8")
    except OSError as exc:
        raise NetsleuthError(
            f"cannot write {path}: {exc.strerror}; choose another --html path"
        ) from None
