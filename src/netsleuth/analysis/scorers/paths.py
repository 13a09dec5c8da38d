"""Scorers of the causes that lie on the path between the namespaces and
their resolver: strict reverse-path filtering (``rp-filter``), a path MTU
black hole (``mtu-blackhole``) and a resolver the namespaces cannot reach
(``resolver-unreachable``).

``rp-filter`` is a kernel counter (``IPReversePathFilter`` counts each
packet strict reverse-path filtering dropped), weighed both ways: outages
that came with a rise (:func:`~netsleuth.analysis.scorers.counter_score`)
and stretches of rises that came with an outage (:func:`rises_in_outages`).
The other two are patterns across probe streams (:class:`SeriesStats`):
which probes of one target fail, to which server, how, and what the host
control got meanwhile; Fisher's exact test says how unlikely the split is if
failures did not depend on the probe (MTU) or on the namespace (resolver).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from netsleuth.analysis.correlate import ALPHA
from netsleuth.analysis.counters import rises_in_outages
from netsleuth.analysis.drops import DropPlace
from netsleuth.analysis.evidence import (
    CONFIDENCE_RANK,
    CauseScore,
    Evidence,
    SeriesStats,
    confidence_label,
)
from netsleuth.analysis.exact import fisher_greater_p
from netsleuth.analysis.scorers import (
    MIN_MET,
    counter_score,
    drop_lines,
    failures_word,
    with_drops,
)
from netsleuth.analysis.stats import p_phrase
from netsleuth.errors import InvalidArgument
from netsleuth.probes.spec import ProbeSpec, parse_probe

__all__ = [
    "ICMP_COUNTER",
    "MIN_ATTEMPTS",
    "NOPORTS_COUNTER",
    "RP_COUNTER",
    "SCORERS",
    "score_mtu_blackhole",
    "score_resolver_unreachable",
    "score_rp_filter",
]

RP_COUNTER = "netstat.TcpExt.IPReversePathFilter"
ICMP_COUNTER = "snmp.Icmp.OutDestUnreachs"
NOPORTS_COUNTER = "snmp.Udp.NoPorts"

MIN_ATTEMPTS = 10
"""Attempts a probe stream needs before its failure rate says anything."""

MOSTLY = 0.9
"""A stream failing at least this share of its attempts fails "nearly always";
one failing at most ``1 - MOSTLY`` works."""

PLAIN_UDP = 512
"""The largest DNS answer over UDP without EDNS (larger ones come truncated)."""


# -- rp-filter ----------------------------------------------------------------------------


def _strict_links(rp_filter: dict[str, int] | None) -> tuple[list[str], list[str]]:
    """(interfaces where strict mode applies, those that set it themselves):
    the effective value is the higher of ``all`` and the interface's own."""
    table = dict(rp_filter or {})
    all_value = table.pop("all", 0)
    table.pop("lo", None)
    strict = sorted(n for n, own in table.items() if max(all_value, own) == 1)
    own = sorted(n for n, v in table.items() if v == 1 and n in strict)
    return strict, own


RP_DROPS = ("IP_RPFILTER",)
"""The drop reason of a packet reverse-path filtering refused."""


def score_rp_filter(ev: Evidence) -> CauseScore:
    """The counter tests (:func:`_rp_counter_score`) with the kernel's
    IP_RPFILTER drops as evidence; those name the cause by themselves when
    the counter was not recorded."""
    score = _rp_counter_score(ev)
    return with_drops(score, ev, RP_DROPS, fields=score.fields)


