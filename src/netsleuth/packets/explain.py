"""Read, match, classify: the whole of ``netsleuth explain`` as one call.

:func:`explain` streams the files through :class:`CaptureReader` and
:class:`JourneyMatcher`; it keeps counts of every journey but only the
journeys asked for (``keep``), so memory stays flat on large captures.
Given the kernel's drops (:class:`~netsleuth.packets.drops.DropLog`), it
finds the drop of each lost query's packet (:mod:`.drops`).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from netsleuth.model import Finding
from netsleuth.packets.drops import DropLog, DropReport, attribute_drops, unavailable_report
from netsleuth.packets.journey import (
    DEFAULT_WINDOW_NS,
    BridgeHistory,
    JourneyMatcher,
    escaped_nat_finding,
    stale_gateway_finding,
)
from netsleuth.packets.model import Fate, Interface, Journey, ReadStats
from netsleuth.packets.reader import CaptureReader

__all__ = ["Explanation", "Keep", "explain"]

Keep = Literal["none", "failed", "all"]


@dataclass(frozen=True, slots=True)
class Explanation:
    files: tuple[str, ...]
    stats: ReadStats
    interfaces: tuple[Interface, ...]
    counts: dict[str, int]  # per verdict
    journeys_total: int
    stale_gateway: int
    orphan_answers: int
    journeys: tuple[Journey, ...]  # those kept
    findings: tuple[Finding, ...]  # stale gateway first, then escaped NAT
    seconds: float
    drops: DropReport | None = None  # the kernel's drops of the lost queries, when asked for
    # "udp/ipv4", "tcp/ipv6", "tcp-handshake/ipv4" (connections that carried no
    # query) -> verdict -> journeys
    by_transport: dict[str, dict[str, int]] | None = None

    @property
    def finding(self) -> Finding | None:
        """The first finding (the stale gateway's, when there is one)."""
        return self.findings[0] if self.findings else None

    def as_dict(self) -> dict[str, object]:
        f = self.finding
        return {
            "files": list(self.files),
            "read": self.stats.as_dict(),
            "interfaces": [
                {
                    "name": i.name,
                    "netns": i.netns,
                    "role": i.role,
                    "linktype": i.linktype,
                    "file": i.source,
                }
                for i in self.interfaces
            ],
            "journeys": self.journeys_total,
            "verdicts": dict(self.counts),
            "by_transport": dict(self.by_transport or {}),
            "stale_gateway": self.stale_gateway,
            "orphan_answers": self.orphan_answers,
            "finding": None if f is None else f.to_json(),
            "findings": [x.to_json() for x in self.findings],
            "queries": self._queries(),
            "drops": None if self.drops is None else self.drops.to_json(),
            "seconds": round(self.seconds, 3),
        }

    def _queries(self) -> list[dict[str, object]]:
        out = [j.as_dict() for j in self.journeys]
        if self.drops is not None:
            for row, m in zip(out, self.drops.matches, strict=False):
                row["drop"] = None if m is None else m.to_json()
        return out


def explain(
    paths: Sequence[str | Path],
    *,
    keep: Keep = "failed",
    window_ns: int = DEFAULT_WINDOW_NS,
    gateway: bytes | None = None,
    history: BridgeHistory | None = None,
    progress: Callable[[int, int], None] | None = None,
    drops: DropLog | None = None,
    drops_missing: str = "",
) -> Explanation:
    """Read, match, classify. With ``drops``, say which drop ended each lost
    query (only the kept journeys are looked at); with ``drops_missing``
    instead, why no drops are at hand."""
    started = time.perf_counter()
    reader = CaptureReader(paths, progress=progress)
    matcher = JourneyMatcher(
        reader.interfaces,
        window_ns=window_ns,
        gateway=gateway,
        history=history,
        keep_answered=keep == "all",
    )
    kept: list[Journey] = []
    stale: list[Journey] = []
    escaped: list[Journey] = []
    # The loop allocates millions of short-lived, acyclic objects; the cyclic
    # garbage collector would rescan the live window of queries again and
    # again (~20 % of the time, measured). Nothing here makes cycles.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        _keep(matcher.feed_all(reader.packets()), keep, kept, stale, escaped)
        _keep(matcher.finish(), keep, kept, stale, escaped)
    finally:
        if was_enabled:
            gc.enable()
    s = matcher.summary
    report: DropReport | None = None
    if drops is not None:
        report = attribute_drops(kept, drops)
    elif drops_missing:
        report = unavailable_report(drops_missing, kept)
    return Explanation(
        files=tuple(str(p) for p in paths),
        stats=reader.stats,
        interfaces=tuple(reader.interfaces),
        counts=dict(s.by_verdict),
        journeys_total=s.journeys,
        stale_gateway=s.stale_gateway,
        orphan_answers=s.orphan_answers,
        journeys=tuple(kept),
        findings=tuple(
            f
            for f in (
                stale_gateway_finding(stale, history.bridge if history else ""),
                escaped_nat_finding(escaped),
            )
            if f is not None
        ),
        seconds=time.perf_counter() - started,
        drops=report,
        by_transport={k: dict(v) for k, v in sorted(s.by_transport.items())},
    )


def _keep(
    done: Iterable[Journey],
    keep: Keep,
    kept: list[Journey],
    stale: list[Journey],
    escaped: list[Journey],
) -> None:
    for j in done:
        if j.mac is not None and j.mac.stale_gateway:
            stale.append(j)
        elif j.verdict is Fate.ESCAPED_NAT:
            escaped.append(j)
        if keep == "all" or (keep == "failed" and j.verdict.failed):
            kept.append(j)
