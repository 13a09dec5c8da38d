"""Score every catalogued cause against a store's evidence, rank them, and
name the verdict (pure).

One scorer per cause whose evidence ``watch`` records
(:data:`SCORERS`; texts in :mod:`netsleuth.causes`). Each looks at the
:class:`Evidence` — state alignments first (:mod:`.states`), the onset
timing of event classes second (:mod:`.correlate`), the pattern across
targets and the host control last — and returns a :class:`CauseScore`:
named or not, with a confidence, a p-value where a test gave one, and the
evidence for and against. :func:`rank` orders them, named first; the verdict
is the first named one (``unknown`` / ``no-failures`` when none is).

Confidence labels. From a state alignment: ``high`` with three or more
independent aligned outages and p < 0.001, ``medium`` with p < 0.01 (one
clean alignment in a record of a minute is about p = 1e-4), ``low`` with p <
0.05. From onset timing alone: ``high`` p < 0.001, ``medium`` p < 0.01,
``low`` p < 0.05. Patterns without a test (upstream, conntrack race) are at
most ``medium``. A cause is *named* at p < :data:`ALPHA` (patterns: by
their own rule).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from netsleuth.analysis.correlate import ALPHA, Correlation
from netsleuth.analysis.drops import BRIDGE_REASONS, DropEvidence, DropPlace
from netsleuth.analysis.evidence import (
    CONFIDENCE_RANK,
    CauseScore,
    Evidence,
    better,
    confidence_label,
)
from netsleuth.analysis.result import EpisodeDetail, Verdict
from netsleuth.analysis.scorers import drop_lines, drop_strength, failures_word, with_drops
from netsleuth.analysis.scorers.kernel import SCORERS as KERNEL_SCORERS
from netsleuth.analysis.scorers.load import SCORERS as LOAD_SCORERS
from netsleuth.analysis.scorers.paths import SCORERS as PATH_SCORERS
from netsleuth.analysis.scorers.stale import SCORERS as STALE_SCORERS
from netsleuth.analysis.scorers.stale import leads_flap
from netsleuth.analysis.states import Alignment, StateEvidence
from netsleuth.analysis.stats import p_phrase
from netsleuth.causes import CAUSES
from netsleuth.model import EventKind, StateKind

__all__ = [
    "FAMILIES",
    "HOST_WIDE",
    "SCORERS",
    "CauseScore",
    "Evidence",
    "confidence_label",
    "rank",
    "score_all",
    "verdict_of",
]

FAMILIES: dict[str, tuple[StateKind, ...]] = {
    "bridge-mac-flap": (StateKind.GATEWAY_MAC_GONE, StateKind.GATEWAY_MAC_PORT),
    "gateway-arp-conflict": (StateKind.GATEWAY_MAC_FOREIGN,),
    "nat-missing": (StateKind.NAT_MISSING,),
    "forward-blocked": (StateKind.FORWARD_BLOCKED,),
    "path-link-down": (StateKind.PATH_LINK_DOWN,),
    "address-lost": (StateKind.ROUTE_MISSING,),
}
"""The states each cause's mechanism predicts (its state family)."""

MIN_RELATIVE_RISK = 2.0
"""Onset timing counts only when onsets are at least this much likelier after the events ..."""

MAX_EXPOSED_SHARE = 0.5
"""... and the window covers less than this share of the time (else it says little)."""

MIN_CONTROL_OUTAGES = 3
"""Unexplained outages of the host control needed to name an upstream fault."""

_NO_STATE = "no such state was recorded"


def _state_confidence(p: float, aligned: int) -> str:
    if p < 0.001 and aligned >= 3:
        return "high"
    return "medium" if p < 0.01 else confidence_label(p)


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _ms(x: float) -> str:
    return f"{x:.0f} ms" if abs(x) < 2000 else f"{x / 1000:.1f} s"


def _strong(c: Correlation) -> bool:
    return (
        c.significant
        and c.relative_risk >= MIN_RELATIVE_RISK
        and c.exposed_share < MAX_EXPOSED_SHARE
    )


