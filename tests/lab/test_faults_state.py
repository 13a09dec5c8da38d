"""The causes ``watch`` sees as a path state, reproduced by the lab and named
by ``report``: a firewall reload that leaves the forward hook dropping the
bridge (``forward-blocked``), a rogue peer claiming the gateway's address
(``gateway-arp-conflict``), the uplink losing its address
(``address-lost``). Each runs the real CLI (namespaces, bridge, dnsmasq,
nftables, raw ARP) and reports on its store; the three labs run at once.

The pure pieces underneath (the host's egress state, the gratuitous ARP
frame) are tested on their own at the end.
"""

from __future__ import annotations

from typing import Any

import pytest

from netsleuth import netns
from netsleuth.events.paths import EgressSeen, TargetPath, egress_state, path_states
from netsleuth.events.state import LinkInfo, NamespaceState
from netsleuth.lab.faults.neighbours import garp_frame
from netsleuth.model import StateKind
from netsleuth_testing.labruns import book, farm_runs

# fault -> (lab run arguments, what the verdict's evidence says was seen)
CASES = {
    "forward-blocked": (["--duration", "23"], "a forward chain dropped its subnet"),
    "gateway-arp-conflict": (
        ["--duration", "24"],
        "its gateway entry held a MAC learned behind a port",
    ),
    "address-lost": (["--duration", "23"], "it had no default route or address"),
}
book("state", {f: ["--fault", f, "--seed", "7", *args] for f, (args, _) in CASES.items()})


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], Any]]:
    """fault -> (report --json of its store, lab run --json)."""
    runs = farm_runs("state", tmp_path_factory.mktemp("farm"))
    return {fault: (run.report, run.lab) for fault, run in runs.items()}


@pytest.mark.lab
@pytest.mark.parametrize("fault", list(CASES))
def test_the_lab_fault_is_named_from_its_state(
    reports: dict[str, tuple[dict[str, Any], Any]], fault: str
) -> None:
    report, _ = reports[fault]
    verdict = report["verdict"]
    assert verdict["cause"] == fault, (verdict, [c["cause"] for c in report["causes"]])
    assert verdict["p_value"] is not None and verdict["p_value"] < 0.01
    assert verdict["confidence"] in ("medium", "high")
    said = CASES[fault][1]
    assert any(said in line and "began and ended" in line for line in verdict["evidence"])
    family = next(s for s in report["states"] if s["cause"] == fault)
    assert len(family["aligned"]) >= 2  # several outages, each with the state
    assert {a["state"] for a in family["aligned"]} <= {
        "forward-blocked",
        "gateway-mac-foreign",
        "route-missing",
    }
    # nothing else is named: no bridge flap (no churn, the bridge MAC stayed),
    # no upstream fault, no other firewall cause
    named = [c["cause"] for c in report["causes"] if c["named"]]
    assert named == [fault]
    assert all(b["mac_changes"] == 0 for b in report["bridges"])


@pytest.mark.lab
def test_a_forward_drop_is_told_apart_from_a_missing_nat_rule(
    reports: dict[str, tuple[dict[str, Any], Any]],
) -> None:
    report, _ = reports["forward-blocked"]
    assert report["localisation"] == "namespaces"  # the host's own traffic is not forwarded
    assert {s["cause"] for s in report["states"]} == {"forward-blocked"}  # NAT never missing
    assert any("policy drop" in e or "forward" in e for e in report["verdict"]["evidence"])


@pytest.mark.lab
def test_the_rogue_answers_from_behind_a_port_and_is_gone_afterwards(
    reports: dict[str, tuple[dict[str, Any], Any]],
) -> None:
    report, lab = reports["gateway-arp-conflict"]
    assert report["localisation"] == "namespaces"
    (bridge,) = report["bridges"]
    assert "vrogue" in bridge["ports"]  # the rogue's port, on the bridge all along
    lab_id = lab["cases"][0]["lab_id"]
    assert not netns.exists(f"nsl-{lab_id}-rogue")
    assert not any(n.startswith(f"nsl-{lab_id}") for n in netns.list_named("nsl-"))