def _rp_counter_score(ev: Evidence) -> CauseScore:
    strict, own = _strict_links(dict(ev.rp_filter))
    extra = []
    if strict:
        all_value = ev.rp_filter.get("all")
        extra.append(
            f"rp_filter is strict (1) in the host namespace on {', '.join(strict[:4])}"
            + (f" (all={all_value})" if all_value is not None else "")
            + ": a packet that arrives on an interface other than the one its source is "
            "routed by is dropped"
        )
    # the interface to loosen: one that is strict by its own setting, else all
    fields = {"link": own[0] if own else ("all" if strict else "IFACE")}
    base = counter_score(
        "rp-filter", ev, (RP_COUNTER,), fields=fields, extra_for=extra, require=False
    )
    ce = ev.counters.get(RP_COUNTER)
    if ce is None:
        return base
    back = rises_in_outages(ce, [d.episode for d in ev.episodes], ev.span_ns)
    pro = list(base.evidence_for)
    if back.p_value is not None:
        pro.insert(
            1,
            f"{back.met} of {back.stretches} stretches in which it rose came during outages "
            f"(outages cover {100 * back.cover:.0f} % of the record; {p_phrase(back.p_value)} "
            "by chance)",
        )
    tests = [p for p in (ce.p_value, back.p_value) if p is not None]
    p = min(1.0, 2 * min(tests)) if tests else None  # the better of two tests, corrected
    significant = ce.met >= MIN_MET and p is not None and p < ALPHA
    # Each rise is a packet the kernel dropped: when every stretch of rises came
    # during an outage and most outages came with one, the drops explain them
    # even in a record too short for the alignment's chance to be small.
    exclusive = (
        ce.met >= MIN_MET and 2 * ce.met >= ce.outages and back.all_met and back.met >= MIN_MET
    )
    named = significant or exclusive
    against = list(base.evidence_against) if not named else []
    if not named and ce.met >= MIN_MET and p is not None:
        against.append(f"its rises and the outages line up no better than p {p_phrase(p)}")
        if not back.all_met:
            against.append(f"{back.stretches - back.met} stretches of rises came with no outage")
    confidence = "none"
    if named:
        confidence = confidence_label(p) if significant and p is not None else "low"
    return CauseScore(
        "rp-filter",
        named,
        confidence,
        p,
        evidence_for=tuple(pro),
        evidence_against=tuple(against),
        fields=fields,
    )


# -- probe streams ------------------------------------------------------------------------


def _dns(s: SeriesStats) -> ProbeSpec | None:
    try:
        spec = parse_probe(s.probe)
    except InvalidArgument:
        return None
    return spec if spec.kind == "dns" else None


def _fisher(a: SeriesStats, b: SeriesStats) -> float:
    """One-sided: ``a`` fails more often than ``b`` by more than chance."""
    return fisher_greater_p(((a.failed, a.attempts - a.failed), (b.failed, b.attempts - b.failed)))


def _kinds(s: SeriesStats) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(s.outcomes.items(), key=lambda x: -x[1]))


def _share(s: SeriesStats, kind: str) -> float:
    return s.outcomes.get(kind, 0) / s.failed if s.failed else 0.0


def _payload(spec: ProbeSpec) -> int:
    return spec.edns or PLAIN_UDP


@dataclass(frozen=True, slots=True)
class _Split:
    """A large-answer stream that times out beside a small one that works."""

    big: SeriesStats
    small: SeriesStats
    payload: int
    p_value: float


def _mtu_splits(ev: Evidence) -> list[_Split]:
    """Per target, the strongest large/small split to one server."""
    specs = {(s.target, s.probe, s.server): _dns(s) for s in ev.series}
    best: dict[str, _Split] = {}
    for big in ev.series:
        b = specs[(big.target, big.probe, big.server)]
        if (
            b is None
            or _payload(b) <= PLAIN_UDP
            or big.attempts < MIN_ATTEMPTS
            or big.rate < 0.5
            or _share(big, "timeout") < 0.8  # lost, not refused or failed by the server
        ):
            continue
        for small in ev.series:
            s = specs[(small.target, small.probe, small.server)]
            if (
                s is None
                or small.target != big.target
                or small.server != big.server
                or _payload(s) >= _payload(b)
                or small.attempts < MIN_ATTEMPTS
                or small.rate > 1 - MOSTLY
            ):
                continue
            split = _Split(big, small, _payload(b), _fisher(big, small))
            old = best.get(big.target)
            if old is None or split.p_value < old.p_value:
                best[big.target] = split
    return [best[t] for t in sorted(best)]


def _narrow_links(mtu: dict[str, int]) -> list[str]:
    """Links of the host namespace with a smaller MTU than the largest (but lo)."""
    table = {n: m for n, m in mtu.items() if n != "lo" and m > 0}
    if not table:
        return []
    top = max(table.values())
    return sorted((n for n, m in table.items() if m < top), key=lambda n: (table[n], n))