def correlation_sentence(c: Correlation) -> str:
    return (
        f"{c.onsets_after} of {c.onsets} outage onsets ({_pct(c.onsets_after_share)}) came "
        f"≤ {_ms(c.window_s * 1000)} after: {c.label} (that window covers "
        f"{_pct(c.exposed_share)} of the time; relative risk {c.relative_risk:.0f}, "
        f"corrected p {p_phrase(c.p_adjusted)})"
    )


def _state_name(kind: StateKind) -> str:
    return {
        StateKind.GATEWAY_MAC_GONE: "its gateway entry held a MAC the bridge no longer had",
        StateKind.GATEWAY_MAC_PORT: "its gateway entry held another port's MAC",
        StateKind.GATEWAY_MAC_FOREIGN: "its gateway entry held a MAC learned behind a port",
        StateKind.NAT_MISSING: "no NAT rule covered its subnet",
        StateKind.FORWARD_BLOCKED: "a forward chain dropped its subnet",
        StateKind.PATH_LINK_DOWN: "a link on its path was down or gone",
        StateKind.ROUTE_MISSING: "it had no default route or address",
        StateKind.GATEWAY_UNRESOLVED: "its gateway entry was unresolved",
        StateKind.GATEWAY_AT_RISK: "its gateway MAC was a port's",
    }[kind]


def _alignment_sentence(a: Alignment) -> str:
    ep, iv = a.episode, a.interval
    what = _state_name(iv.state)
    seen = iv.change.mac or iv.change.link or iv.change.subnet
    extra = f" ({seen}{', ' + iv.change.note if iv.change.note else ''})" if seen else ""
    if a.start_offset_ms >= 0:
        start = f"began {_ms(a.start_offset_ms)} after {what}{extra}"
    else:  # stamped by two threads: the first lost probe may carry the earlier stamp
        start = f"began with {what}{extra} ({_ms(-a.start_offset_ms)} apart)"
    if a.end_offset_ms is None:
        return f"{ep.target}: an outage {start}; both still lasted at the end of the record"
    size = f"a {ep.duration_s:.1f} s outage" if ep.failed > 1 else "a single lost probe"
    return (
        f"{ep.target}: {size} {start} and ended as that did "
        f"({_ms(a.end_offset_ms)} after its last lost probe)"
    )


_FAMILY_NAMES = {
    "bridge-mac-flap": "its gateway entry held a MAC the bridge no longer had, or another port's",
}


def _state_lines(se: StateEvidence) -> tuple[list[str], list[str]]:
    k = len(se.aligned)
    what = _FAMILY_NAMES.get(se.family) or _state_name(se.states[0])
    families = (
        f"{se.families_tested} kinds of state" if se.families_tested > 1 else "one kind of state"
    )
    pro = [
        f"{k} of {se.outages} independent outages began and ended with a stretch in which "
        f"{what}; the chance of one such alignment by accident is at most {se.chance:.2g} per "
        f"outage, so p {p_phrase(se.p_value)} ({families} recorded and tested)"
    ]
    pro += [_alignment_sentence(a) for a in se.aligned[:3]]
    if k > 3:
        pro.append(f"(+{k - 3} more aligned outages)")
    con = []
    if se.unexplained:
        con.append(f"{se.unexplained} outages of these targets fell outside every such stretch")
    if se.quiet:
        con.append(f"{se.quiet} such stretches saw probes and no failure")
    return pro, con


