"""``stale-conntrack-nat``: single lost queries while conntrack entries that
escaped NAT were present.

A flooded query (its gateway MAC gone from the bridge, br_netfilter on)
leaves a conntrack entry without NAT that lives 30 s unanswered; a later
query that happens to use one of those source ports matches it, leaves
untranslated and is lost. Each such loss is one query among answered ones,
so the signature is short losses — :data:`SHORT` failed probes or fewer —
that no recorded state explains, from the namespaces (the host's own
traffic is not bridged), falling inside the stretches in which ``watch``
saw such entries (:mod:`netsleuth.analysis.unnated`).

The test: with ``n`` such losses and the stretches (widened by
:data:`TOLERANCE_NS`, the level is sampled once a second) covering a share
``c`` of the record, the chance that ``k`` or more fall inside by accident
is the binomial tail P(X >= k), X ~ Bin(n, c). Named at p < ALPHA with
:data:`MIN_MET` losses inside.

Beside a named ``bridge-mac-flap`` (the usual trigger: its outages flood
the queries that leave the entries) both are named; which leads the verdict
is decided in :func:`netsleuth.analysis.scoring.score_all` by
:func:`leads_flap`: this cause when its losses outnumber the outages the
flap's state explains and its evidence is at least as certain as the flap's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from netsleuth.analysis.correlate import ALPHA
from netsleuth.analysis.episodes import Episode
from netsleuth.analysis.evidence import CONFIDENCE_RANK, CauseScore, Evidence, confidence_label
from netsleuth.analysis.exact import binom_sf
from netsleuth.analysis.stats import p_phrase
from netsleuth.analysis.unnated import UnnatedStretch

__all__ = [
    "MIN_MET",
    "SCORERS",
    "SHORT",
    "TOLERANCE_NS",
    "inside",
    "leads_flap",
    "score_stale_conntrack_nat",
    "short_losses",
]

CAUSE = "stale-conntrack-nat"

SHORT = 3
"""Failed probes at most in a loss this cause explains (one query, or a few
back to back that each hit a stale port)."""

MIN_MET = 3
"""Short losses inside the stretches needed to name it."""

TOLERANCE_NS = 1_000_000_000
"""Slack on either side of a stretch: the level is sampled once a second."""


def short_losses(ev: Evidence) -> list[Episode]:
    """The targets' short losses that no recorded state explains (the host
    control left out)."""
    explained = {key for se in ev.states.values() for key in se.explained}
    return [
        d.episode
        for d in ev.episodes
        if d.episode.target != ev.control
        and d.episode.failed <= SHORT
        and (d.episode.target, d.episode.start_ns) not in explained
    ]


def _union(stretches: Sequence[UnnatedStretch]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s in sorted(stretches, key=lambda s: s.start_ns):
        lo, hi = s.start_ns - TOLERANCE_NS, s.end_ns + TOLERANCE_NS
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _length(intervals: Sequence[tuple[int, int]]) -> int:
    return sum(hi - lo for lo, hi in intervals)


def _minus(
    intervals: Sequence[tuple[int, int]], holes: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """``intervals`` without ``holes`` (both disjoint and sorted)."""
    out: list[tuple[int, int]] = []
    for lo, hi in intervals:
        at = lo
        for hlo, hhi in holes:
            if hhi <= at or hlo >= hi:
                continue
            if hlo > at:
                out.append((at, hlo))
            at = max(at, hhi)
        if at < hi:
            out.append((at, hi))
    return out


def inside(
    losses: Sequence[Episode],
    stretches: Sequence[UnnatedStretch],
    span_ns: int,
    busy: Sequence[Episode] = (),
) -> tuple[int, float, float | None]:
    """(losses inside the stretches, the share of the record they cover, p).

    No short loss can begin inside a longer outage (``busy``: the other
    outages), so that time is left out of both the stretches and the record
    before the share is taken. The widened stretches may reach past the
    record's ends by the tolerance: counted in, which only makes the share
    larger and p less small."""
    union = _union(stretches)
    if not union or not losses or span_ns <= 0:
        return 0, 0.0, None
    lows = np.array([lo for lo, _ in union], dtype=np.int64)
    highs = np.array([hi for _, hi in union], dtype=np.int64)
    met = 0
    for e in losses:
        i = int(np.searchsorted(lows, e.start_ns, side="right")) - 1
        if i >= 0 and int(highs[i]) >= e.start_ns:
            met += 1
    holes = _merged(
        (e.start_ns, e.recovered_ns if e.recovered_ns is not None else e.end_ns) for e in busy
    )
    record = span_ns - _length(holes)
    covered = _length(_minus(union, holes))
    cover = min(1.0, covered / record) if record > 0 else 1.0
    p = binom_sf(met, len(losses), cover) if met else 1.0
    return met, cover, p


def _merged(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _evidence_inside(ev: Evidence) -> tuple[list[Episode], tuple[int, float, float | None]]:
    losses = short_losses(ev)
    keys = {(e.target, e.start_ns) for e in losses}
    busy = [d.episode for d in ev.episodes if (d.episode.target, d.episode.start_ns) not in keys]
    return losses, inside(losses, ev.unnated, ev.span_ns, busy)


def _flap_bridge(ev: Evidence) -> str | None:
    """The bridge whose MAC changed most (the entries' likely source), if any did."""
    changed = [b for b in ev.bridges if b.mac_changes]
    return max(changed, key=lambda b: b.mac_changes).name if changed else None


def score_stale_conntrack_nat(ev: Evidence) -> CauseScore:
    stretches = ev.unnated
    if not stretches:
        return CauseScore(
            CAUSE,
            False,
            "none",
            None,
            evidence_against=("no conntrack entry that escaped NAT was recorded",),
        )
    peak = max(s.peak for s in stretches)
    where = sorted({s.netns for s in stretches})
    seconds = sum(s.end_ns - s.start_ns for s in stretches) / 1e9
    seen = (
        f"conntrack held up to {peak} unanswered entries from a NATed bridge subnet that were "
        f"not NATed ({', '.join(where)}; {len(stretches)} stretches, {seconds:.0f} s in all)"
    )
    losses, (met, cover, p) = _evidence_inside(ev)
    bridge = _flap_bridge(ev)
    fields = {"bridge": bridge} if bridge else {}
    if p is None or not met:
        why = (
            "no short loss unexplained by a state fell while they were present"
            if losses
            else "no short loss that a state does not explain was recorded"
        )
        return CauseScore(
            CAUSE, False, "none", p, evidence_for=(seen,), evidence_against=(why,), fields=fields
        )
    pro = [
        f"{met} of {len(losses)} short losses (at most {SHORT} failed probes each) that no "
        f"state explains came while such entries were present (they cover {100 * cover:.0f} % "
        f"of the record outside the longer outages; {p_phrase(p)} by chance)",
        seen,
    ]
    if bridge:
        pro.append(
            f"the MAC of bridge {bridge} changed in the record: queries it flooded meanwhile "
            "pass netfilter as bridged traffic and leave entries without NAT"
        )
    named = met >= MIN_MET and p < ALPHA
    against = [] if named else [f"only {met} short losses fell while they were present"]
    return CauseScore(
        CAUSE,
        named,
        confidence_label(p) if named else "none",
        p,
        evidence_for=tuple(pro),
        evidence_against=tuple(against),
        fields=fields,
    )


def leads_flap(stale: CauseScore, flap: CauseScore, flap_aligned: int, ev: Evidence) -> bool:
    """Does a named ``stale-conntrack-nat`` lead the verdict beside a named
    ``bridge-mac-flap``? When its short losses outnumber the outages the
    flap's state explains (the entries, not the flooding, cost most
    incidents) and its own evidence is at least as certain as the flap's: a
    flap seen in many outages stays the verdict however many single losses
    its entries add, since a bridge that floods often leaves entries often."""
    if not stale.named:
        return False
    if CONFIDENCE_RANK[stale.confidence] < CONFIDENCE_RANK[flap.confidence]:
        return False
    _, (met, _, _) = _evidence_inside(ev)
    return met > flap_aligned


SCORERS: dict[str, Callable[[Evidence], CauseScore]] = {CAUSE: score_stale_conntrack_nat}
"""Taken into :data:`netsleuth.analysis.scoring.SCORERS`."""
