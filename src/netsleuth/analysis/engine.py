"""From plain data to an :class:`Analysis` (:func:`analyze_data`, pure), and
the thin adapter that loads a selection of a store (:func:`analyze`)."""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from netsleuth.analysis.containers import container_lives
from netsleuth.analysis.control import CONTROL, MIN_ONSETS, data_notes, localise, target_stats
from netsleuth.analysis.correlate import (
    TIMESTAMP_TOLERANCE_NS,
    Correlation,
    Counter,
    EventClass,
    Onsets,
    classify,
    classify_all,
    correlate_onsets,
    points_counter,
)
from netsleuth.analysis.counters import counter_evidence
from netsleuth.analysis.drops import drop_record
from netsleuth.analysis.episodes import (
    ByTarget,
    Episode,
    by_target,
    group_episodes,
    target_index,
)
from netsleuth.analysis.evidence import SeriesStats
from netsleuth.analysis.result import (
    Analysis,
    BridgeState,
    EpisodeDetail,
    TargetStats,
    Timeline,
)
from netsleuth.analysis.scoring import FAMILIES, Evidence, score_all, verdict_of
from netsleuth.analysis.states import align, state_intervals
from netsleuth.analysis.unnated import unnated_stretches
from netsleuth.drops.outages import DropIndex
from netsleuth.model import Bridge, EventKind, InvariantDetail, NetEvent, Outcome, ProbeResult
from netsleuth.store import ProbeColumns, Series, Store
from netsleuth.store.notes import store_notes
from netsleuth.store.reading import ProbeGroups

__all__ = ["LOOKBACK_NS", "TIMELINE_BINS", "analyze", "analyze_data"]

LOOKBACK_NS = 2_000_000_000
"""How far before an onset events are listed with an episode (display only)."""

TIMELINE_BINS = 400
MAX_MARK_CLASSES = 6