def _state_score(
    cause_id: str,
    ev: Evidence,
    fields: Mapping[str, str] | None = None,
    *,
    structural: bool = False,
) -> CauseScore:
    """A cause named from its state family. ``structural``: the state makes
    traffic impossible by itself (a link gone, no route), so an outage that
    begins with it and lasts as long names the cause even where the record is
    too short for the alignment to be improbable by chance."""
    se = ev.states.get(cause_id)
    if se is None:
        return CauseScore(
            cause_id,
            False,
            "none",
            None,
            evidence_against=(_NO_STATE,),
        )
    pro, con = _state_lines(se)
    k = len(se.aligned)
    if not k:
        return CauseScore(
            cause_id,
            False,
            "none",
            se.p_value,
            evidence_for=(),
            evidence_against=(
                f"none of the {se.outages} outages lined up with the {len(se.intervals)} "
                "recorded stretches of the state",
                *con,
            ),
        )
    named = se.p_value < ALPHA or structural
    bridges = Counter(a.interval.bridge for a in se.aligned if a.interval.bridge)
    bridge = bridges.most_common(1)[0][0] if bridges else None
    fields = dict(fields or {})
    if cause_id != "bridge-mac-flap" and bridge:
        fields.setdefault("bridge", bridge)  # named in the texts, but not blamed
        bridge = None
    confidence = _state_confidence(se.p_value, k) if named else confidence_label(se.p_value)
    if structural:
        confidence = better(confidence, "medium")
    return CauseScore(
        cause_id,
        named,
        confidence,
        se.p_value,
        bridge=bridge,
        evidence_for=tuple(pro),
        evidence_against=tuple(con),
        fields=fields,
    )


# -- the scorers ------------------------------------------------------------------------


def score_bridge_mac_flap(ev: Evidence) -> CauseScore:
    by_name = {b.name: b for b in ev.bridges}
    state = _state_score("bridge-mac-flap", ev)
    kinds = [str(EventKind.PORT_LEFT), str(EventKind.MAC_CHANGED)]
    if "gateway-arp-conflict" not in ev.states:
        # a stale entry is the flap's only when no foreign MAC was seen answering
        kinds.append(str(EventKind.INVARIANT_VIOLATED))
    timing = [c for c in ev.correlations if c.kind in kinds and c.bridge and _strong(c)]
    bridge = state.bridge if state.named else (timing[0].bridge if timing else state.bridge)
    bridge, drops = _flap_drops(ev, bridge)
    lines = drop_lines(drops, failures_word(ev)) if drops else []
    br = by_name.get(bridge or "")
    against = list(state.evidence_against)
    if bridge and (br is None or br.mac_changes == 0):
        return CauseScore(
            "bridge-mac-flap",
            False,
            "none",
            state.p_value,
            bridge=bridge,
            evidence_for=(*state.evidence_for, *lines),
            evidence_against=(f"the MAC of bridge {bridge} never changed in the record", *against),
        )
    pro = list(state.evidence_for)
    # the mechanism first: ports leaving, then the MAC changes, then stale entries
    related = sorted(
        (c for c in timing if c.bridge == bridge), key=lambda c: (kinds.index(c.kind), c.p_adjusted)
    )
    pro += [correlation_sentence(c) for c in related]
    pro += lines
    strong, drop_confidence = drop_strength(drops) if drops else (False, "none")
    if not state.named and not related and not strong:
        if not timing:
            against.append("no outage onset is tied to ports leaving or the bridge MAC changing")
        return CauseScore(
            "bridge-mac-flap",
            False,
            state.confidence,
            state.p_value,
            bridge=bridge,
            evidence_for=tuple(pro),
            evidence_against=tuple(against),
        )
    if br is not None:
        if br.pinned is False:
            aat = (
                f" (addr_assign_type {br.addr_assign_type})"
                if br.addr_assign_type is not None
                else ""
            )
            pro.append(f"bridge {br.name} has no fixed MAC{aat}")
        elif br.pinned:
            pro.append(f"bridge {br.name} has a fixed MAC now, but not during the outages")
        pro.append(f"its MAC changed {br.mac_changes} times in the selected data")
        pro.extend(_stale_sentence(ev.episodes))
        if br.arp_notify == 0:
            pro.append(f"net.ipv4.conf.{br.name}.arp_notify is 0, so nobody announces the change")
    p_values = [c.p_adjusted for c in related]
    confidence = state.confidence if state.named else "none"
    p = state.p_value if state.named else None
    if related:
        best = min(p_values)
        confidence = better(confidence, confidence_label(best))
        p = best if p is None else min(p, best)
    if strong:
        confidence = better(confidence, drop_confidence)
    return CauseScore(
        "bridge-mac-flap",
        True,
        confidence,
        p,
        bridge=bridge,
        evidence_for=tuple(pro),
        evidence_against=tuple(against),
    )


