"""Causes of load: queries fail because of how many there are, not because a
path is broken.

``upstream-rate-limit``: a resolver (or a link-local limit in front of it)
admits only so many packets per second from the host; when the host's DNS
query load peaks — builds starting, ``ndots:5`` turning each lookup into
five queries — it drops the excess from every client alike. ``watch``
samples the packets the host sends and receives on its egress links every
second (``link.NAME.tx_packets``/``rx_packets`` in the host namespace's
``counters`` events): that is the load. :func:`load_test` splits the record
into *busy* seconds (at least :data:`HIGH_LOAD` times the run's own quiet
level, its :data:`QUIET_QUANTILE` quantile — never an absolute number) and
quiet ones, and asks with Fisher's exact test whether outages begin in busy
seconds more often than in quiet ones. Only outages no recorded state
explains count. The cause is named when that is so at p < ALPHA, the busy
seconds hit the host control too (with no control: most targets; a limit
throttles everyone), answers kept coming while busy (a limit passes its rate; a dead
resolver passes nothing), and no local drop counter met the outages (then
the loss is on this host: ``resolver-overload``, a full conntrack table).

``resolver-overload``: a resolver on this host (a node-local cache,
libvirt's dnsmasq) cannot keep up and its socket's receive buffer overflows:
the kernel drops the queries it cannot queue and counts them in ``Udp
RcvbufErrors`` (drop reason ``SOCKET_RCVBUFF``) of the resolver's
namespace. Scored by :func:`~netsleuth.analysis.scorers.counter_score` on
that counter.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from netsleuth.analysis.correlate import ALPHA
from netsleuth.analysis.counters import CounterEvidence, CounterRise
from netsleuth.analysis.episodes import Episode
from netsleuth.analysis.evidence import CauseScore, Evidence, confidence_label
from netsleuth.analysis.exact import fisher_greater_p
from netsleuth.analysis.scorers import counter_score, rose, with_drops
from netsleuth.analysis.stats import p_phrase

__all__ = [
    "HIGH_LOAD",
    "LOCAL_DROPS",
    "QUIET_QUANTILE",
    "SCORERS",
    "LoadSecond",
    "LoadTest",
    "load_seconds",
    "load_test",
    "score_resolver_overload",
    "score_upstream_rate_limit",
]

TX = "link.tx_packets"
RX = "link.rx_packets"

QUIET_QUANTILE = 0.25
"""The run's quiet packet rate: this quantile of its seconds."""

HIGH_LOAD = 2.0
"""A second is busy when the host sent at least this many times its quiet rate."""

MIN_SECONDS = 3
"""Busy seconds, and quiet ones, needed before the test says anything."""

MIN_RELATIVE_RISK = 2.0
"""Outages must begin at least this much more often in busy seconds."""

RCVBUF = "snmp.Udp.RcvbufErrors"

LOCAL_DROPS = (
    RCVBUF,
    "snmp.Udp.InErrors",
    "snmp.Udp.SndbufErrors",
    "ct.insert_failed",
    "ct.drop",
    "ct.early_drop",
    "snmp.Ip.OutDiscards",
    "snmp.Ip.InDiscards",
    "link.tx_dropped",
    "link.rx_dropped",
    "arp.table_fulls",
    "arp.unresolved_discards",
)
"""Counters of packets this host dropped itself: when one of them met the
outages, the loss is local, not a limit beyond the host."""


@dataclass(frozen=True, slots=True)
class LoadSecond:
    """One counter sample of the host's egress links (about a second)."""

    start_ns: int
    end_ns: int
    sent: float
    """Packets per second sent out of the egress links."""
    received: float
    """Packets per second received on them (0 when none were recorded)."""


def _per_sample(rises: Sequence[CounterRise]) -> dict[tuple[str, int], tuple[int, int]]:
    """(netns, sample end) -> (sample start, packets summed over links)."""
    out: dict[tuple[str, int], tuple[int, int]] = {}
    for r in rises:
        start, total = out.get((r.netns, r.end_ns), (r.start_ns, 0))
        out[(r.netns, r.end_ns)] = (start, total + r.delta)
    return out


