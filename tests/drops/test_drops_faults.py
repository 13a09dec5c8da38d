"""The issue's lab test per fault that drops packets: each lab runs the real
CLI (namespaces, bridge, dnsmasq, nftables, bpftrace on ``skb:kfree_skb``),
then ``report --json`` must show the kernel's drop reason in the named
cause's evidence, with the failed probes' packets matched to the drops:

- ``forward-blocked``: ``NETFILTER_DROP`` in the host namespace (the forward
  chain's drop policy), on the bridge;
- ``rp-filter``: ``IP_RPFILTER`` of the answers, on the second uplink;
- ``resolver-overload``: ``SOCKET_RCVBUFF`` in the host namespace (the local
  forwarder's full socket);
- ``nat-missing``: nothing. Untranslated queries leave the host and their
  answers die in the upstream namespace, which watch does not trace; no
  failed query is dropped anywhere watch looks, so none at the bridge, and
  the report says so for the cause.

Each store is also analysed again without its states, firewall events and
counters (what a host without those sources would have recorded): the drops
alone must then name forward-blocked, rp-filter and resolver-overload. The
four labs run at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netsleuth.analysis.engine import analyze_data
from netsleuth.drops import availability
from netsleuth.model import EventKind
from netsleuth.store import Store
from netsleuth_testing.labruns import book, farm_runs

pytestmark = pytest.mark.lab

# fault -> (lab run arguments, the reason expected, where: (netns, location))
CASES: dict[str, tuple[list[str], str | None, tuple[str, str] | None]] = {
    "forward-blocked": (["--duration", "23"], "NETFILTER_DROP", ("host", "nft_do_chain")),
    "rp-filter": (["--duration", "20"], "IP_RPFILTER", ("host", "ip_rcv_finish_core")),
    "resolver-overload": (
        ["--duration", "20"],
        "SOCKET_RCVBUFF",
        ("host", "udp_queue_rcv_one_skb"),
    ),
    "nat-missing": (["--duration", "20"], None, None),
}
book("drops", {f: ["--fault", f, "--seed", "7", *args] for f, (args, _, _) in CASES.items()})
# what a host without state, firewall and counter sources records
WITHOUT = {
    EventKind.STATE_ENTERED,
    EventKind.STATE_LEFT,
    EventKind.FIREWALL_CHANGED,
    EventKind.COUNTERS,
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], Path]]:
    """fault -> (report --json of its store, the store)."""
    found = availability()
    if found.mechanism != "bpftrace":
        pytest.skip(f"these labs need bpftrace for drop headers: {found.summary}")
    done = farm_runs("drops", tmp_path_factory.mktemp("farm"))
    return {fault: (run.report, run.store) for fault, run in done.items()}


def _cause(report: dict[str, Any], cause: str) -> dict[str, Any]:
    return next(c for c in report["causes"] if c["cause"] == cause)


@pytest.mark.parametrize("fault", [f for f, (_, r, _) in CASES.items() if r])
def test_the_faults_drop_reason_is_evidence_of_the_named_cause(
    runs: dict[str, tuple[dict[str, Any], Path]], fault: str
) -> None:
    report, _ = runs[fault]
    _, reason, (netns, location) = CASES[fault]  # type: ignore[misc]
    assert report["verdict"]["cause"] == fault, [(c["cause"], c["named"]) for c in report["causes"]]
    drops = {d["reason"]: d for d in report["drops"]}
    assert reason in drops, list(drops)
    de = drops[reason]
    assert any(p["netns"] == netns and p["location"] == location for p in de["places"]), de
    # the failed probes' own packets (queries, or answers for rp-filter) died so
    assert de["linked"] >= 3 and de["linked_outages"] >= 1, de
    assert de["in_outages"] >= 0.9 * de["drops"], de
    print(
        f"{fault}: {de['drops']} {reason} drops ({de['in_outages']} in outages), "
        f"{de['linked']} of {de['linkable']} failed probes linked in {de['linked_outages']} "
        f"outages, p {de['p_value']}; verdict {report['verdict']['confidence']} "
        f"p {report['verdict']['p_value']}"
    )
    said = [x for x in report["verdict"]["evidence"] if reason in x]
    assert any("failed queries were dropped" in x for x in said), report["verdict"]["evidence"]
    assert any(f"by {location}" in x for x in said)


@pytest.mark.parametrize("fault", [f for f, (_, r, _) in CASES.items() if r])
def test_the_drops_alone_name_the_cause_without_states_or_counters(
    runs: dict[str, tuple[dict[str, Any], Path]], fault: str
) -> None:
    _, path = runs[fault]
    with Store(path) as st:
        cols, series, facts = st.probe_columns(), st.series(), st.facts()
        events = [e for e in st.events() if e.kind not in WITHOUT]
        sourced = st.sourced_failures()
    analysis = analyze_data(cols, series, events, facts, sourced=sourced)
    scores = {c.cause: c for c in analysis.causes}
    s = scores[fault]
    assert s.named, (s.evidence_for, s.evidence_against)
    assert s.confidence in ("medium", "high")
    assert s.evidence_for[0].split(" were dropped")[0].endswith("failed queries"), s.evidence_for
    print(f"{fault} from drops alone: {s.confidence}; {s.evidence_for[0]}")


def test_nat_missing_queries_are_dropped_nowhere_watch_looks(
    runs: dict[str, tuple[dict[str, Any], Path]],
) -> None:
    report, path = runs["nat-missing"]
    assert report["verdict"]["cause"] == "nat-missing"
    with Store(path) as st:
        events = st.events()
        bridge = str(st.runs()[-1].args.get("bridge", ""))
    notes = [e for e in events if e.kind is EventKind.NOTE and e.subject == "drops"]
    assert notes and "bpftrace" in str(notes[0].detail), notes  # drops were recorded
    # none of the failed queries was dropped on this host, so none at the bridge:
    # they left untranslated, and their answers died upstream (not traced)
    assert all(d["linked"] == 0 for d in report["drops"]), report["drops"]
    at_bridge = [
        d
        for d in report["drops"]
        for p in d["places"]
        if p["netns"] == "host" and (p["bridge"] == bridge or p["device"] == bridge)
    ]
    assert not at_bridge, at_bridge
    lines = _cause(report, "nat-missing")["evidence_for"]
    assert any("left this host" in x for x in lines), lines
    print(f"nat-missing: drops recorded {[d['reason'] for d in report['drops']]}; {lines[-1]}")