def _flap_drops(ev: Evidence, bridge: str | None) -> tuple[str | None, DropEvidence | None]:
    """The drops of a stale gateway MAC (OTHERHOST: a frame for a MAC the
    device does not have; NO_TX_TARGET: the bridge flooding it to no one) in
    the namespace of ``bridge``, on it, its ports or anything else there (a
    frame the bridge sent out of a port arrives on the port's peer). Without
    a bridge from the other evidence, the bridge on which (or on whose ports)
    most of them were dropped."""
    rec = ev.drops
    if bridge is None:
        on = rec.select(BRIDGE_REASONS, lambda p: bool(p.bridge))
        if on is None:
            return None, None
        totals: Counter[str] = Counter()
        for place in on.places:
            totals[place.bridge] += place.drops
        bridge = totals.most_common(1)[0][0]
    ns = rec.bridges.get(bridge)
    found = rec.select(BRIDGE_REASONS, lambda p: p.bridge == bridge or p.netns == ns)
    return bridge, found


def _stale_sentence(episodes: Sequence[EpisodeDetail]) -> list[str]:
    """How many outages the live invariant saw the gateway entry stale in."""
    monitored = [e for e in episodes if e.gateway_stale is not None]
    longer = [e for e in monitored if e.episode.failed >= 2]
    if longer and len(longer) < len(monitored):
        monitored, what = longer, "outages of two or more failed probes"
    else:
        what = "outages"
    if not monitored:
        return []
    stale = sum(1 for e in monitored if e.gateway_stale)
    return [
        f"the gateway entry in the namespace was stale during {stale} of {len(monitored)} {what}"
    ]


def _with_timing(score: CauseScore, ev: Evidence, *, nat: bool) -> CauseScore:
    """A firewall cause named by state alignment, or else by onset timing.
    Timing of firewall changes counts for ``nat-missing`` (``nat``) unless
    forward states were recorded, then only changes that touch NAT do; for
    ``forward-blocked`` only the others."""
    nat_only = nat and "forward-blocked" in ev.states

    def counts(c: Correlation) -> bool:
        touches_nat = ":nat@" in c.key
        return touches_nat if nat_only else (nat or not touches_nat)

    timing = [
        c
        for c in ev.correlations
        if c.kind == str(EventKind.FIREWALL_CHANGED) and counts(c) and _strong(c)
    ]
    if not timing:
        return score
    c = timing[0]
    pro = (*score.evidence_for, correlation_sentence(c))
    if score.named:
        return replace(
            score,
            confidence=better(score.confidence, confidence_label(c.p_adjusted)),
            p_value=min(score.p_value or 1.0, c.p_adjusted),
            evidence_for=pro,
        )
    return replace(
        score,
        named=True,
        confidence=confidence_label(c.p_adjusted),
        p_value=c.p_adjusted,
        evidence_for=pro,
        evidence_against=tuple(x for x in score.evidence_against if x != _NO_STATE),
    )


def _subnet_fields(ev: Evidence, cause_id: str) -> dict[str, str]:
    se = ev.states.get(cause_id)
    subnets = [a.interval.change.subnet for a in se.aligned] if se else []
    return {"subnet": subnets[0]} if subnets and subnets[0] else {}


def score_nat_missing(ev: Evidence) -> CauseScore:
    """The nat-missing state, or NAT rule changes. A query without NAT leaves
    the host and is lost beyond it, so no kernel drop on this host matches it;
    failed queries that were dropped here go against it."""
    score = _with_timing(
        _state_score("nat-missing", ev, _subnet_fields(ev, "nat-missing")), ev, nat=True
    )
    return _left_the_host(score, ev)


MIN_SOURCED = 3
"""Failed probes with a recorded source needed before drops (or none) say anything."""


