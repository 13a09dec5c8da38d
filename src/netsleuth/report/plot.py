"""The timeline plot: probe outcomes per target over time (failure share per
time bin), outage episodes shaded, and events marked by class. Drawn with
matplotlib's object API (no pyplot, no global backend) into an SVG string."""

from __future__ import annotations

import io

import numpy as np
from matplotlib import rc_context
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure

from netsleuth.analysis import Analysis

__all__ = ["timeline_svg"]

_CMAP = LinearSegmentedColormap.from_list("okfail", ["#2e9e4f", "#f2c14e", "#d7263d"])
_MARK_COLORS = ["#1f4e9c", "#9c1f8a", "#e07a10", "#127a7a", "#6b4f2a", "#555555"]
MAX_OUTLINED = 300
"""More episodes than this are not outlined: the time bins already show them."""


def timeline_svg(analysis: Analysis) -> str:
    """The timeline as a standalone ``<svg>`` element."""
    tl = analysis.timeline
    n_t = max(1, len(tl.targets))
    n_m = len(tl.marks)
    with rc_context({"svg.fonttype": "none", "font.size": 9}):
        fig = Figure(figsize=(11, 1.2 + 0.45 * n_t + 0.3 * n_m + 0.8), layout="constrained")
        if n_m:
            ax, axe = fig.subplots(
                2, 1, sharex=True, gridspec_kw={"height_ratios": [max(1, n_t), max(1, n_m) * 0.7]}
            )
        else:
            ax, axe = fig.subplots(1, 1), None
        seconds = len(tl.attempts[0]) * tl.bin_ns / 1e9 if tl.attempts else 1.0
        if tl.attempts:
            att = np.asarray(tl.attempts, dtype=np.float64)
            fail = np.asarray(tl.failed, dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(att > 0, fail / att, np.nan)
            ax.imshow(
                np.ma.masked_invalid(share),
                aspect="auto",
                cmap=_CMAP,
                vmin=0.0,
                vmax=1.0,
                interpolation="nearest",
                extent=(0.0, seconds, n_t - 0.5, -0.5),
            )
            spans: dict[str, list[tuple[float, float]]] = {t: [] for t in tl.targets}
            outline = len(analysis.episodes) <= MAX_OUTLINED
            for d in analysis.episodes if outline else ():
                e = d.episode
                if e.target in spans:
                    x0 = (e.start_ns - tl.start_ns) / 1e9
                    spans[e.target].append((x0, max(e.duration_s, tl.bin_ns / 1e9)))
            for y, target in enumerate(tl.targets):
                if spans[target]:
                    ax.broken_barh(
                        spans[target],
                        (y - 0.45, 0.9),
                        facecolors="none",
                        edgecolors="#222222",
                        linewidth=0.8,
                    )
        ax.set_yticks(range(len(tl.targets)), list(tl.targets))
        ax.set_xlim(0.0, seconds)
        what = "; outlined: outage episodes" if len(analysis.episodes) <= MAX_OUTLINED else ""
        ax.set_title(f"probe outcomes per target (green ok → red all failed{what})", loc="left")
        if axe is not None:
            for i, (_label, times) in enumerate(tl.marks):
                xs = (np.asarray(times, dtype=np.float64) - tl.start_ns) / 1e9
                axe.eventplot(
                    xs, lineoffsets=i, linelengths=0.8, colors=_MARK_COLORS[i % len(_MARK_COLORS)]
                )
            axe.set_yticks(range(n_m), [label for label, _ in tl.marks])
            axe.set_ylim(n_m - 0.5, -0.5)
            axe.set_title("events by class", loc="left")
            axe.set_xlabel("seconds since start of the selection")
        else:
            ax.set_xlabel("seconds since start of the selection")
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]
