"""Causes seen in the kernel's own tables: the conntrack table and the
neighbour table.

``conntrack-race``: two packets of one new UDP flow (glibc sends A and AAAA
from one socket at once), or two flows NATed to the same source port, race
to insert their conntrack entries; the loser's packet is dropped and the
kernel counts ``insert_failed`` (and ``drop``) in the namespace that NATs.
The lookup waits for the resolver's retry (5 s); a probe records a single
lost query. Named by :func:`~netsleuth.analysis.scorers.counter_score` on
``ct.insert_failed``, with the pattern (nearly every outage a single lost
query, from namespaces only) as supporting evidence. Without such a rise the
pattern alone still makes it a low-confidence candidate, as before watch
sampled counters (a host whose conntrack statistics cannot be read, or
whose NAT happens in a namespace watch does not see);
:func:`netsleuth.analysis.scoring.score_all` demotes that candidate beside
any cause that explains the outages.

``conntrack-full``: at ``nf_conntrack_max`` a new flow gets an entry only
when an unanswered one can be evicted (``early_drop``); otherwise its packet
is dropped (``drop``). Named on ``ct.drop`` / ``ct.early_drop`` meeting the
outages, but only when the table was near its maximum beside those rises
(``ct.count / ct.max`` >= :data:`FULL`): a lost insert race counts ``drop``
too, with the table nearly empty.

``neighbour-table-full``: above ``gc_thresh3`` no new neighbour entry can be
made unless forced garbage collection frees one; each refusal counts
``table_fulls`` (in the initial namespace: the table is machine-wide), the
send fails, and packets queued on an unresolved entry are discarded
(``unresolved_discards``). Named on those two counters meeting the outages.

The table causes fail the host's own traffic too (its new flows need
conntrack entries, its next hop a neighbour entry), so a host control that
fails with the namespaces is part of their signature, not a sign of a fault
upstream (:data:`netsleuth.analysis.scoring.HOST_WIDE`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from netsleuth.analysis.correlate import ALPHA
from netsleuth.analysis.counters import CounterEvidence, rises_in_outages
from netsleuth.analysis.evidence import CauseScore, Evidence, confidence_label
from netsleuth.analysis.scorers import MIN_MET, counter_score, rose, with_drops
from netsleuth.analysis.stats import p_phrase

__all__ = [
    "CT_FULL",
    "CT_RACE",
    "FULL",
    "MIN_SINGLE_OUTAGES",
    "NEIGH_FULL",
    "SCORERS",
    "SINGLE_SHARE",
    "drop_score",
    "score_conntrack_full",
    "score_conntrack_race",
    "score_neighbour_table_full",
]

CT_RACE = ("ct.insert_failed",)
CT_FULL = ("ct.drop", "ct.early_drop")
NEIGH_FULL = ("arp.table_fulls", "arp.unresolved_discards")
NEIGH_DROPS = ("NEIGH_CREATEFAIL", "NEIGH_QUEUEFULL")
"""Drop reasons of a full table: no entry could be made, or the queue of an
unresolved one overflowed."""

FULL = 0.9
"""``ct.count / ct.max`` beside the drops from which the table counts as full."""

MIN_SINGLE_OUTAGES = 5
"""Outages needed before the single-lost-query pattern says anything."""

SINGLE_SHARE = 0.8
"""Share of those outages that must be a single lost query."""


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _single_pattern(ev: Evidence) -> tuple[bool, list[str]]:
    """Is nearly every outage a single lost query, from namespaces only (and
    DNS)? With the sentence that says how many were."""
    eps = [d.episode for d in ev.episodes]
    singles = sum(1 for e in eps if e.failed == 1)
    said = [f"{singles} of {len(eps)} outages were a single lost query"] if eps else []
    rule = (
        ev.localisation == "namespaces"
        and ev.dns_only
        and len(eps) >= MIN_SINGLE_OUTAGES
        and singles >= SINGLE_SHARE * len(eps)
    )
    return rule, said


def _levels_sentence(ce: CounterEvidence) -> str | None:
    fills = [
        (r.levels["ct.count"], r.levels["ct.max"])
        for r in ce.rises
        if r.levels.get("ct.max") and "ct.count" in r.levels
    ]
    if not fills:
        return None
    count, limit = max(fills, key=lambda f: f[0] / f[1])
    return f"ct.count reached {count} of ct.max {limit} ({_pct(count / limit)}) beside the rises"


def drop_score(
    cause: str, ev: Evidence, families: Sequence[str], *, extra_for: Sequence[str] = ()
) -> CauseScore:
    """A cause whose counter counts packets the kernel dropped: named when its
    rises met :data:`~netsleuth.analysis.scorers.MIN_MET` or more outages and
    the two tests together say p < ALPHA: the outages came with rises
    (:func:`~netsleuth.analysis.counters.weigh`), or the stretches of rises
    came during outages (:func:`~netsleuth.analysis.counters.rises_in_outages`;
    a counter of drops rises when packets are lost), the better of the two
    corrected for taking it (Bonferroni)."""
    base = counter_score(cause, ev, families, extra_for=extra_for, require=False)
    found = rose(ev, families)
    if not found:
        return base
    ce = found[0]
    back = rises_in_outages(ce, [d.episode for d in ev.episodes], ev.span_ns)
    pro = list(base.evidence_for)
    if back.p_value is not None:
        pro.insert(
            1,
            f"{back.met} of {back.stretches} stretches in which {ce.family} rose came during "
            f"outages (at most {_pct(back.cover)} of the record lies near one; "
            f"{p_phrase(back.p_value)} by chance)",
        )
    tests = [q for q in (ce.p_value, back.p_value) if q is not None]
    p = min(1.0, 2 * min(tests)) if tests else None
    named = ce.met >= MIN_MET and p is not None and p < ALPHA
    against = list(base.evidence_against)
    if not named and ce.met >= MIN_MET and p is not None:
        against.append(f"its rises and the outages line up no better than p {p_phrase(p)}")
    return replace(
        base,
        named=named,
        confidence=confidence_label(p) if named and p is not None else "none",
        p_value=p,
        evidence_for=tuple(pro),
        evidence_against=tuple(against),
    )


def score_conntrack_race(ev: Evidence) -> CauseScore:
    """``ct.insert_failed`` rising with the outages; else the pattern alone."""
    pattern, said = _single_pattern(ev)
    score = drop_score("conntrack-race", ev, CT_RACE, extra_for=said)
    if score.named:
        extra = []
        ce = ev.counters[CT_RACE[0]]
        fill = ce.max_fill()
        if fill is not None:
            extra.append(
                f"the conntrack table was at most {_pct(fill)} full beside the rises: "
                "entries were refused for a clash, not for room"
            )
        if pattern:
            extra.append("the host control did not fail like the namespaces")
        return replace(score, evidence_for=(*score.evidence_for, *extra))
    if not pattern:
        why = (
            f"fewer than {_pct(SINGLE_SHARE)} of at least {MIN_SINGLE_OUTAGES} outages were "
            "single lost queries from namespaces only"
        )
        return replace(score, evidence_against=(*score.evidence_against, why))
    pro = [
        *said,
        "the host control did not fail like the namespaces",
        "no state or event class is tied to the outages",
    ]
    against = list(score.evidence_against)
    if not rose(ev, CT_RACE) and ev.counters:
        against.append(
            "kernel counters were recorded, yet ct.insert_failed did not rise: a pattern "
            "match, not proof"
        )
    return CauseScore(
        "conntrack-race",
        True,
        "low",
        None,
        evidence_for=tuple(pro),
        evidence_against=tuple(against),
    )


def score_conntrack_full(ev: Evidence) -> CauseScore:
    """Drops of new flows with the outages, the table at its maximum."""
    score = drop_score("conntrack-full", ev, CT_FULL)
    found = rose(ev, CT_FULL)
    if not found:
        return score
    fills = [f for ce in found if (f := ce.max_fill()) is not None]
    fill = max(fills) if fills else None
    extra = [s for ce in found[:1] if (s := _levels_sentence(ce)) is not None]
    if fill is None or fill < FULL:
        why = (
            f"the table was at most {_pct(fill)} full beside the rises (a lost insert race "
            "counts drop too)"
            if fill is not None
            else "no ct.count level was recorded beside the rises"
        )
        return replace(
            score,
            named=False,
            confidence="none",
            evidence_for=(*score.evidence_for, *extra),
            evidence_against=(*score.evidence_against, why),
        )
    return replace(score, evidence_for=(*score.evidence_for, *extra))


def score_neighbour_table_full(ev: Evidence) -> CauseScore:
    """Refused neighbour entries (and discarded queued packets) with the outages."""
    extra = []
    gc = ev.counters.get("arp.forced_gc_runs")
    if gc is not None:
        extra.append(
            f"arp.forced_gc_runs rose by {gc.total}: the table was above gc_thresh2, "
            "collected by force"
        )
    entries = [
        r.levels["arp.entries"]
        for ce in rose(ev, NEIGH_FULL)
        for r in ce.rises
        if "arp.entries" in r.levels
    ]
    if entries:
        extra.append(f"the table held up to {max(entries)} entries beside the rises")
    score = drop_score("neighbour-table-full", ev, NEIGH_FULL, extra_for=extra)
    return with_drops(score, ev, NEIGH_DROPS)


SCORERS: dict[str, Callable[[Evidence], CauseScore]] = {
    "conntrack-race": score_conntrack_race,
    "conntrack-full": score_conntrack_full,
    "neighbour-table-full": score_neighbour_table_full,
}
"""The kernel-table causes (taken into :data:`netsleuth.analysis.scoring.SCORERS`)."""