def _left_the_host(score: CauseScore, ev: Evidence, *, demote: bool = False) -> CauseScore:
    """A cause whose packets die beyond this host: the failed probes' packets
    dropped on it (half of them or more) go against it (``demote``: it is not
    named then); none dropped, with drops recorded with headers, is for it
    once it is named."""
    rec, what = ev.drops, failures_word(ev)
    if rec.mechanism != "bpftrace" or rec.linkable < MIN_SOURCED:
        return score
    if rec.linked == 0:
        if not score.named:
            return score
        line = (
            f"kernel drops were recorded, and none of the {rec.linkable} {what} sent meanwhile "
            "was dropped in a watched namespace: they left this host"
        )
        return replace(score, evidence_for=(*score.evidence_for, line))
    if 2 * rec.linked < rec.linkable:
        return score
    top = rec.linked_elsewhere(())[0]
    line = (
        f"{rec.linked} of {rec.linkable} {what} were dropped on this host (most as "
        f"{top.text}): they did not leave it"
    )
    if demote and score.named:
        return replace(
            score, named=False, confidence="none", evidence_against=(line, *score.evidence_against)
        )
    return replace(score, evidence_against=(*score.evidence_against, line))


FIREWALL_DROPS = ("NETFILTER_DROP",)
"""The reason of a packet a netfilter rule or chain policy dropped."""


def _forwarding(ev: Evidence) -> Callable[[DropPlace], bool]:
    """Drops of routed traffic in a namespace that forwards the targets'
    traffic: any namespace but a target's own (the host control's is the
    host's), and not on a port of a bridge. A forward chain drops routed
    packets on the bridge itself; on a port, netfilter saw a bridged frame
    (br_netfilter), one the bridge switched or flooded instead of routing: a
    query sent to a MAC that is not the gateway's, whose loss is that MAC's
    cause (a flapping bridge, a rogue gateway), not the firewall's."""
    own = {t.target for t in ev.targets if t.target != ev.control}
    return lambda p: p.netns not in own and not (p.bridge and p.device != p.bridge)


def _drop_fields(
    ev: Evidence, reasons: Sequence[str], keep: Callable[[DropPlace], bool]
) -> dict[str, str]:
    """The bridge (and, as far as drops tell, the subnet) of the texts, from the drops."""
    de = ev.drops.select(reasons, keep)
    bridges = [p.bridge for p in de.places if p.bridge] if de else []
    if not bridges:
        return {"subnet": "the namespaces' traffic"}
    return {"bridge": bridges[0], "subnet": f"the subnet of {bridges[0]}"}


def score_forward_blocked(ev: Evidence) -> CauseScore:
    """The forward-blocked state (or, beside it, firewall changes); and the
    kernel's NETFILTER_DROP of the targets' packets outside their own
    namespaces, which names the cause by itself when no state was recorded."""
    score = _state_score("forward-blocked", ev, _subnet_fields(ev, "forward-blocked"))
    keep = _forwarding(ev)
    fields = _drop_fields(ev, FIREWALL_DROPS, keep)
    if "forward-blocked" not in ev.states:
        # a firewall change alone is read as the NAT rule's (nat-missing); a drop is not
        return with_drops(score, ev, FIREWALL_DROPS, keep, fields=fields)
    return with_drops(_with_timing(score, ev, nat=False), ev, FIREWALL_DROPS, keep, fields=fields)


def score_gateway_arp_conflict(ev: Evidence) -> CauseScore:
    se = ev.states.get("gateway-arp-conflict")
    targets = sorted({a.episode.target for a in se.aligned}) if se else []
    return _state_score(
        "gateway-arp-conflict", ev, {"target": ", ".join(targets)} if targets else {}
    )


def score_path_link_down(ev: Evidence) -> CauseScore:
    se = ev.states.get("path-link-down")
    fields: dict[str, str] = {}
    if se and se.aligned:
        change = se.aligned[0].interval.change
        role = "bridge " if change.link == change.bridge else ""
        verb = "was deleted" if change.note == "deleted" else (change.note or "went down")
        fields = {
            "link": change.link,
            "link_event": f"{role}{change.link} {verb}",
            "target": ", ".join(sorted({a.episode.target for a in se.aligned})),
        }
    return _state_score("path-link-down", ev, fields, structural=True)