def load_seconds(counters: Mapping[str, CounterEvidence]) -> tuple[list[LoadSecond], list[str]]:
    """The samples of the host's egress packet counters, in time order, and
    the links they count. The namespace that sent the most is the host (the
    sampler keeps these counters only for the host's egress links)."""
    tx = counters.get(TX)
    if tx is None or not tx.rises:
        return [], []
    sent = _per_sample(tx.rises)
    totals: dict[str, int] = defaultdict(int)
    for (ns, _), (_, packets) in sent.items():
        totals[ns] += packets
    host = max(totals, key=lambda ns: totals[ns])
    rx = counters.get(RX)
    received = _per_sample(rx.rises) if rx is not None else {}
    out = []
    for (ns, end), (start, packets) in sorted(sent.items(), key=lambda kv: kv[0][1]):
        if ns != host:
            continue
        seconds = max(end - start, 1) / 1e9
        got = received.get((ns, end), (start, 0))[1]
        out.append(LoadSecond(start, end, packets / seconds, got / seconds))
    links = sorted({r.counter.split(".")[1] for r in tx.rises if r.netns == host})
    return out, links


@dataclass(frozen=True, slots=True)
class OnsetTable:
    """Seconds with and without a condition (busy, a counter rising) against
    whether an outage began in them, and Fisher's exact test of the two."""

    flagged: int
    other: int
    flagged_onsets: int
    """Flagged seconds in which an outage began ..."""
    other_onsets: int
    """... and other seconds in which one did."""
    p_value: float
    """One-sided: onsets likelier in flagged seconds."""

    @property
    def relative_risk(self) -> float:
        flagged = self.flagged_onsets / self.flagged if self.flagged else 0.0
        other = self.other_onsets / self.other if self.other else 0.0
        if other == 0:
            return float("inf") if flagged > 0 else 0.0
        return flagged / other

    def strong(self) -> bool:
        """p < ALPHA, at least :data:`MIN_SECONDS` flagged seconds with an
        onset, and onsets :data:`MIN_RELATIVE_RISK` times likelier in them."""
        return (
            self.p_value < ALPHA
            and self.flagged_onsets >= MIN_SECONDS
            and self.relative_risk >= MIN_RELATIVE_RISK
        )


def onset_table(flag: Sequence[bool], onset: Sequence[bool]) -> OnsetTable:
    """The 2 x 2 table of flagged seconds against onsets, and its test (pure)."""
    f, o = np.asarray(flag, dtype=bool), np.asarray(onset, dtype=bool)
    fw, ow = int((f & o).sum()), int((~f & o).sum())
    nf, no = int(f.sum()), int((~f).sum())
    p = fisher_greater_p(((fw, nf - fw), (ow, no - ow)))
    return OnsetTable(nf, no, fw, ow, p)


def _second_of(seconds: Sequence[LoadSecond], ends: Sequence[int], t: int) -> int | None:
    """Index of the sample whose window ``(start, end]`` holds ``t``."""
    i = bisect_left(ends, t)
    if i < len(seconds) and seconds[i].start_ns < t <= seconds[i].end_ns:
        return i
    return None


def onset_seconds(
    seconds: Sequence[LoadSecond], episodes: Sequence[Episode]
) -> tuple[list[bool], list[set[str]]]:
    """For each sample: did an outage begin in it, and of which targets (pure)."""
    ends = [s.end_ns for s in seconds]
    onset = [False] * len(seconds)
    targets: list[set[str]] = [set() for _ in seconds]
    for ep in episodes:
        i = _second_of(seconds, ends, ep.start_ns)
        if i is not None:
            onset[i] = True
            targets[i].add(ep.target)
    return onset, targets


def _overlapping(seconds: Sequence[LoadSecond], ends: Sequence[int], a: int, b: int) -> range:
    """Indices of the samples that may overlap ``(a, b]`` (samples are in time order)."""
    lo = bisect_left(ends, a)
    hi = lo
    while hi < len(seconds) and seconds[hi].start_ns < b:
        hi += 1
    return range(lo, hi)


