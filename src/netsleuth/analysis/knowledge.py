"""The knowledge base: from the strongest evidence plus host facts to a named
cause, with an explanation and a fix.

Rules, tried in order of the correlations' strength. Only strong
correlations count: significant after correction (see
:data:`~netsleuth.analysis.correlate.ALPHA`), a relative risk of at least
:data:`MIN_RELATIVE_RISK`, and a window that covers less than
:data:`MAX_EXPOSED_SHARE` of the time.

- ``bridge-mac-flap``: onsets follow an event of bridge BR (its MAC changed,
  a port left, a namespace's gateway entry went stale) *and* BR's MAC did
  change in the data. A bridge is never blamed without both. (Ports joining
  are tested but are not evidence: the outage begins when the port holding
  the MAC leaves.)
- ``nat-missing``: onsets follow changes of the NAT (or firewall) rules.

Without a significant named correlation:

- ``no-failures`` when nothing failed;
- ``upstream-dns`` (``upstream`` for non-DNS probes) when every target failed,
  the host control at a comparable rate;
- ``conntrack-race`` (low confidence) when only namespaces failed and nearly
  every outage was a single lost query: the pattern of the conntrack insert
  race of parallel A/AAAA lookups through NAT, or of a reused conntrack entry
  without NAT (``explain`` tells them apart);
- ``unknown`` otherwise: the strongest raw correlations are shown instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from netsleuth.analysis.correlate import Correlation
from netsleuth.analysis.result import BridgeState, EpisodeDetail, Verdict
from netsleuth.analysis.stats import p_phrase
from netsleuth.model import EventKind

__all__ = ["CAUSES", "Cause", "confidence_label", "decide"]


@dataclass(frozen=True, slots=True)
class Cause:
    id: str
    title: str
    explanation: str
    fix: str


CAUSES: dict[str, Cause] = {
    c.id: c
    for c in (
        Cause(
            "bridge-mac-flap",
            "bridge {bridge} changes its MAC when ports come and go",
            "A Linux bridge whose MAC was never set takes the smallest MAC of its ports. "
            "When the port holding it leaves, that MAC vanishes from the bridge; a namespace "
            "whose gateway entry still holds it sends frames the bridge no longer accepts as "
            "its own, so they are never routed or NATed until the entry goes DELAY, PROBE, "
            "FAILED and a broadcast ARP recovers it (~6 s).",
            "pin the bridge MAC: `netsleuth fix bridge {bridge}` (or set "
            "net.ipv4.conf.{bridge}.arp_notify=1 so the host announces every change)",
        ),
        Cause(
            "nat-missing",
            "the NAT rules change while traffic flows",
            "Outages begin right after the NAT rules change: while the masquerade rule is "
            "missing, traffic from the namespaces leaves with private source addresses and "
            "the replies never come back.",
            "find what rewrites the ruleset (it is recorded as firewall events) and make the "
            "masquerade rule permanent; `netsleuth doctor` checks NAT for every bridge subnet",
        ),
        Cause(
            "upstream-dns",
            "the DNS server or the path to it loses queries",
            "Every target failed at a comparable rate, the host control too: the fault is not "
            "in the namespaces, bridges or NAT of this host but beyond it.",
            "check the upstream resolver and the path to it (loss, rate limits); configure "
            "more than one resolver",
        ),
        Cause(
            "upstream",
            "the server or the path to it loses traffic",
            "Every target failed at a comparable rate, the host control too: the fault is "
            "beyond this host.",
            "check the server and the path to it",
        ),
        Cause(
            "conntrack-race",
            "single lost DNS queries from namespaces only (conntrack insert race?)",
            "Only the namespaces failed and nearly every outage was one lost query, with no "
            "network event before it: the pattern of the conntrack race when a resolver sends "
            "A and AAAA queries from one socket at once through NAT — or of conntrack entries "
            "without NAT left behind by frames a bridge flooded after its MAC changed, which a "
            "later query from the same port reuses and leaves untranslated. This is a pattern "
            "match, not proof.",
            "tell them apart with `netsleuth capture` + `netsleuth explain` (the second shows "
            "queries that escaped NAT and names stale-conntrack-entry; `netsleuth fix bridge` "
            "fixes it); for the race add `options single-request-reopen` (glibc) to the "
            "namespaces' resolv.conf, or use a local caching resolver",
        ),
        Cause(
            "unknown",
            "no cause could be named",
            "No event class is significantly tied to the outages. The strongest raw "
            "correlations are listed; record longer or add targets to narrow it down.",
            "keep `netsleuth watch` running with the host as a control target; "
            "run `netsleuth doctor` for known pitfalls",
        ),
        Cause(
            "no-failures",
            "no failures recorded",
            "Nothing failed in the selected data.",
            "nothing to fix; record longer if failures are rare",
        ),
    )
}

_BRIDGE_KINDS = {
    str(EventKind.MAC_CHANGED),
    str(EventKind.PORT_LEFT),
    str(EventKind.INVARIANT_VIOLATED),
}

MIN_RELATIVE_RISK = 2.0
"""A cause is named only when onsets are at least this much likelier after its events ..."""

MAX_EXPOSED_SHARE = 0.5
"""... and its window covers less than this share of the time (else it says little)."""


def _strong(c: Correlation) -> bool:
    return (
        c.significant
        and c.relative_risk >= MIN_RELATIVE_RISK
        and c.exposed_share < MAX_EXPOSED_SHARE
    )


def confidence_label(p: float) -> str:
    """``high`` below 0.001, ``medium`` below 0.01, ``low`` below 0.05, else ``none``."""
    if p < 0.001:
        return "high"
    if p < 0.01:
        return "medium"
    if p < 0.05:
        return "low"
    return "none"


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _ms(x: float) -> str:
    return f"{x:.0f} ms" if x < 2000 else f"{x / 1000:.1f} s"


def _correlation_sentence(c: Correlation) -> str:
    return (
        f"{c.onsets_after} of {c.onsets} outage onsets ({_pct(c.onsets_after_share)}) came "
        f"≤ {_ms(c.window_s * 1000)} after: {c.label} (that window covers "
        f"{_pct(c.exposed_share)} of the time; relative risk {c.relative_risk:.0f}, "
        f"corrected p {p_phrase(c.p_adjusted)})"
    )


def _verdict(
    cause_id: str,
    *,
    bridge: str | None = None,
    confidence: str,
    p: float | None = None,
    evidence: Sequence[str] = (),
) -> Verdict:
    cause = CAUSES[cause_id]
    return Verdict(
        cause=cause_id,
        title=cause.title.format(bridge=bridge),
        bridge=bridge,
        confidence=confidence,
        p_value=p,
        explanation=cause.explanation,
        fix=cause.fix.format(bridge=bridge),
        evidence=tuple(evidence),
    )


def _bridge_evidence(
    c: Correlation,
    br: BridgeState,
    related: Sequence[Correlation],
    episodes: Sequence[EpisodeDetail],
) -> list[str]:
    ev = []
    if br.pinned is False:
        t = f" (addr_assign_type {br.addr_assign_type})" if br.addr_assign_type is not None else ""
        ev.append(f"bridge {br.name} has no fixed MAC{t}")
    elif br.pinned:
        ev.append(f"bridge {br.name} has a fixed MAC now, but not during the outages")
    ev.append(f"its MAC changed {br.mac_changes} times in the selected data")
    # the mechanism first: ports leaving, then the MAC changes, then stale entries
    order = [
        str(EventKind.PORT_LEFT),
        str(EventKind.MAC_CHANGED),
        str(EventKind.INVARIANT_VIOLATED),
    ]
    ranked = sorted({c, *related}, key=lambda r: (order.index(r.kind), r.p_adjusted))
    ev.extend(_correlation_sentence(r) for r in ranked)
    monitored = [e for e in episodes if e.gateway_stale is not None]
    longer = [e for e in monitored if e.episode.failed >= 2]
    if longer and len(longer) < len(monitored):
        monitored, what = longer, "outages of two or more failed probes"
    else:
        what = "outages"
    if monitored:
        stale = sum(1 for e in monitored if e.gateway_stale)
        ev.append(
            f"the gateway entry in the namespace was stale during {stale} of "
            f"{len(monitored)} {what}"
        )
    if br.arp_notify == 0:
        ev.append(f"net.ipv4.conf.{br.name}.arp_notify is 0, so nobody announces the change")
    return ev


def decide(
    correlations: Sequence[Correlation],
    bridges: Sequence[BridgeState],
    localisation: str,
    episodes: Sequence[EpisodeDetail],
    *,
    dns_only: bool,
) -> Verdict:
    """Name the cause (pure; see the module docstring for the rules)."""
    by_name = {b.name: b for b in bridges}
    significant = [c for c in correlations if _strong(c)]
    for c in significant:
        if c.kind in _BRIDGE_KINDS and c.bridge:
            br = by_name.get(c.bridge)
            if br is None or br.mac_changes == 0:
                continue  # tied to a bridge whose MAC never changed: not this cause
            related = [r for r in significant if r.bridge == c.bridge and r.kind in _BRIDGE_KINDS]
            return _verdict(
                "bridge-mac-flap",
                bridge=c.bridge,
                confidence=confidence_label(c.p_adjusted),
                p=c.p_adjusted,
                evidence=_bridge_evidence(c, br, related, episodes),
            )
        if c.kind == str(EventKind.FIREWALL_CHANGED):
            return _verdict(
                "nat-missing",
                confidence=confidence_label(c.p_adjusted),
                p=c.p_adjusted,
                evidence=[_correlation_sentence(c)],
            )
    strongest = [f"(not significant) {_correlation_sentence(c)}" for c in correlations[:3]]
    eps = [d.episode for d in episodes]
    if localisation in ("none", "no-data"):
        return _verdict("no-failures", confidence="none")
    if localisation == "everywhere":
        return _verdict(
            "upstream-dns" if dns_only else "upstream",
            confidence="medium" if len(eps) >= 5 else "low",
            evidence=[
                "every target failed, the host control too, at a comparable rate",
                "no event class is significantly tied to the outages",
            ],
        )
    singles = sum(1 for e in eps if e.failed == 1)
    if localisation == "namespaces" and dns_only and len(eps) >= 5 and singles >= 0.8 * len(eps):
        return _verdict(
            "conntrack-race",
            confidence="low",
            evidence=[
                f"{singles} of {len(eps)} outages were a single lost query",
                "the host control did not fail like the namespaces",
                "no event class is significantly tied to the outages",
            ],
        )
    return _verdict("unknown", confidence="none", evidence=strongest)