def score_address_lost(ev: Evidence) -> CauseScore:
    se = ev.states.get("address-lost")
    # every target whose outages the state explains: when the host itself lost
    # its way out, one alignment stands for all the targets failing with it
    targets = sorted({target for target, _ in se.explained}) if se and se.aligned else []
    return _state_score(
        "address-lost", ev, {"target": ", ".join(targets)} if targets else {}, structural=True
    )


def _explained(ev: Evidence) -> set[tuple[str, int]]:
    return {key for se in ev.states.values() for key in se.explained}


def score_upstream(ev: Evidence) -> CauseScore:
    cause_id = "upstream-dns" if ev.dns_only else "upstream"
    if ev.localisation in ("none", "no-data"):
        return CauseScore(cause_id, False, "none", None, evidence_against=("nothing failed",))
    explained = _explained(ev)
    control = ev.control
    if control is None:
        against = ["no host control was probed, so an upstream fault cannot be told apart"]
        if ev.localisation == "everywhere":
            return CauseScore(cause_id, True, "low", None, evidence_for=("every target failed",))
        return CauseScore(cause_id, False, "none", None, evidence_against=tuple(against))
    own = [d.episode for d in ev.episodes if d.episode.target == control]
    loose = [e for e in own if (e.target, e.start_ns) not in explained]
    others = [
        d.episode
        for d in ev.episodes
        if d.episode.target != control and (d.episode.target, d.episode.start_ns) not in explained
    ]
    stats = {t.target: t for t in ev.targets}
    c = stats.get(control)
    rate = f" ({c.failed}/{c.attempts} probes failed)" if c else ""
    pro = []
    if loose:
        pro.append(
            f"the host control ({control}) failed too, in {len(loose)} outages{rate} that no "
            "recorded state explains"
        )
    if others:
        pro.append(f"{len(others)} outages of the other targets are not explained by any state")
    # every target failing says "upstream" only while some outage is left
    # that a recorded state (e.g. the host's own uplink losing its address)
    # does not explain
    everywhere = ev.localisation == "everywhere" and bool(loose or others)
    named = len(loose) >= MIN_CONTROL_OUTAGES or everywhere
    if not named:
        reason = (
            f"the host control ({control}) did not fail"
            if not own
            else f"the host control ({control}) had only {len(loose)} unexplained outages"
        )
        return CauseScore(
            cause_id, False, "none", None, evidence_for=tuple(pro), evidence_against=(reason,)
        )
    confidence = "medium" if len(loose) >= 5 else "low"
    score = CauseScore(cause_id, True, confidence, None, evidence_for=tuple(pro))
    return _left_the_host(score, ev, demote=True)


SCORERS: dict[str, Callable[[Evidence], CauseScore]] = {
    "bridge-mac-flap": score_bridge_mac_flap,
    "gateway-arp-conflict": score_gateway_arp_conflict,
    "nat-missing": score_nat_missing,
    "forward-blocked": score_forward_blocked,
    "path-link-down": score_path_link_down,
    "address-lost": score_address_lost,
    "upstream-dns": score_upstream,
    # each module of netsleuth.analysis.scorers adds its causes below
    **KERNEL_SCORERS,
    **LOAD_SCORERS,
    **PATH_SCORERS,
    **STALE_SCORERS,
}
"""Cause id -> scorer. ``upstream-dns`` scores ``upstream`` for non-DNS probes."""


def _pattern_race(s: CauseScore) -> bool:
    """``conntrack-race`` named from the pattern alone (no counter, no p-value)."""
    return s.cause == "conntrack-race" and s.named and s.p_value is None


def _demote(
    scores: list[CauseScore], which: Callable[[CauseScore], bool], why: str
) -> list[CauseScore]:
    return [
        replace(s, named=False, confidence="none", evidence_against=(*s.evidence_against, why))
        if s.named and which(s)
        else s
        for s in scores
    ]