def analyze(
    store: Store,
    runs: Sequence[int] | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> Analysis:
    """Analyse the probes and events of ``runs`` (all if None) between
    ``since_ns`` and ``until_ns`` (wall clock, ns)."""
    series = store.series()
    targets = sorted({s.target for s in series.values()})
    place = {t: i for i, t in enumerate(targets)}
    # grouped by target as the store reads them: never all attempts in time order
    groups = store.probe_groups(
        {sid: place[s.target] for sid, s in series.items()},
        len(targets),
        runs,
        since_ns,
        until_ns,
    )
    facts = store.facts(runs)
    touched = set(groups.runs)
    if since_ns is not None or until_ns is not None:
        # keep the facts of the runs the time selection touches
        facts = [f for f in facts if f["run"] in touched]
    run_ids = tuple(runs) if runs else tuple(sorted(touched))
    analysis = _analyze(
        _attempts_from(groups, targets),
        series,
        store.events(runs, since_ns, until_ns),
        facts,
        source=str(store.path),
        runs=run_ids,
        sourced=store.sourced_failures(runs, since_ns, until_ns),
    )
    # ranges kept as per-minute aggregates, and what retention removed
    bounded = store_notes(store, runs, since_ns, until_ns)
    return replace(analysis, notes=(*analysis.notes, *bounded)) if bounded else analysis


def _bridge_states(
    facts: Iterable[dict[str, Any]], events: Sequence[NetEvent]
) -> list[BridgeState]:
    latest: dict[str, Bridge] = {}
    for f in sorted(facts, key=lambda f: int(f.get("wall_ns", 0))):
        if f.get("kind") == "bridge" and isinstance(f.get("data"), dict):
            latest[str(f["subject"])] = Bridge.from_json(
                f["data"], name=str(f["subject"]), netns=str(f.get("netns", "host"))
            )
    names = set(latest)
    changes: dict[str, int] = defaultdict(int)
    for ev in events:
        if ev.kind in (EventKind.PORT_JOINED, EventKind.PORT_LEFT) and ev.subject:
            names.add(ev.subject)
    for ev in events:
        if ev.kind is EventKind.MAC_CHANGED:
            cls = classify(ev, names)
            if cls is not None and cls.bridge:
                names.add(cls.bridge)
                changes[cls.bridge] += 1
    states = []
    for name in sorted(names):
        b = latest.get(name)
        states.append(
            BridgeState(
                name=name,
                mac=b.mac if b else None,
                addr_assign_type=b.addr_assign_type if b else None,
                pinned=b.pinned if b else None,
                arp_notify=b.arp_notify if b else None,
                ports=b.ports if b else (),
                mac_changes=changes.get(name, 0),
            )
        )
    return states


def _bridge_ports(
    facts: Iterable[dict[str, Any]], events: Sequence[NetEvent]
) -> dict[tuple[str, str], str]:
    """(namespace, device) -> bridge, for every bridge recorded and every port
    it had in the record (from its facts and the port events)."""
    out: dict[tuple[str, str], str] = {}
    for f in facts:
        if f.get("kind") == "bridge" and isinstance(f.get("data"), dict):
            name, ns = str(f["subject"]), str(f.get("netns", "host"))
            out[(ns, name)] = name
            for port in f["data"].get("ports") or ():
                out[(ns, str(port))] = name
    for ev in events:
        if ev.kind in (EventKind.PORT_JOINED, EventKind.PORT_LEFT) and ev.subject:
            out.setdefault((ev.netns, ev.subject), ev.subject)
            if ev.ifname:
                out[(ev.netns, ev.ifname)] = ev.subject
    return out


def _control(facts: Iterable[dict[str, Any]], targets: Sequence[str]) -> str | None:
    """The control target: recorded by watch, else a target called ``host``."""
    recorded = [
        f["data"].get("control")
        for f in facts
        if f.get("kind") == "host" and isinstance(f.get("data"), dict)
    ]
    for label in reversed(recorded):
        if label in targets:
            return str(label)
    return CONTROL if CONTROL in targets else None


def series_stats(cols: ProbeColumns, series: dict[int, Series]) -> tuple[SeriesStats, ...]:
    """Attempts and failures (by outcome) of every probe stream (target,
    probe, server; the same stream in several runs counts once), sorted."""
    return _series_stats(*_pair_counts(cols.series, cols.outcome), series)


def _series_stats(
    pairs: Sequence[int], counts: Sequence[int], series: dict[int, Series]
) -> tuple[SeriesStats, ...]:
    ends: dict[tuple[str, str, str], dict[Outcome, int]] = defaultdict(lambda: defaultdict(int))
    for pair, n in zip(pairs, counts, strict=True):
        s = series.get(pair // 256)
        if s is not None and pair % 256 != Outcome.TARGET_GONE:  # gone: neither tried nor failed
            ends[(s.target, s.probe, s.server)][Outcome(pair % 256)] += n
    out = []
    for key in sorted(ends):
        outcomes = {o.label: n for o, n in ends[key].items() if o.failed}
        attempts = sum(ends[key].values())
        out.append(SeriesStats(*key, attempts, sum(outcomes.values()), outcomes))
    return tuple(out)


def _pair_counts(
    series: np.ndarray[Any, np.dtype[np.signedinteger[Any]]],
    outcome: np.ndarray[Any, np.dtype[np.int8]],
) -> tuple[list[int], list[int]]:
    """The (series * 256 + outcome) pairs present, ascending, and their counts.
    Nearly every attempt is OK: those are counted per series with a
    histogram, only the others are sorted."""
    if series.size == 0:
        return [], []
    if int(series.min()) < 0 or int(series.max()) >= 1 << 20:
        keys, n = np.unique(
            series.astype(np.int64) * 256 + outcome.astype(np.int64), return_counts=True
        )
        return keys.tolist(), n.tolist()
    rest = np.flatnonzero(outcome != Outcome.OK)
    keys, n = np.unique(
        series[rest].astype(np.int64) * 256 + outcome[rest].astype(np.int64), return_counts=True
    )
    return _merge_pairs(chunked_bincount(series), dict(zip(keys.tolist(), n.tolist(), strict=True)))


def _merge_pairs(
    total: np.ndarray[Any, np.dtype[np.int64]], not_ok: dict[int, int]
) -> tuple[list[int], list[int]]:
    """:func:`_pair_counts` from the attempts per series (``total``) and the
    counts of the pairs of other outcomes than OK."""
    keys = np.asarray(list(not_ok), dtype=np.int64)
    n = np.asarray(list(not_ok.values()), dtype=np.int64)
    others = np.bincount(keys // 256, weights=n, minlength=total.size).astype(np.int64)
    ok = total - others
    ids = np.flatnonzero(ok)
    merged = dict(zip((ids * 256 + Outcome.OK).tolist(), ok[ids].tolist(), strict=True))
    merged.update(not_ok)
    ordered = sorted(merged)
    return ordered, [merged[k] for k in ordered]


CHUNK_ROWS = 1 << 20
"""Rows per step of the passes over every attempt that need a temporary of
their own (so the temporary stays small and is reused)."""


def chunked_bincount(values: np.ndarray[Any, np.dtype[np.signedinteger[Any]]]) -> Any:
    """``np.bincount(values)`` of non-negative integers, a chunk at a time
    (bincount copies its input to 8-byte integers first: at tens of millions
    of attempts that copy costs more than the counting)."""
    size = int(values.max()) + 1 if values.size else 0
    total = np.zeros(size, dtype=np.int64)
    for k in range(0, values.size, CHUNK_ROWS):
        total += np.bincount(values[k : k + CHUNK_ROWS], minlength=size)
    return total


def _resolvers(facts: Iterable[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Target -> the nameservers of its resolv.conf, as last recorded."""
    out: dict[str, tuple[str, ...]] = {}
    for f in facts:
        data = f.get("data")
        if f.get("kind") == "resolv-conf" and isinstance(data, dict):
            out[str(f.get("netns"))] = tuple(str(s) for s in data.get("nameservers") or ())
    return out


def _netconf(facts: Iterable[dict[str, Any]], key: str) -> dict[str, int]:
    """One table (``mtu``, ``rp_filter``) of the host namespace's last ``netconf`` fact."""
    out: dict[str, int] = {}
    for f in facts:
        data = f.get("data")
        if f.get("kind") == "netconf" and isinstance(data, dict):
            table = data.get(key)
            if isinstance(table, dict):
                out = {str(k): int(v) for k, v in table.items() if isinstance(v, int)}
    return out


def _stale_intervals(events: Sequence[NetEvent]) -> dict[str, list[tuple[int, int]]]:
    """Per target, the intervals its gateway entry held a MAC no port of the
    bridge owns any more (open ones never end)."""
    out: dict[str, list[tuple[int, int]]] = defaultdict(list)
    open_since: dict[str, int] = {}
    for ev in events:
        if ev.kind is EventKind.INVARIANT_VIOLATED:
            out.setdefault(ev.netns, [])
            owned = isinstance(ev.detail, InvariantDetail) and ev.detail.owned_by_port
            if not owned:  # an old MAC still on a port works
                open_since.setdefault(ev.netns, ev.wall_ns)
        elif ev.kind is EventKind.INVARIANT_RECOVERED:
            start = open_since.pop(ev.netns, None)
            out.setdefault(ev.netns, [])
            if start is not None:
                out[ev.netns].append((start, ev.wall_ns))
    for target, start in open_since.items():
        out[target].append((start, 2**63 - 1))
    return out


def _episode_details(
    episodes: Sequence[Episode],
    events: Sequence[NetEvent],
    classes: Sequence[EventClass | None],
) -> list[EpisodeDetail]:
    labelled = [(ev.wall_ns, ev.netns, c) for ev, c in zip(events, classes, strict=True)]
    marks = [(t, ns, c.label) for t, ns, c in labelled if c is not None]
    times = np.asarray([m[0] for m in marks], dtype=np.int64)
    stale = _stale_intervals(events)
    monitored = bool(stale)
    by_target = {t: ([a for a, _ in iv], [b for _, b in iv]) for t, iv in stale.items()}
    details = []
    onsets = np.fromiter((ep.start_ns for ep in episodes), np.int64, len(episodes))
    los = np.searchsorted(times, onsets - LOOKBACK_NS, side="left").tolist()
    his = np.searchsorted(times, onsets + TIMESTAMP_TOLERANCE_NS, side="right").tolist()
    for ep, lo, hi in zip(episodes, los, his, strict=True):
        near = [
            ((ep.start_ns - t) / 1e6, label)
            for t, ns, label in marks[lo:hi]
            if ns in ("host", ep.target) or not ns.startswith(("netns:", "pid:", "container:"))
        ]
        near.sort(key=lambda x: x[0])
        gw: bool | None = None
        if monitored and ep.target != "host":
            # intervals of one target are disjoint and in order: check the last one
            # that began before the episode ended
            starts, ends = by_target.get(ep.target, ([], []))
            i = bisect_right(starts, ep.end_ns) - 1
            gw = i >= 0 and ends[i] >= ep.start_ns
        details.append(EpisodeDetail(ep, tuple(near[:5]), gw))
    drops = DropIndex(events)
    if drops:
        details = [
            replace(d, drops=drops.during(d.episode.target, *_span(d.episode))) for d in details
        ]
    return details


def _others_counter(
    wall: np.ndarray[Any, np.dtype[np.int64]],
    failed: np.ndarray[Any, np.dtype[np.int64]],
    recovered: np.ndarray[Any, np.dtype[np.int64]],
) -> Counter:
    """Count a target's attempts at risk that were not onsets (successes after
    a success) in intervals: all its attempts there, less the failures and
    the first successes after one (all three in time order)."""
    every, fails, firsts = points_counter(wall), points_counter(failed), points_counter(recovered)

    def count(
        lo: np.ndarray[Any, np.dtype[np.int64]], hi: np.ndarray[Any, np.dtype[np.int64]]
    ) -> int:
        return every(lo, hi) - fails(lo, hi) - firsts(lo, hi)

    return count


def _span(ep: Episode) -> tuple[int, int]:
    return ep.start_ns, ep.end_ns


def _timeline(
    att: _Attempts,
    grouped: ByTarget,
    *,
    events: Sequence[NetEvent],
    correlations: Sequence[Correlation],
    classes: Sequence[EventClass | None],
) -> Timeline:
    targets = grouped.targets
    if att.first_ns is None or att.last_ns is None:
        return Timeline(0, 1, tuple(targets), (), (), ())
    start = att.first_ns
    span = att.last_ns - start + 1
    bin_ns = max(1, -(-span // TIMELINE_BINS))
    nbins = -(-span // bin_ns)
    att_rows, fail_rows = [], []
    for t in range(len(targets)):
        rows = grouped.rows(t)
        b = (grouped.wall_ns[rows] - start) // bin_ns
        att_rows.append(tuple(np.bincount(b, minlength=nbins).tolist()))
        fail_rows.append(tuple(np.bincount(b[grouped.failed[rows]], minlength=nbins).tolist()))
    by_label: dict[str, list[int]] = defaultdict(list)
    for ev, c in zip(events, classes, strict=True):
        if c is not None:
            by_label[c.label].append(ev.wall_ns)
    ranked = [c.label for c in correlations if c.label in by_label]
    ranked += sorted(
        (lbl for lbl in by_label if lbl not in ranked), key=lambda k: -len(by_label[k])
    )
    marks = []
    for lbl in ranked[:MAX_MARK_CLASSES]:
        # one mark per time bin that saw events of the class, at the bin's centre
        bins = np.unique((np.asarray(by_label[lbl], dtype=np.int64) - start) // bin_ns)
        marks.append((lbl, tuple((start + bins * bin_ns + bin_ns // 2).tolist())))
    return Timeline(start, bin_ns, tuple(targets), tuple(att_rows), tuple(fail_rows), tuple(marks))


def analyze_data(
    cols: ProbeColumns,
    series: dict[int, Series],
    events: Sequence[NetEvent],
    facts: Sequence[dict[str, Any]] = (),
    *,
    source: str = "",
    runs: Sequence[int] = (),
    sourced: Sequence[ProbeResult] = (),
) -> Analysis:
    """The whole analysis on plain data (no I/O). ``sourced``: the failed
    attempts that recorded their source, to link kernel drops to."""
    return _analyze(
        _attempts_of(cols, series),
        series,
        events,
        facts,
        source=source,
        runs=runs,
        sourced=sourced,
    )


@dataclass(frozen=True, slots=True)
class _Attempts:
    """What the analysis needs of the attempts: grouped by target (those
    recorded while their target was gone left out, only their times kept),
    and the totals over every series."""

    grouped: ByTarget
    gone_ns: dict[str, np.ndarray[Any, np.dtype[np.int64]]]
    count: int
    failed: int
    first_ns: int | None
    last_ns: int | None
    pairs: tuple[list[int], list[int]]
    """:func:`_pair_counts` of the attempts."""


def _attempts_of(cols: ProbeColumns, series: dict[int, Series]) -> _Attempts:
    """:class:`_Attempts` from columns in time order."""
    all_targets, all_tidx = target_index(cols, series)
    gone_mask = cols.gone
    gone_rows = np.flatnonzero(gone_mask)
    gone_times = {
        name: cols.wall_ns[gone_rows[all_tidx[gone_rows] == t]]
        for t, name in enumerate(all_targets)
    }
    if gone_rows.size:
        cols = cols.take(~gone_mask)  # a target that is gone neither tried nor failed
        all_tidx = target_index(cols, series)[1]
    n = len(cols)
    return _Attempts(
        by_target(cols, series, tidx=all_tidx),
        gone_times,
        n,
        int(cols.failed.sum()),
        int(cols.wall_ns[0]) if n else None,
        int(cols.wall_ns[-1]) if n else None,
        _pair_counts(cols.series, cols.outcome),
    )


def _attempts_from(groups: ProbeGroups, targets: list[str]) -> _Attempts:
    """:class:`_Attempts` from the store's grouping by target."""
    return _Attempts(
        ByTarget(targets, groups.bounds, groups.wall_ns, groups.failed),
        {name: groups.gone_ns[t] for t, name in enumerate(targets)},
        groups.attempts,
        groups.failures,
        groups.first_ns,
        groups.last_ns,
        _merge_pairs(groups.series_attempts, groups.not_ok),
    )


def _analyze(
    att: _Attempts,
    series: dict[int, Series],
    events: Sequence[NetEvent],
    facts: Sequence[dict[str, Any]],
    *,
    source: str,
    runs: Sequence[int],
    sourced: Sequence[ProbeResult],
) -> Analysis:
    """:func:`analyze_data` once the attempts are grouped."""
    gone_times = att.gone_ns
    gone_counts = {name: int(times.size) for name, times in gone_times.items()}
    grouped = att.grouped
    targets = grouped.targets
    episodes = group_episodes(grouped)
    onsets: list[Onsets] = []
    sustained: list[Onsets] = []
    singles = 0
    counts: dict[str, tuple[int, int]] = {}
    intervals: list[float] = []
    records: dict[str, tuple[int, int]] = {}
    per_target: dict[
        str, tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.bool_]]]
    ] = {}
    for t, name in enumerate(targets):
        rows = grouped.rows(t)
        wall = grouped.wall_ns[rows]
        if wall.size == 0:
            continue
        f = grouped.failed[rows]
        failures = np.flatnonzero(f)
        counts[name] = (int(wall.size), int(failures.size))
        # a target's record ends with its last attempt, or when it was found gone after it
        gone_at = gone_times.get(name, np.empty(0, dtype=np.int64))
        later = gone_at[gone_at > wall[-1]]
        records[name] = (int(wall[0]), int(later[0]) if later.size else int(wall[-1]))
        per_target[name] = (wall, f)
        # at risk: the first attempt and those after a success; an onset: a
        # failure at risk; single: an onset followed by a success (or nothing)
        after = failures + 1
        after = after[after < wall.size]
        prev_failed = np.zeros(failures.size, dtype=bool)
        if failures.size:
            prev_failed[1:] = failures[1:] == failures[:-1] + 1
        onset_pos = failures[~prev_failed]
        next_failed = np.zeros(onset_pos.size, dtype=bool)
        if failures.size:
            nxt = onset_pos + 1
            inside = nxt < wall.size
            next_failed[inside] = f[nxt[inside]]
        singles += int((~next_failed).sum())
        # the others at risk: successes whose previous attempt succeeded
        recovered = after[~f[after]]
        others = int(wall.size - failures.size - recovered.size)
        count = _others_counter(wall, wall[failures], wall[recovered])
        # both views: every onset, and outages only (single lost probes left out)
        onsets.append(Onsets(name, wall[onset_pos], others, count))
        sustained.append(Onsets(name, wall[onset_pos[next_failed]], others, count))
        if wall.size > 1:
            intervals.append(float(np.median(np.diff(wall))))
    probe_interval = int(np.median(intervals)) if intervals else 0
    first, last = att.first_ns, att.last_ns
    span = last - first if first is not None and last is not None else 0
    bridges = _bridge_states(facts, events)
    bridge_names = [b.name for b in bridges]
    # Single lost probes (one failed attempt between successes) are a different
    # phenomenon from outages; when there are enough outages of two or more
    # failed probes, only those are correlated. The choice depends on counts of
    # failures only, never on events, so it does not bias the tests.
    outages = len(episodes) - singles
    use_sustained = singles > 0 and outages >= MIN_ONSETS
    classes = classify_all(events, bridge_names)  # once for every step below
    correlations = correlate_onsets(
        sustained if use_sustained else onsets,
        events,
        probe_interval_ns=probe_interval,
        span_ns=span,
        bridges=bridge_names,
        classes=classes,
    )
    stats: list[TargetStats] = target_stats(counts, episodes)
    if any(gone_counts.values()) and probe_interval:
        stats = [
            replace(t, gone_s=gone_counts.get(t.target, 0) * probe_interval / 1e9) for t in stats
        ]
    control = _control(facts, targets)
    where, where_text = localise(stats, control)
    details = _episode_details(episodes, events, classes)
    dns_only = all(s.probe.startswith(("dns:", "resolve:", "passive:dns")) for s in series.values())
    state_ivs = state_intervals(events)
    states = align(
        FAMILIES,
        state_ivs,
        episodes,
        probe_interval_ns=probe_interval,
        records=records,
        attempts=per_target,
    )
    evidence = Evidence(
        episodes=tuple(details),
        correlations=tuple(correlations),
        states=states,
        bridges=tuple(bridges),
        targets=tuple(stats),
        localisation=where,
        control=control,
        dns_only=dns_only,
        counters=counter_evidence(events, episodes, span),
        series=_series_stats(*att.pairs, series),
        resolvers=_resolvers(facts),
        rp_filter=_netconf(facts, "rp_filter"),
        mtu=_netconf(facts, "mtu"),
        span_ns=span,
        drops=drop_record(
            events, episodes, span, failed=sourced, ports=_bridge_ports(facts, events)
        ),
        unnated=unnated_stretches(events, att.last_ns or 0),
    )
    causes = score_all(evidence)
    verdict = verdict_of(causes, evidence)
    tied = any(c.significant for c in correlations) or any(c.named for c in causes)
    notes = [where_text, *data_notes(stats, len(episodes), tied=tied)]
    if use_sustained:
        notes.append(
            f"{singles} single lost probes count in the failure rates but are not correlated "
            f"with events: the correlations use the {outages} outages of two or more failed "
            "probes."
        )
    if episodes and not tied:
        notes.append("No event class is significantly tied to the outages.")
    gone = [f"{t.target} {t.gone_s:.1f} s" for t in stats if t.gone_s]
    if gone:
        notes.append("Targets that were gone (not counted as failures): " + ", ".join(gone) + ".")
    return Analysis(
        source=source,
        runs=tuple(runs),
        start_ns=att.first_ns,
        end_ns=att.last_ns,
        probes=att.count,
        failed=att.failed,
        probe_interval_s=probe_interval / 1e9 if probe_interval else None,
        targets=tuple(stats),
        episodes=tuple(details),
        correlations=tuple(correlations),
        bridges=tuple(bridges),
        localisation=where,
        notes=tuple(notes),
        verdict=verdict,
        timeline=_timeline(att, grouped, events=events, correlations=correlations, classes=classes),
        causes=tuple(causes),
        states=tuple(states.values()),
        control=control,
        counters=tuple(evidence.counters.values()),
        drops=tuple(evidence.drops.reasons.values()),
        containers=container_lives(facts),
        series=evidence.series,
    )
