"""The control group: failure rate per target, and where that puts the fault.

A host control that does not fail while namespaces do localises the fault
between the namespaces and the host (bridge, veth, NAT); failures in every
target, the host included, point upstream. Rates come with 95 % Wilson
intervals; the host is "lower" when a one-sided Fisher test says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from netsleuth.analysis.correlate import ALPHA
from netsleuth.analysis.episodes import Episode
from netsleuth.analysis.result import TargetStats
from netsleuth.analysis.stats import (
    fisher_greater,
    probes_to_see_one,
    rate_upper_bound,
    wilson,
)

__all__ = ["CONTROL", "MIN_ONSETS", "data_notes", "localise", "target_stats"]

CONTROL = "host"
"""The target name of the host control."""

MIN_ONSETS = 5
"""Fewer outages than this cannot be tied to events with useful confidence."""


def target_stats(
    counts: dict[str, tuple[int, int]], episodes: Sequence[Episode]
) -> list[TargetStats]:
    """``counts`` maps target -> (attempts, failed)."""
    result = []
    for target in sorted(counts):
        attempts, failed = counts[target]
        own = [e for e in episodes if e.target == target]
        low, high = wilson(failed, attempts)
        result.append(
            TargetStats(
                target=target,
                attempts=attempts,
                failed=failed,
                rate=failed / attempts if attempts else 0.0,
                ci_low=low,
                ci_high=high,
                episodes=len(own),
                longest_s=max((e.duration_s for e in own), default=0.0),
            )
        )
    return result


def localise(stats: Sequence[TargetStats], control: str | None = CONTROL) -> tuple[str, str]:
    """(id, sentence): ``none``, ``namespaces``, ``everywhere``, ``some-targets``,
    ``all-targets`` or ``single-target`` (no host control to tell), or ``no-data``.
    ``control`` is the target probing from the namespace that holds the bridges."""
    if not stats or sum(s.attempts for s in stats) == 0:
        return "no-data", "No probe attempts in the selected data."
    if sum(s.failed for s in stats) == 0:
        return "none", "No target failed."
    host = next((s for s in stats if s.target == control), None)
    others = [s for s in stats if s.target != control]
    failing = [s for s in others if s.failed]
    if host is not None and others:
        o_att = sum(s.attempts for s in others)
        o_fail = sum(s.failed for s in others)
        p = fisher_greater(o_fail, o_att - o_fail, host.failed, host.attempts - host.failed)
        names = ", ".join(s.target for s in failing)
        if host.failed == 0 and p < ALPHA:
            return "namespaces", (
                f"The host control did not fail ({host.attempts} probes) while {names} did: "
                "the fault lies between those namespaces and the host (bridge, veth, NAT)."
            )
        if p < ALPHA:
            return "namespaces", (
                f"The host control failed far less often ({host.failed}/{host.attempts}) "
                f"than {names}: the fault lies mostly between those namespaces and the host."
            )
        if host.failed and all(s.failed for s in others):
            return "everywhere", (
                f"Every target failed, the host control too ({host.failed}/"
                f"{host.attempts}) at a comparable rate: the fault lies upstream of the host "
                "(the server or the path to it)."
            )
        return "some-targets", (
            "The host control and the namespaces do not differ significantly; "
            "more data is needed to localise the fault."
        )
    if not others:
        return "single-target", (
            "Only the host was probed; add namespaces or containers as targets to compare."
        )
    if len(others) == 1 and host is None:
        return "single-target", (
            f"Only {others[0].target} was probed; add the host as a control target to tell a "
            "fault on the way to the host from one beyond it."
        )
    if len(failing) == len(others):
        return "all-targets", (
            "Every target failed; add the host as a control target "
            "to tell an upstream fault from one on the host."
        )
    return "some-targets", (
        "Only some targets failed; add the host as a control target to localise the fault."
    )


def data_notes(stats: Sequence[TargetStats], onsets: int, *, tied: bool = False) -> list[str]:
    """Plain sentences about too little data (``tied``: a correlation was
    significant all the same, so few outages are not worth a warning)."""
    attempts = sum(s.attempts for s in stats)
    failed = sum(s.failed for s in stats)
    notes = []
    if attempts and failed == 0:
        bound = rate_upper_bound(0, attempts)
        notes.append(
            f"{attempts} probes, 0 failures: the failure rate is below {bound:.2g} with 95 % "
            f"confidence; at this rate you need ~{probes_to_see_one(bound)} probes to see one."
        )
    elif 0 < onsets < MIN_ONSETS and not tied:
        per = attempts / onsets
        more = max(0, round(per * MIN_ONSETS) - attempts)
        notes.append(
            f"Only {onsets} outage{'s' if onsets > 1 else ''} in {attempts} probes: too few to "
            f"tie them to events with confidence; at one per {per:.0f} probes you need "
            f"~{more} more probes to see {MIN_ONSETS}."
        )
    return notes