HOST_WIDE = frozenset(
    {"conntrack-full", "neighbour-table-full", "upstream-rate-limit", "resolver-overload"}
)
"""Causes whose mechanism fails the host control as well (a full table of the
host, a limit on the host's total query rate, the host's own resolver
overflowing): upstream is not named beside them (the control's failures are
theirs)."""


def score_all(ev: Evidence) -> list[CauseScore]:
    """Every scored cause, ranked (:func:`rank`). A weak pattern
    (``conntrack-race`` without its counter) is not named beside a cause that
    explains the outages, nor upstream beside a kernel-table cause that fails
    the host control too (:data:`HOST_WIDE`)."""
    scores = [scorer(ev) for scorer in SCORERS.values()]
    strong = [s for s in scores if s.named and not _pattern_race(s)]
    if strong:
        scores = _demote(scores, _pattern_race, f"{strong[0].cause} explains the outages better")
    host_wide = [s for s in scores if s.named and s.cause in HOST_WIDE]
    if host_wide:
        why = (
            f"{host_wide[0].cause} fails the host's own traffic too: the host control's "
            "failures are its"
        )
        scores = _demote(scores, lambda s: s.cause in ("upstream-dns", "upstream"), why)
    return _beside_flap(rank(scores), ev)


def _beside_flap(ranked: list[CauseScore], ev: Evidence) -> list[CauseScore]:
    """``stale-conntrack-nat`` and ``bridge-mac-flap`` both named: the flap's
    outages left the entries. The one that cost more outages leads
    (:func:`~netsleuth.analysis.scorers.stale.leads_flap`), the other follows it."""
    pos = {s.cause: i for i, s in enumerate(ranked) if s.named}
    if "stale-conntrack-nat" not in pos or "bridge-mac-flap" not in pos:
        return ranked
    stale, flap = ranked[pos["stale-conntrack-nat"]], ranked[pos["bridge-mac-flap"]]
    se = ev.states.get("bridge-mac-flap")
    first, second = (
        (stale, flap)
        if leads_flap(stale, flap, len(se.aligned) if se else 0, ev)
        else (
            flap,
            stale,
        )
    )
    rest = [s for s in ranked if s.cause not in ("stale-conntrack-nat", "bridge-mac-flap")]
    at = min(pos["stale-conntrack-nat"], pos["bridge-mac-flap"])
    return [*rest[:at], first, second, *rest[at:]]


def rank(scores: Sequence[CauseScore]) -> list[CauseScore]:
    """Named first; then by confidence, p-value (None last) and evidence."""
    return sorted(
        scores,
        key=lambda s: (
            not s.named,
            -CONFIDENCE_RANK[s.confidence],
            1.0 if s.p_value is None else s.p_value,
            -len(s.evidence_for),
            s.cause,
        ),
    )


def verdict_of(scores: Sequence[CauseScore], ev: Evidence) -> Verdict:
    """The first named cause, or ``no-failures`` / ``unknown`` with the
    strongest candidates as evidence."""
    named = [s for s in scores if s.named]
    if named:
        s = named[0]
        return Verdict(
            cause=s.cause,
            title=s.title,
            bridge=s.bridge,
            confidence=s.confidence,
            p_value=s.p_value,
            explanation=CAUSES[s.cause].explanation,
            fix=s.fix,
            evidence=s.evidence_for,
        )
    if ev.localisation in ("none", "no-data"):
        entry = CAUSES["no-failures"]
        return Verdict(
            "no-failures", entry.title, None, "none", None, entry.explanation, entry.fix, ()
        )
    entry = CAUSES["unknown"]
    evidence = [f"(not significant) {correlation_sentence(c)}" for c in ev.correlations[:3]]
    evidence += [
        f"(not named) {s.cause}: {s.evidence_for[0]}"
        for s in scores
        if s.evidence_for and s.p_value is not None
    ][:2]
    return Verdict(
        "unknown", entry.title, None, "none", None, entry.explanation, entry.fix, tuple(evidence)
    )
