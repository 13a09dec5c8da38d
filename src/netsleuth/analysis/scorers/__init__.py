"""Scorers of the causes seen in kernel counters and probe patterns, one
module per group; each module has a ``SCORERS`` dict (cause id -> scorer)
that :data:`netsleuth.analysis.scoring.SCORERS` takes in.

:func:`counter_score` is the common rule: a cause is named when its counter
rose during outages more often than chance allows (p < ALPHA, with at least
:data:`MIN_MET` outages met), and its evidence says where and how much.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from netsleuth.analysis.correlate import ALPHA
from netsleuth.analysis.counters import CounterEvidence
from netsleuth.analysis.evidence import CauseScore, Evidence, confidence_label
from netsleuth.analysis.stats import p_phrase

__all__ = ["MIN_MET", "counter_score", "counter_sentence", "rose"]

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