def rose_in(seconds: Sequence[LoadSecond], rises: Sequence[CounterRise]) -> list[bool]:
    """For each sample: did one of ``rises`` cover most of it (samples of other
    namespaces are taken at nearly the same time, not exactly) (pure)."""
    ends = [s.end_ns for s in seconds]
    out = [False] * len(seconds)
    for r in rises:
        for i in _overlapping(seconds, ends, r.start_ns, r.end_ns):
            s = seconds[i]
            overlap = min(s.end_ns, r.end_ns) - max(s.start_ns, r.start_ns)
            if overlap > max(s.end_ns - s.start_ns, 1) / 2:
                out[i] = True
    return out


def _failed_per_second(seconds: Sequence[LoadSecond], episodes: Sequence[Episode]) -> list[float]:
    """Each outage's failed probes spread over its span, per second of each sample."""
    ends = [s.end_ns for s in seconds]
    out = [0.0] * len(seconds)
    for ep in episodes:
        span = ep.end_ns - ep.start_ns
        if span <= 0:
            i = _second_of(seconds, ends, ep.start_ns)
            if i is not None:
                out[i] += ep.failed
            continue
        for i in _overlapping(seconds, ends, ep.start_ns, ep.end_ns):
            s = seconds[i]
            overlap = min(s.end_ns, ep.end_ns) - max(s.start_ns, ep.start_ns)
            if overlap > 0:
                out[i] += ep.failed * overlap / span
    return [f / (max(s.end_ns - s.start_ns, 1) / 1e9) for f, s in zip(out, seconds, strict=True)]


def _median(values: npt.NDArray[np.float64]) -> float:
    return float(np.median(values)) if values.size else 0.0


@dataclass(frozen=True, slots=True)
class LoadTest:
    """Outage onsets in busy and quiet seconds of the host's packet load."""

    quiet_rate: float
    """The run's quiet level (packets/s sent)."""
    table: OnsetTable
    """Busy seconds are the flagged ones."""
    busy: tuple[bool, ...]
    onset: tuple[bool, ...]
    sent_failing: float
    """Median packets/s sent in the seconds in which an outage began ..."""
    sent_fine: float
    """... and in the others."""
    received_busy: float
    """Median packets/s received in busy seconds ..."""
    received_quiet: float
    """... and in quiet ones."""
    failed_busy: float
    """Failed probes per second in busy seconds ..."""
    failed_quiet: float
    """... and in quiet ones."""
    busy_targets: tuple[str, ...]
    """Targets with an outage that began in a busy second."""


def load_test(seconds: Sequence[LoadSecond], episodes: Sequence[Episode]) -> LoadTest | None:
    """Busy against quiet seconds (see the module doc); None when the load
    never rose to :data:`HIGH_LOAD` times its quiet level in at least
    :data:`MIN_SECONDS` seconds, or there were too few quiet ones (pure)."""
    if len(seconds) < 2 * MIN_SECONDS:
        return None
    sent = np.asarray([s.sent for s in seconds], dtype=np.float64)
    quiet_rate = float(np.quantile(sent, QUIET_QUANTILE))
    busy = sent >= HIGH_LOAD * max(quiet_rate, 1.0)
    if int(busy.sum()) < MIN_SECONDS or int((~busy).sum()) < MIN_SECONDS:
        return None
    onset_list, targets = onset_seconds(seconds, episodes)
    onset = np.asarray(onset_list, dtype=bool)
    failed = np.asarray(_failed_per_second(seconds, episodes), dtype=np.float64)
    received = np.asarray([s.received for s in seconds], dtype=np.float64)
    return LoadTest(
        quiet_rate=quiet_rate,
        table=onset_table(busy.tolist(), onset_list),
        busy=tuple(busy.tolist()),
        onset=tuple(onset_list),
        sent_failing=_median(sent[onset]),
        sent_fine=_median(sent[~onset]),
        received_busy=_median(received[busy]),
        received_quiet=_median(received[~busy]),
        failed_busy=float(failed[busy].mean()),
        failed_quiet=float(failed[~busy].mean()),
        busy_targets=tuple(sorted({n for t, b in zip(targets, busy, strict=True) if b for n in t})),
    )


def _explained(ev: Evidence) -> set[tuple[str, int]]:
    return {key for se in ev.states.values() for key in se.explained}


def _unexplained(ev: Evidence) -> list[Episode]:
    """The outages no recorded state explains (a NAT rule gone, a link down)."""
    explained = _explained(ev)
    return [
        d.episode for d in ev.episodes if (d.episode.target, d.episode.start_ns) not in explained
    ]


