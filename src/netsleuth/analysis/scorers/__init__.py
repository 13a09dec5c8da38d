"""Scorers of the causes seen in kernel counters and probe patterns, one
module per group; each module has a ``SCORERS`` dict (cause id -> scorer)
that :data:`netsleuth.analysis.scoring.SCORERS` takes in.

:func:`counter_score` is the common rule: a cause is named when its counter
rose during outages more often than chance allows (p < ALPHA, with at least
:data:`MIN_MET` outages met), and its evidence says where and how much.

:func:`with_drops` adds the kernel's drop reasons (:mod:`netsleuth.analysis.drops`)
to a cause whose mechanism drops packets with a known reason: the drops as
evidence, and, where they are direct evidence, a higher confidence or the
cause named when its state or counter evidence is missing
(:func:`drop_strength` says how strong they are).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from netsleuth.analysis.correlate import ALPHA
from netsleuth.analysis.counters import CounterEvidence
from netsleuth.analysis.drops import DropEvidence, DropPlace
from netsleuth.analysis.evidence import (
    CONFIDENCE_RANK,
    CauseScore,
    Evidence,
    better,
    confidence_label,
)
from netsleuth.analysis.stats import p_phrase

__all__ = [
    "MIN_MET",
    "counter_score",
    "counter_sentence",
    "drop_lines",
    "drop_strength",
    "rose",
    "with_drops",
]

MIN_MET = 2
"""Outages a counter must have risen in before it names a cause."""


def rose(ev: Evidence, families: Sequence[str]) -> list[CounterEvidence]:
    """The families of ``families`` that rose at all, most outages met first."""
    found = [ev.counters[f] for f in families if f in ev.counters]
    return sorted(found, key=lambda c: (-c.met, c.p_value if c.p_value is not None else 1.0))


def counter_sentence(ce: CounterEvidence) -> str:
    where = ", ".join(ce.where[:3])
    text = f"{ce.family} rose by {ce.total} in {len(ce.rises)} samples ({where})"
    if ce.outages:
        text += f"; {ce.met} of {ce.outages} independent outages came while it rose"
        if ce.p_value is not None and ce.met:
            text += f" ({p_phrase(ce.p_value)} by chance)"
    return text


def counter_score(
    cause: str,
    ev: Evidence,
    families: Sequence[str],
    *,
    fields: Mapping[str, str] | None = None,
    extra_for: Sequence[str] = (),
    require: bool = True,
) -> CauseScore:
    """Named when one of ``families`` met :data:`MIN_MET` or more outages at
    p < ALPHA. ``require=False``: returned unnamed with confidence ``none``,
    but with the evidence and the p-value, for a caller that decides itself."""
    found = rose(ev, families)
    pro = [counter_sentence(c) for c in found] + list(extra_for)
    if not found:
        nothing = f"no {' / '.join(families)} rise was recorded"
        return CauseScore(cause, False, "none", None, evidence_against=(nothing,))
    best = found[0]
    p = best.p_value
    named = best.met >= MIN_MET and p is not None and p < ALPHA
    against: tuple[str, ...] = ()
    if not named:
        against = (
            f"{best.family} rose in only {best.met} of {best.outages} outages"
            if best.outages
            else "nothing failed while it rose",
        )
    confidence = confidence_label(p) if named and p is not None else "none"
    return CauseScore(
        cause,
        named and require,
        confidence if require else "none",
        p,
        evidence_for=tuple(pro),
        evidence_against=against,
        fields=dict(fields or {}),
    )


# -- kernel drop reasons ----------------------------------------------------------------


def failures_word(ev: Evidence) -> str:
    return "failed queries" if ev.dns_only else "failed probes"


def _places(places: Sequence[DropPlace], attr: str, reasons: int, limit: int = 3) -> str:
    """``as R by F on D (ns)`` for one place; for several, each with its
    count (and reason, when several were weighed), the most first."""
    shown = sorted((p for p in places if getattr(p, attr)), key=lambda p: -getattr(p, attr))
    if len(shown) == 1:
        return f" as {shown[0].text}"
    parts = [
        f"{getattr(p, attr)} {'as ' + p.text if reasons > 1 else p.where}" for p in shown[:limit]
    ]
    rest = len(shown) - limit
    text = ", ".join(parts) + (f" and {rest} more places" if rest > 0 else "")
    return f": {text}" if reasons > 1 else f" as {shown[0].reason}: {text}"


def _n(k: int, one: str, many: str) -> str:
    return f"{k} {one if k == 1 else many}"


def drop_lines(de: DropEvidence, what: str = "failed probes") -> list[str]:
    """The drop evidence in words: the failed probes that were its packets,
    then how the drops lined up with the outages."""
    out = []
    n = len(de.reasons)
    if de.linked:
        outages = _n(de.linked_outages, "outage", "independent outages")
        out.append(
            f"{de.linked} of {de.linkable} {what} were dropped"
            f"{_places(de.places, 'linked', n)}; in {outages} (each matched to its probe by "
            "the 5-tuple of its query or its answer)"
        )
    to = f", to {de.top.to}" if de.top.to else ""
    text = (
        f"the kernel dropped {_n(de.total, 'packet', 'packets')}"
        f"{_places(de.places, 'drops', n, 2)}{to}; {de.in_outages} of them during outages"
    )
    ce = de.counter
    if ce.outages:
        text += f"; {ce.met} of {ce.outages} independent outages came with such drops"
        if de.back.stretches:
            text += f", {de.back.met} of {_n(de.back.stretches, 'stretch', 'stretches')} of "
            text += "them with an outage"
        if de.p_value is not None and ce.met:
            text += f" ({p_phrase(de.p_value)} by chance)"
    out.append(text)
    return out


def drop_strength(de: DropEvidence) -> tuple[bool, str]:
    """Do the drops name a cause, and with what confidence?

    - **linked**: failed probes of :data:`MIN_MET` or more independent
      outages were dropped with the reason (``high`` from three outages,
      else ``medium``): their packets are seen dying, no chance involved;
    - **timing**: the outages came with drops, or the drops during outages,
      at p < ALPHA with :data:`MIN_MET` outages met (confidence from p);
    - **exclusive**: every stretch of drops (at least two) came during an
      outage and at least half the outages with drops (``low``): each drop
      is a lost packet, in a record too short for a small p."""
    ce, back = de.counter, de.back
    found: list[str] = []
    if de.linked_outages >= MIN_MET:
        found.append("high" if de.linked_outages >= 3 else "medium")
    p = de.p_value
    if ce.met >= MIN_MET and p is not None and p < ALPHA:
        found.append(confidence_label(p))
    if ce.met >= MIN_MET and 2 * ce.met >= ce.outages and back.all_met and back.met >= MIN_MET:
        found.append("low")
    if not found:
        return False, "none"
    return True, max(found, key=lambda c: CONFIDENCE_RANK[c])


def _contrary(ev: Evidence, reasons: Iterable[str], what: str) -> list[str]:
    """Most failed probes' packets died of another reason: say so."""
    rec = ev.drops
    wanted = set(reasons)
    others = rec.select([r for r in rec.reasons if r not in wanted])
    if others is None or 2 * others.linked < max(rec.linkable, 1):
        return []
    top = rec.linked_elsewhere(wanted)[0]
    return [
        f"{others.linked} of {rec.linkable} {what} were dropped for another reason (most as "
        f"{top.text})"
    ]


