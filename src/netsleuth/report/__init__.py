"""Renderers of an :class:`~netsleuth.analysis.Analysis`.

The analysis is computed once (:func:`netsleuth.analysis.analyze`); these
functions only present it: :func:`render_terminal` prints a rich summary,
:func:`to_json` returns plain dicts with the stable keys documented in
docs/report.md, and :func:`write_html` writes one self-contained page with
the timeline drawn by matplotlib as inline SVG
(:func:`netsleuth.report.plot.timeline_svg`, imported only when needed).
"""

from netsleuth.report.html import render_html, write_html
from netsleuth.report.json_out import JSON_SCHEMA, to_json
from netsleuth.report.terminal import render_terminal

__all__ = ["JSON_SCHEMA", "render_html", "render_terminal", "to_json", "write_html"]