def _local_drop(
    ev: Evidence, seconds: Sequence[LoadSecond], busy_onset: Sequence[bool]
) -> tuple[CounterEvidence, int, int] | None:
    """A local drop counter that rose in at least half (and :data:`MIN_SECONDS`)
    of the busy seconds in which outages began: (its evidence, in how many,
    of how many)."""
    wanted = sum(busy_onset)
    if not wanted:
        return None
    for ce in rose(ev, LOCAL_DROPS):
        flagged = rose_in(seconds, ce.rises)
        hit = sum(1 for f, b in zip(flagged, busy_onset, strict=True) if f and b)
        if hit >= min(MIN_SECONDS, wanted) and 2 * hit >= wanted:
            return ce, hit, wanted
    return None


def _rate(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def _share(failed_per_s: float, attempts_per_s: float) -> str:
    if attempts_per_s <= 0:
        return ""
    pct = 100 * min(1.0, failed_per_s / attempts_per_s)
    return f"{pct:.0f} %" if pct >= 10 else f"{pct:.1f} %"


def _breadth(ev: Evidence, t: LoadTest) -> tuple[bool, str]:
    """Did the busy seconds hit the host control, or most targets?"""
    names = [s.target for s in ev.targets]
    hit = set(t.busy_targets) & set(names)
    others = [n for n in names if n != ev.control]
    hit_others = sum(1 for n in others if n in hit)
    most = bool(names) and 2 * len(hit) > len(names)
    text = f"{hit_others} of {len(others)} other targets" if others else "no other target"
    if ev.control is not None and ev.control in hit:
        return True, f"the host control ({ev.control}) failed in busy seconds too, and {text}"
    if ev.control is not None:
        # the host's own queries leave by the same uplink to the same resolver:
        # a limit on the host's total rate throttles them too
        return False, f"the host control ({ev.control}) did not fail in busy seconds; {text} did"
    return most, f"{len(hit)} of {len(names)} targets failed in busy seconds"


def score_upstream_rate_limit(ev: Evidence) -> CauseScore:
    cause = "upstream-rate-limit"
    seconds, links = load_seconds(ev.counters)
    if not seconds:
        return CauseScore(
            cause, False, "none", None, evidence_against=("no packet counts of the host's uplink",)
        )
    t = load_test(seconds, _unexplained(ev))
    where = " and ".join(links)
    if t is None:
        quiet = float(np.quantile([s.sent for s in seconds], QUIET_QUANTILE))
        return CauseScore(
            cause,
            False,
            "none",
            None,
            evidence_against=(
                f"the packet rate out of {where} reached {HIGH_LOAD:g} times its quiet level "
                f"({_rate(quiet)} packets/s) in fewer than {MIN_SECONDS} seconds",
            ),
        )
    tab = t.table
    span_s = (seconds[-1].end_ns - seconds[0].start_ns) / 1e9
    attempts = sum(s.attempts for s in ev.targets) / span_s if span_s > 0 else 0.0
    pro = [
        f"outages began in {tab.flagged_onsets} of {tab.flagged} busy seconds (the host sent at "
        f"least {HIGH_LOAD:g} times its quiet {_rate(t.quiet_rate)} packets/s out of {where}) "
        f"but in {tab.other_onsets} of {tab.other} quiet ones (Fisher's exact test, p "
        f"{p_phrase(tab.p_value)})",
        f"the host sent a median {_rate(t.sent_failing)} packets/s in the seconds in which an "
        f"outage began, {_rate(t.sent_fine)} in the others",
    ]
    busy_share, quiet_share = _share(t.failed_busy, attempts), _share(t.failed_quiet, attempts)
    if busy_share:
        pro.append(
            f"about {busy_share} of the probes failed in busy seconds, {quiet_share} in quiet "
            f"ones ({_rate(t.failed_busy)} against {_rate(t.failed_quiet)} failed probes/s)"
        )
    against: list[str] = []
    broad, breadth = _breadth(ev, t)
    (pro if broad else against).append(breadth)
    answered = t.received_busy >= t.received_quiet
    if answered:
        pro.append(
            f"answers kept coming while busy (a median {_rate(t.received_busy)} packets/s "
            f"received, {_rate(t.received_quiet)} when quiet): a share got through, as under "
            "a rate limit"
        )
    else:
        against.append(
            f"the host received less while busy (a median {_rate(t.received_busy)} packets/s, "
            f"{_rate(t.received_quiet)} when quiet): nothing got through, unlike under a limit"
        )
    busy_onset = [b and o for b, o in zip(t.busy, t.onset, strict=True)]
    local = _local_drop(ev, seconds, busy_onset)
    if local is not None:
        ce, hit, wanted = local
        against.append(
            f"{ce.family} rose in {hit} of the {wanted} busy seconds in which outages began "
            f"({', '.join(ce.where[:3])}): this host dropped the queries itself"
        )
    if not tab.strong():
        against.append(
            f"outages were not significantly likelier in busy seconds (p {p_phrase(tab.p_value)}, "
            f"relative risk {tab.relative_risk:.1f}, {tab.flagged_onsets} busy seconds with an "
            "onset)"
        )
    named = tab.strong() and broad and answered and local is None
    return CauseScore(
        cause,
        named,
        confidence_label(tab.p_value) if named else "none",
        tab.p_value,
        evidence_for=tuple(pro),
        evidence_against=tuple(against),
        fields={"link": links[0]} if links else {},
    )


RCVBUF_DROPS = ("SOCKET_RCVBUFF",)
"""The drop reason of a datagram a full socket receive buffer refused."""


def score_resolver_overload(ev: Evidence) -> CauseScore:
    """The counter tests (:func:`_rcvbuf_score`) with the kernel's
    SOCKET_RCVBUFF drops as evidence; those name the cause by themselves
    when the counter was not recorded."""
    return with_drops(_rcvbuf_score(ev), ev, RCVBUF_DROPS)


def _rcvbuf_score(ev: Evidence) -> CauseScore:
    """The counter rule on ``Udp RcvbufErrors``; where the host's load samples
    give a grid of seconds, also Fisher's exact test of the seconds in which
    it rose against outage onsets (the counter rule alone needs a long record:
    each rise covers a whole sample). Two tests: the smaller p, doubled."""
    cause = "resolver-overload"
    found = ev.counters.get(RCVBUF)
    extra = []
    errors = ev.counters.get("snmp.Udp.InErrors")
    if found is not None and errors is not None:
        extra.append(f"snmp.Udp.InErrors rose by {errors.total} (it counts these drops too)")
    base = counter_score(cause, ev, (RCVBUF,), extra_for=extra)
    if found is None or not found.rises:
        return base
    seconds, _ = load_seconds(ev.counters)
    table = None
    if len(seconds) >= 2 * MIN_SECONDS:
        onset, _ = onset_seconds(seconds, _unexplained(ev))
        table = onset_table(rose_in(seconds, found.rises), onset)
    pro = list(base.evidence_for)
    peak = max(found.rises, key=lambda r: r.delta)
    pro.append(
        f"up to {peak.delta} datagrams dropped in one sample ({peak.netns}): a socket's receive "
        "buffer was full"
    )
    counter_named = base.named
    p_counter = base.p_value if base.p_value is not None else 1.0
    if table is None:
        return replace(base, evidence_for=tuple(pro))
    pro.insert(
        1,
        f"outages began in {table.flagged_onsets} of the {table.flagged} seconds in which it "
        f"rose, in {table.other_onsets} of the {table.other} others (Fisher's exact test, p "
        f"{p_phrase(table.p_value)})",
    )
    p = min(1.0, 2 * min(p_counter, table.p_value))
    named = (counter_named or table.strong()) and p < ALPHA
    against = () if named else (*base.evidence_against, "the outages did not follow its rises")
    return replace(
        base,
        named=named,
        confidence=confidence_label(p) if named else "none",
        p_value=p,
        evidence_for=tuple(pro),
        evidence_against=against,
    )


SCORERS = {
    "upstream-rate-limit": score_upstream_rate_limit,
    "resolver-overload": score_resolver_overload,
}
"""Cause id -> scorer (taken in by :data:`netsleuth.analysis.scoring.SCORERS`)."""