def _host_rises(ev: Evidence, family: str) -> int:
    ce = ev.counters.get(family)
    return sum(r.delta for r in ce.rises if r.netns == "host") if ce else 0


def score_mtu_blackhole(ev: Evidence) -> CauseScore:
    splits = [s for s in _mtu_splits(ev) if s.p_value < ALPHA]
    if not splits:
        return CauseScore(
            "mtu-blackhole",
            False,
            "none",
            None,
            evidence_against=(
                "no target had a DNS probe allowing large answers (edns=SIZE) that timed out "
                "while a smaller one to the same server got answers",
            ),
        )
    pro = []
    for sp in splits[:3]:
        pro.append(
            f"{sp.big.target}: {sp.big.failed} of {sp.big.attempts} queries allowing a "
            f"{sp.payload}-byte answer ({sp.big.probe}) failed ({_kinds(sp.big)}), while "
            f"{sp.small.failed} of {sp.small.attempts} smaller ones to the same server "
            f"({sp.small.probe}) did (Fisher's exact test: p {p_phrase(sp.p_value)} if "
            "failures did not depend on the answer's size)"
        )
    top = splits[0]
    support = []
    control = [
        s for s in ev.series if s.target == ev.control and s.probe == top.big.probe and s.attempts
    ]
    if control and top.big.target != ev.control:
        c = control[0]
        if c.rate <= 1 - MOSTLY:
            support.append(
                f"the host control ({ev.control}) got {c.attempts - c.failed} of {c.attempts} "
                "of the same large answers: the narrow hop lies between the host and the "
                "namespace"
            )
        elif c.rate >= 0.5:
            pro.append(
                f"the host control ({ev.control}) lost them too ({c.failed} of {c.attempts}): "
                "the narrow hop lies beyond the host"
            )
    icmp = _host_rises(ev, ICMP_COUNTER)
    if icmp:
        support.append(
            f"{ICMP_COUNTER} rose by {icmp} in the host namespace: it answered datagrams it "
            "could not forward with ICMP destination-unreachable ('fragmentation needed' is "
            "one), which never made the sender send smaller ones"
        )
    too_big = ev.drops.select(("PKT_TOO_BIG",))
    if too_big is not None and (too_big.linked or too_big.counter.met):
        # the kernel dropped what it could not forward through the narrow hop
        support.extend(drop_lines(too_big, failures_word(ev)))
    narrow = _narrow_links(dict(ev.mtu))
    if narrow:
        links = ", ".join(f"{n} {ev.mtu[n]}" for n in narrow[:3])
        support.append(
            f"MTUs in the host namespace differ: {links}, while others have "
            f"{max(ev.mtu[n] for n in ev.mtu if n != 'lo')}"
        )
    p = top.p_value
    # the split alone could be a name the server is slow for; the host seeing a
    # narrow hop (or the control getting the same answer) makes it the path's MTU
    confidence = confidence_label(p) if support else _capped(p, "medium")
    return CauseScore(
        "mtu-blackhole",
        True,
        confidence,
        p,
        evidence_for=(*pro, *support),
        fields={
            "target": ", ".join(s.big.target for s in splits),
            "link": narrow[0] if narrow else "the narrowest hop",
        },
    )


def _capped(p: float, cap: str) -> str:
    """:func:`confidence_label` of ``p``, at most ``cap``."""
    label = confidence_label(p)
    return label if CONFIDENCE_RANK[label] <= CONFIDENCE_RANK[cap] else cap


# -- resolver-unreachable --------------------------------------------------------------