@pytest.mark.lab
def test_losing_the_uplink_address_cuts_off_the_host_control_too(
    reports: dict[str, tuple[dict[str, Any], Any]],
) -> None:
    report, _ = reports["address-lost"]
    family = next(s for s in report["states"] if s["cause"] == "address-lost")
    control = report["control"]
    assert control is not None
    assert report["localisation"] == "everywhere"
    stats = {t["target"]: t for t in report["targets"]}
    assert stats[control]["failed"] > 0 and all(t["failed"] for t in stats.values())
    assert len(family["aligned"]) >= 2, family
    # the control's outages are explained by the state, so no upstream fault is named
    upstream = next(c for c in report["causes"] if c["cause"] == "upstream-dns")
    assert not upstream["named"], (upstream, family)
    title = report["verdict"]["title"]  # names the control and the containers alike
    assert all(target in title for target in stats), title


# -- the pure pieces ----------------------------------------------------------------------


def _host(*, addressed: bool, gateway: str = "") -> NamespaceState:
    state = NamespaceState("host", lambda: (0, 0))
    for link in (
        LinkInfo(1, "lo", "", 0, "unknown", 65536, ""),
        LinkInfo(2, "br0", "02:00:00:00:00:01", 0, "up", 1500, "bridge"),
        LinkInfo(3, "vp0", "02:00:00:00:00:02", 2, "up", 1500, "veth"),
        LinkInfo(4, "wan0", "02:00:00:00:00:03", 0, "up", 1500, "veth"),
    ):
        state.remember(link)
    state.addrs["10.9.0.1"] = 2
    if addressed:
        state.addrs["10.9.255.1"] = 4
    state.gateway, state.gateway_oif = (gateway, 4) if gateway else ("", 0)
    return state


EGRESS = ("wan0",)


def test_an_uplink_that_loses_its_address_is_a_route_missing_state() -> None:
    seen = EgressSeen().update(_host(addressed=True), EGRESS)
    assert seen.addressed == {"wan0"} and not seen.default
    assert egress_state(_host(addressed=True), seen) is None
    change = egress_state(_host(addressed=False), seen)
    assert change is not None
    assert (change.state, change.link) == (StateKind.ROUTE_MISSING, "wan0")


def test_an_uplink_never_addressed_or_gone_is_no_state() -> None:
    never = EgressSeen().update(_host(addressed=False), EGRESS)
    assert egress_state(_host(addressed=False), never) is None
    seen = EgressSeen().update(_host(addressed=True), EGRESS)
    gone = _host(addressed=False)
    del gone.links[4]  # a deleted uplink is a link event, not a lost address
    assert egress_state(gone, seen) is None


def test_a_default_route_that_goes_is_the_state_when_there_was_one() -> None:
    seen = EgressSeen().update(_host(addressed=True, gateway="10.9.255.2"), EGRESS)
    assert seen.default
    assert egress_state(_host(addressed=True, gateway="10.9.255.2"), seen) is None
    change = egress_state(_host(addressed=True), seen)
    assert change is not None and change.note == "the host has no default route"


def test_the_hosts_egress_state_reaches_every_path_unless_it_has_its_own() -> None:
    host = _host(addressed=True)
    inside = NamespaceState("c", lambda: (0, 0))
    inside.remember(LinkInfo(7, "eth0", "02:00:00:00:00:07", 0, "up", 1500, "veth"))
    inside.addrs["10.9.0.7"] = 7
    inside.gateway, inside.gateway_oif = "10.9.0.1", 7
    path = TargetPath("netns:c", "eth0", "vp0", "br0", "10.9.0.0/24", "10.9.0.1")
    lost = egress_state(_host(addressed=False), EgressSeen().update(host, EGRESS))
    assert lost is not None
    assert path_states(path, host, inside, egress=lost)[StateKind.ROUTE_MISSING] == lost
    assert StateKind.ROUTE_MISSING not in path_states(path, host, inside)
    inside.gateway = ""  # its own route missing says more than the host's
    own = path_states(path, host, inside, egress=lost)[StateKind.ROUTE_MISSING]
    assert own.note == "no default route"


def test_a_gratuitous_arp_says_the_sender_holds_the_address() -> None:
    frame = garp_frame("02:aa:bb:cc:dd:ee", "198.18.0.1")
    mac, ip = bytes.fromhex("02aabbccddee"), bytes([198, 18, 0, 1])
    assert len(frame) == 42
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == mac and frame[12:14] == b"\x08\x06"
    arp = frame[14:]
    assert arp[:8] == bytes.fromhex("0001080006040001")  # Ethernet/IPv4, a request
    assert arp[8:14] == mac and arp[14:18] == ip  # sender
    assert arp[18:24] == b"\x00" * 6 and arp[24:28] == ip  # target: the same address