def with_drops(
    score: CauseScore,
    ev: Evidence,
    reasons: Sequence[str],
    keep: Callable[[DropPlace], bool] | None = None,
    *,
    name: bool = True,
    fields: Mapping[str, str] | None = None,
) -> CauseScore:
    """``score`` with the drops of ``reasons`` (at the places ``keep``
    accepts) as evidence. Strong drops (:func:`drop_strength`) raise a named
    cause's confidence and, with ``name``, name one that its other evidence
    did not (``fields`` then fill its texts). Without such drops, when the
    failed probes' packets were dropped for another reason, that goes
    against it; when drops were recorded with headers and none of ``reasons``
    was seen, a named cause says so."""
    what = failures_word(ev)
    de = ev.drops.select(reasons, keep)
    if de is None:
        against = _contrary(ev, reasons, what)
        if score.named and ev.drops.mechanism == "bpftrace" and ev.drops.linkable:
            against.append(
                f"kernel drops were recorded, none as {' / '.join(reasons)} where this cause "
                "would drop the packets"
            )
        if not against:
            return score
        return replace(score, evidence_against=(*score.evidence_against, *against))
    lines = drop_lines(de, what)
    strong, confidence = drop_strength(de)
    against = list(score.evidence_against)
    if not de.linked:
        against += _contrary(ev, reasons, what)
    if score.named:
        return replace(
            score,
            confidence=better(score.confidence, confidence) if strong else score.confidence,
            evidence_for=(*score.evidence_for, *lines),
            evidence_against=tuple(against),
        )
    if not (strong and name):
        if strong or de.linked or de.counter.met:
            return replace(
                score,
                evidence_for=(*score.evidence_for, *lines),
                evidence_against=tuple(against),
            )
        return score
    p = de.p_value if de.p_value is not None and de.p_value < ALPHA else None
    return replace(
        score,
        named=True,
        confidence=confidence,
        p_value=p,
        evidence_for=(*lines, *score.evidence_for),
        evidence_against=tuple(against),
        fields={**dict(fields or {}), **score.fields},
    )