def _outcome_sentence(s: SeriesStats) -> str:
    if _share(s, "refused") >= 0.5:
        return "refused at once: nothing listens on that address there"
    if _share(s, "unreachable") >= 0.5:
        return "unreachable: there is no route to that address from there"
    if _share(s, "timeout") >= 0.5:
        return "timed out: nothing answered"
    return _kinds(s)


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def score_resolver_unreachable(ev: Evidence) -> CauseScore:
    control = ev.control
    own = [s for s in ev.series if s.target == control and _dns(s) is not None and s.attempts]
    reached = {s.server for s in own if s.rate <= 1 - MOSTLY}
    best_control = min(own, key=lambda s: s.rate) if own else None
    found: list[tuple[SeriesStats, float | None]] = []
    for s in ev.series:
        if s.target == control or _dns(s) is None or s.attempts < MIN_ATTEMPTS:
            continue
        listed = ev.resolvers.get(s.target)
        if listed is not None and s.server not in listed:
            continue  # a server given on the command line, not the namespace's resolver
        if s.rate < MOSTLY:
            continue
        if not (_loopback(s.server) or (reached and s.server not in reached)):
            continue  # the host reaches that very server: the path, not the address
        p = _fisher(s, best_control) if best_control is not None and reached else None
        found.append((s, p))
    if not found:
        return CauseScore(
            "resolver-unreachable",
            False,
            "none",
            None,
            evidence_against=(
                "no namespace's resolver failed nearly every query while being a loopback "
                "address or one other than the resolver the host control reached",
            ),
        )
    pro = []
    for s, _ in found[:3]:
        listed = ev.resolvers.get(s.target)
        source = f", the nameserver of its resolv.conf ({', '.join(listed)})" if listed else ""
        pro.append(
            f"{s.target}: {s.failed} of {s.attempts} queries to {s.server}{source} failed, "
            f"{_outcome_sentence(s)}"
        )
    servers = sorted({s.server for s, _ in found})
    loop = [a for a in servers if _loopback(a)]
    if loop:
        pro.append(
            f"{', '.join(loop)} is a loopback address: in a network namespace it is the "
            "namespace's own loopback, where no resolver runs (the host's stub is not there)"
        )
    targets = {s.target for s, _ in found}
    noports = ev.counters.get(NOPORTS_COUNTER)
    refused = sum(r.delta for r in noports.rises if r.netns in targets) if noports else 0
    if refused:
        pro.append(
            f"{NOPORTS_COUNTER} rose by {refused} in {', '.join(sorted(targets)[:3])}: the "
            "queries reached a port nothing listens on in the namespace itself"
        )
    pro.extend(_no_socket(ev, [s for s, _ in found]))
    if best_control is not None and reached:
        c = best_control
        pro.append(
            f"meanwhile the host control ({control}) got answers from {', '.join(sorted(reached))} "
            f"({c.attempts - c.failed} of {c.attempts})"
        )
    tested = [p for _, p in found if p is not None]
    p = min(tested) if tested else None
    if p is not None:
        pro.append(
            f"Fisher's exact test: p {p_phrase(p)} that the namespace and the host fail alike"
        )
    confidence = confidence_label(p) if p is not None else "low"
    named = p is None or p < ALPHA
    return CauseScore(
        "resolver-unreachable",
        named,
        confidence if named else "none",
        p,
        evidence_for=tuple(pro),
        fields={"target": ", ".join(sorted(targets))},
    )


def _no_socket(ev: Evidence, streams: list[SeriesStats]) -> list[str]:
    """The kernel's NO_SOCKET drops of queries to a failing stream's server,
    in its namespace or the host's: nothing listened on that port there."""
    out = []
    for s in streams:
        spec = _dns(s)
        port = (spec.port if spec else None) or 53
        to, where = f"{s.server}:{port}", (s.target, "host")

        def there(p: DropPlace, to: str = to, where: tuple[str, str] = where) -> bool:
            return p.to == to and p.netns in where

        de = ev.drops.select(("NO_SOCKET",), there)
        if de is not None:
            out.append(
                f"the kernel dropped {de.total} packets to {s.server}:{port} as NO_SOCKET "
                f"{de.top.where}: nothing listens on that port there"
            )
    return out[:3]


SCORERS: dict[str, Callable[[Evidence], CauseScore]] = {
    "rp-filter": score_rp_filter,
    "mtu-blackhole": score_mtu_blackhole,
    "resolver-unreachable": score_resolver_unreachable,
}
"""Cause id -> scorer, taken in by :data:`netsleuth.analysis.scoring.SCORERS`."""
