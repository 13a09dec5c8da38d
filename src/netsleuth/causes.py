"""The catalogue of causes: one entry per cause of sporadic connectivity
failures that netsleuth knows, with everything said about it in one place.

Each :class:`Cause` holds its stable ``id`` (the JSON contract of
``verdict.cause`` and ``causes[].cause``), a title, the mechanism, the
evidence that shows it and how that evidence is scored, the explanation a
report gives, the fix, and what the doctor rules and explain findings that
bear on it say: their ``why`` (``doctor_why``, ``explain_why``) and, where
it is not the cause's own fix, their ``fix`` (``doctor_fix``,
``explain_fix``), keyed by rule or finding id. ``report``, ``doctor``,
``explain``, the exporter and the docs take their cause texts from here
(:func:`markdown` renders docs/causes.md); the scorers that weigh a store's
evidence live in :mod:`netsleuth.analysis.scoring`, one per cause whose
evidence ``watch`` records (``scored``).

Templates use ``str.format`` fields, all of them in :data:`FIELDS`:
``{bridge}``, ``{target}``, ``{link}``, ``{subnet}``, ``{netns_flag}`` and a
few that only one rule fills. :meth:`Cause.render` fills the ones given and
leaves a readable placeholder for the rest.

Adding a cause: one entry here, its scorer in ``analysis/scoring.py``, and a
positive and a look-alike negative test of that scorer. Adding a doctor rule
or explain finding: its ``why`` (and a ``fix`` unless the cause's fits) in
the entry of the cause it bears on; the rule names that cause.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["CAUSES", "FIELDS", "Cause", "markdown"]

FIELDS = frozenset(
    {
        "bridge",  # a bridge's name
        "target",  # a probe target (netns:NAME, container:NAME, ...)
        "link",  # a link on the target's path
        "link_event",  # what happened to that link ("veth0 was deleted")
        "subnet",  # an IPv4 network, e.g. 198.18.1.0/24
        "netns_flag",  # " --netns NAME" outside the host namespace, else ""
        "ip",  # the ip command for the bridge's namespace: "ip" or "ip -n NAME"
        "mac",  # a MAC address
        "forward_delay",  # a bridge's STP forward delay in seconds
        "subject",  # what a finding is about, as its subject says it
    }
)
"""The fields a template may use."""


@dataclass(frozen=True, slots=True)
class Cause:
    id: str
    title: str
    mechanism: str
    evidence: tuple[str, ...]
    """What shows the cause, strongest first."""
    scoring: str
    """How the report weighs that evidence (the docs print this)."""
    explanation: str
    """What the report says when it names the cause."""
    fix: str
    doctor_why: Mapping[str, str] = field(default_factory=dict)
    """Doctor rule id -> why its finding matters (a template)."""
    doctor_fix: Mapping[str, str] = field(default_factory=dict)
    """Doctor rule id -> its fix where it is not :attr:`fix` (a template)."""
    explain_why: Mapping[str, str] = field(default_factory=dict)
    """Explain finding id -> why it matters (a template)."""
    explain_fix: Mapping[str, str] = field(default_factory=dict)
    """Explain finding id -> its fix where it is not :attr:`fix` (a template)."""
    sources: tuple[str, ...] = ()
    scored: bool = True
    """False for causes only ``doctor``/``explain`` can see so far."""

    @property
    def doctor_rules(self) -> tuple[str, ...]:
        """The ids of the doctor rules that bear on this cause."""
        return tuple(self.doctor_why)

    @property
    def explain_findings(self) -> tuple[str, ...]:
        """The ids of the explain findings that bear on this cause."""
        return tuple(self.explain_why)

    def render(self, text: str, **fields: str | None) -> str:
        """``text`` with the given fields filled in (None or missing: ``<name>``)."""
        wanted = {name for _, name, _, _ in string.Formatter().parse(text) if name}
        values = {name: fields.get(name) or f"<{name}>" for name in wanted}
        if "netns_flag" in wanted and not fields.get("netns_flag"):
            values["netns_flag"] = ""
        return text.format(**values)

    def title_for(self, **fields: str | None) -> str:
        return self.render(self.title, **fields)

    def fix_for(self, **fields: str | None) -> str:
        return self.render(self.fix, **fields)

    def finding_why(self, rule: str, **fields: str | None) -> str:
        """The why of doctor rule or explain finding ``rule`` (KeyError if it
        does not bear on this cause)."""
        text = self.doctor_why.get(rule)
        return self.render(self.explain_why[rule] if text is None else text, **fields)

    def finding_fix(self, rule: str, **fields: str | None) -> str:
        """The fix of doctor rule or explain finding ``rule``: its own, else
        the cause's."""
        text = self.doctor_fix.get(rule) or self.explain_fix.get(rule) or self.fix
        return self.render(text, **fields)

    def templates(self) -> dict[str, str]:
        """Every template of the entry, by a name that says where it is."""
        out = {
            "title": self.title,
            "mechanism": self.mechanism,
            "scoring": self.scoring,
            "explanation": self.explanation,
            "fix": self.fix,
        }
        out.update({f"evidence[{i}]": text for i, text in enumerate(self.evidence)})
        for name, texts in (
            ("doctor_why", self.doctor_why),
            ("doctor_fix", self.doctor_fix),
            ("explain_why", self.explain_why),
            ("explain_fix", self.explain_fix),
        ):
            out.update({f"{name}[{key}]": text for key, text in texts.items()})
        return out


# Shared by the rules that find an unpinned bridge.
_PIN_BY_HAND = (
    "netsleuth fix bridge {bridge}{netns_flag} --apply  (pins it now and in the file that "
    "defines the bridge); by hand: {ip} link set dev {bridge} address {mac} (setting any MAC, "
    "even the current one, pins it), plus the same MAC in the network configuration"
)

# How to see the conntrack entries a query that escaped NAT may have reused.
_UNNATED_CHECK = (
    "`conntrack -L -p udp --dport 53` in the bridge's namespace shows the culprits: "
    "[UNREPLIED] entries whose reply goes back to the client's own address"
)


_ALL = (
    Cause(
        id="bridge-mac-flap",
        title="bridge {bridge} changes its MAC when ports come and go",
        mechanism=(
            "A Linux bridge whose MAC was never set (addr_assign_type != 3) takes the smallest "
            "MAC of its ports. A port with a smaller MAC that joins gives the bridge its MAC; "
            "the host's next ARP request from the new MAC makes the namespaces cache it as the "
            "gateway. When that port leaves, its MAC vanishes from the bridge: frames sent to "
            "it are flooded to no one and never routed or NATed, until the namespace's entry "
            "goes DELAY, PROBE, FAILED and a broadcast ARP finds the current MAC (about 6 s; "
            "longer while the entry stays REACHABLE)."
        ),
        evidence=(
            "state: the target's gateway entry holds a MAC the bridge no longer has "
            "(gateway-mac-gone) or another port's MAC (gateway-mac-port), from the start to "
            "the end of an outage",
            "timing: outages begin right after a port leaves the bridge or its MAC changes",
            "fact: the bridge is not pinned and its MAC changed in the record",
            "drop: the failed queries dropped as OTHERHOST (a frame for a MAC the device does "
            "not have) or NO_TX_TARGET (the bridge flooding it to no one) in the bridge's "
            "namespace",
        ),
        scoring=(
            "Outages whose start and end line up with a gateway-mac-gone or gateway-mac-port "
            "interval of this bridge, against the chance of such an alignment (see "
            "docs/report.md); otherwise the onset-timing test of port-left and MAC-change "
            "events. Never named for a bridge whose MAC did not change in the record, nor "
            "when the gateway entry moved to a MAC the bridge never had."
            " Kernel drops of the failed queries as OTHERHOST / NO_TX_TARGET in the bridge's "
            "namespace (linked by 5-tuple in two or more outages, or tied to the outages at p < "
            "0.01) raise the confidence and name it without the state, never for a bridge whose "
            "MAC did not change."
        ),
        explanation=(
            "The bridge's MAC follows its ports. Each outage began when the port whose MAC the "
            "bridge had borrowed left, while the namespace still sent its traffic for the "
            "gateway to that MAC; it ended when the namespace re-resolved the gateway."
        ),
        fix=(
            "pin the bridge MAC: `netsleuth fix bridge {bridge}{netns_flag} --apply` (pins it "
            "now and in the file that defines the bridge); or set "
            "net.ipv4.conf.{bridge}.arp_notify=1 so the host announces every change"
        ),
        doctor_why={
            "bridge-mac-unpinned": (
                "A bridge whose MAC was never set takes the smallest MAC of its ports. Each port "
                "that joins or leaves can change the gateway MAC; neighbours that cached the old "
                "MAC send frames the bridge no longer accepts as its own, so they are never "
                "routed or NATed until their ARP entry expires (seconds of loss per change)."
            ),
            "bridge-mac-inherited": (
                "The bridge's MAC belongs to a port: when that port leaves, the MAC neighbours "
                "use for the gateway vanishes from the bridge and their frames are flooded to no "
                "one (~6 s outage until ARP recovers)."
            ),
            "bridge-arp-notify-off": (
                "With arp_notify=1 the bridge announces its new MAC with a gratuitous ARP on "
                "every change, so neighbours update at once; measured to remove the outages of "
                "an unpinned bridge. Pinning is the real fix."
            ),
            "docker-bridge-unpinned": (
                "Docker pins the MAC only of bridges it creates. On a bridge made by hand every "
                "container start/stop can change the gateway MAC: containers then lose DNS and "
                "traffic for seconds (the reference case: 33 of 450,000 lookups failed, more "
                "during nightly builds)."
            ),
            "udev-mac-policy": (
                "On systemd hosts udev gives new bridges a persistent MAC "
                "(MACAddressPolicy=persistent), which pins them; here that does not happen, so "
                "every bridge made by hand or by a tool stays unpinned."
            ),
        },
        doctor_fix={
            "bridge-mac-unpinned": _PIN_BY_HAND,
            "bridge-mac-inherited": _PIN_BY_HAND,
            "bridge-arp-notify-off": (
                "netsleuth fix bridge {bridge}{netns_flag} --arp-notify --apply; by hand: "
                "sysctl -w net.ipv4.conf.{bridge}.arp_notify=1"
            ),
            "docker-bridge-unpinned": _PIN_BY_HAND,
            "udev-mac-policy": (
                "pin each bridge explicitly (netsleuth fix bridge BR --apply); udev policies are "
                "not a substitute where udev does not run"
            ),
        },
        explain_why={
            "stale-gateway": (
                "A bridge whose MAC was never set takes the smallest MAC of its ports. A port "
                "joined, the bridge took its MAC and the containers learned it as their "
                "gateway's; the port left, the MAC vanished from the bridge, and frames to it "
                "were flooded to no one — never routed, never NATed — until the containers' "
                "neighbour entries failed and a broadcast ARP found the new MAC (seconds of "
                "total loss). The other way round, while a port with a smaller MAC is attached, "
                "frames to the bridge's previous MAC reach the host marked for another host and "
                "are dropped, except from the container whose port owns that MAC."
            ),
        },
        explain_fix={
            "stale-gateway": (
                "pin the MAC of {subject}: `ip link set dev {bridge} address <its current MAC>` "
                "(sets addr_assign_type 3); `netsleuth fix` does it and writes the persistent "
                "config"
            ),
        },
        sources=(
            "netdev: bridge MAC inherited from the smallest port MAC",
            "RHEL-14309 / netavark#833",
            "lxc#604",
            "vagrant-lxc#240",
            "moby PR #3414",
        ),
    ),
    Cause(
        id="gateway-arp-conflict",
        title="another device answers ARP for the gateway of {target}",
        mechanism=(
            "Something behind a bridge port (a container or VM with the gateway's address, a "
            "misconfigured peer, a proxy ARP) answers ARP requests for the gateway. Namespaces "
            "that cache its MAC send their traffic to it instead of the host, and lose it "
            "until their entry moves back to the bridge."
        ),
        evidence=(
            "state: the gateway entry holds a MAC learned behind a port, never the bridge's "
            "(gateway-mac-foreign), from the start to the end of an outage",
            "fact: the bridge's MAC did not change meanwhile",
        ),
        scoring=(
            "Outages aligned with gateway-mac-foreign intervals, against the chance of the "
            "alignment."
        ),
        explanation=(
            "During the outages the namespace's gateway entry held a MAC that the bridge never "
            "had and that was learned behind one of its ports: another device claims the "
            "gateway's address."
        ),
        fix=(
            "find the device with that MAC (`bridge fdb show | grep MAC` names the port) and "
            "remove the gateway's address from it; check for duplicate addresses in the subnet"
        ),
        sources=("moby#6561", "moby#10096", "moby#27404", "moby#36069", "rancher#9508"),
    ),
    Cause(
        id="nat-missing",
        title="the NAT rule for {subnet} goes missing",
        mechanism=(
            "While no masquerade/SNAT rule covers a private bridge subnet, its traffic leaves "
            "the host with private source addresses and the replies never come back. A "
            "firewall reload or a rule set rewritten by a tool removes it for a while."
        ),
        evidence=(
            "state: no NAT rule covers the target's subnet (nat-missing), from the start to "
            "the end of an outage",
            "timing: outages begin right after the NAT rules change",
            "drop: none of the failed queries is dropped on this host (they leave untranslated; "
            "the answers are lost beyond it)",
        ),
        scoring=(
            "Outages aligned with nat-missing intervals; otherwise the onset-timing test of "
            "NAT rule changes."
            " With kernel drops recorded, none of the failed queries dropped on this host is "
            "evidence for it; half or more dropped here is against it."
        ),
        explanation=(
            "The outages began when the masquerade rule for the subnet disappeared and ended "
            "when it came back."
        ),
        fix=(
            "find what rewrites the rule set (it is on the timeline as firewall events) and make "
            "the masquerade rule permanent, e.g. nft add rule ip nat postrouting ip saddr "
            "{subnet} oifname != {bridge} masquerade"
        ),
        doctor_why={
            "bridge-nat-missing": (
                "Packets from this private subnet are forwarded with their source address "
                "unchanged; replies never find their way back."
            ),
        },
        doctor_fix={
            "bridge-nat-missing": (
                "nft add rule ip nat postrouting ip saddr {subnet} oifname != {bridge} "
                "masquerade  (or the iptables equivalent: iptables -t nat -A POSTROUTING -s "
                "{subnet} ! -o {bridge} -j MASQUERADE)"
            ),
        },
        explain_why={
            "escaped-nat": (
                "A query leaves untranslated when it matches a conntrack entry created without "
                "NAT (NAT is decided only for a connection's first packet) or when no masquerade "
                "rule covers its source; the answer then has no way back. " + _UNNATED_CHECK + "."
            ),
        },
        explain_fix={
            "escaped-nat": (
                "look for un-NATed entries of the client's ports (see why) and for the "
                "masquerade rule's source match; `netsleuth doctor` checks the NAT rules"
            ),
        },
        sources=("moby#15254", "moby#35043", "libnetwork PR #947"),
    ),
    Cause(
        id="forward-blocked",
        title="forwarding of {subnet} is blocked by the firewall",
        mechanism=(
            "A firewall reload (firewalld, ufw, ferm, a configuration run) wipes or reorders "
            "the FORWARD accept rules a container engine added; with a drop policy, every "
            "namespace behind the bridge loses its way out until the rules are added again."
        ),
        evidence=(
            "state: a forward chain with a drop policy lets nothing of the bridge through "
            "(forward-blocked), from the start to the end of an outage",
            "timing: outages begin right after firewall changes that do not touch NAT",
            "drop: the failed queries dropped as NETFILTER_DROP (nft_do_chain, nf_hook_slow) in "
            "the namespace that forwards them",
        ),
        scoring=(
            "Outages aligned with forward-blocked intervals; otherwise the onset-timing test "
            "of firewall changes."
            " Kernel drops of the failed queries as NETFILTER_DROP outside the targets' own "
            "namespaces (linked by 5-tuple in two or more outages, or tied to the outages at p "
            "< 0.01) raise the confidence, and name it when no state was recorded."
        ),
        explanation=(
            "The outages lasted exactly as long as the forward hook dropped the bridge's traffic."
        ),
        fix=(
            "accept the bridge's traffic ahead of the drop: iptables -I FORWARD -i {bridge} -j "
            "ACCEPT; iptables -I FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED "
            '-j ACCEPT (nftables: nft insert rule FAMILY TABLE CHAIN iifname "{bridge}" accept; '
            'nft insert rule FAMILY TABLE CHAIN oifname "{bridge}" ct state established,related '
            "accept, for the chain `netsleuth doctor` names); then make the firewall manager keep "
            "them: the rule set's file (/etc/nftables.conf), firewalld (firewall-cmd --permanent "
            "--zone=trusted --add-interface={bridge}), ufw (ufw route allow in on {bridge}), or "
            "restart the container engine after each firewall reload so it adds its rules again"
        ),
        doctor_why={
            "bridge-forward-blocked": (
                "The subnet is NATed, so its traffic is meant to leave the host, but the forward "
                "hook drops it: a chain with policy drop, or an unconditional drop/reject "
                "(firewalld ends its chains with one), comes before any rule that accepts this "
                "bridge or its subnet. Its namespaces reach the host but nothing past it; when a "
                "firewall reload removed the accept rules a container engine had added, they "
                "stay cut off until the engine adds them again."
            ),
            "ip-forward-off": (
                "Without forwarding the host never routes the bridges' traffic onwards; "
                "something (a restarted firewall service, a sysctl.d file) may be turning it "
                "off now and then."
            ),
            "br-netfilter-mismatch": (
                "With br_netfilter on, frames switched between two ports of the bridge traverse "
                "the iptables FORWARD chain: its drop policy silently cuts traffic between "
                "containers on one bridge."
            ),
        },
        doctor_fix={
            "bridge-forward-blocked": (
                "run the evidence's accept_commands (they insert, at the top of each blocking "
                "chain, an accept for traffic from {bridge} and for the replies to it), then make "
                "them permanent where the rule set comes from: /etc/nftables.conf, firewalld "
                "(firewall-cmd --permanent --zone=trusted --add-interface={bridge}; "
                "firewall-cmd --reload), ufw (ufw route allow in on {bridge}), or restart the "
                "container engine after each firewall reload. Not automated: the firewall's "
                "owner would overwrite an edit netsleuth made"
            ),
            "ip-forward-off": (
                "netsleuth fix ip-forward{netns_flag} --apply; persist with "
                "net.ipv4.ip_forward=1 in /etc/sysctl.d/"
            ),
            "br-netfilter-mismatch": (
                "accept it (iptables -I FORWARD -i {bridge} -o {bridge} -j ACCEPT) or, if "
                "nothing needs it, sysctl -w net.bridge.bridge-nf-call-iptables=0"
            ),
        },
        sources=("moby#12294", "moby#48657", "firewalld#503"),
    ),
    Cause(
        id="path-link-down",
        title="{link_event}: {target} lost its gateway",
        mechanism=(
            "A link the target's traffic crosses — its veth, the veth's peer, the bridge — went "
            "down or was deleted: a bridge deleted under running containers, a port detached, "
            "a network manager taking an interface down."
        ),
        evidence=(
            "state: a link on the target's path is down or gone (path-link-down), from the "
            "start of an outage to its end (or the end of the record)",
        ),
        scoring=(
            "Outages that begin with a path-link-down interval and last as long as it does (or "
            "both until the end of the record). The state makes traffic impossible by itself, "
            "so one such outage names the cause (at least medium confidence) even in a record "
            "too short for the alignment's chance to be small."
        ),
        explanation=(
            "The outage began when a link on the target's path went down or was deleted, and "
            "lasted as long as it stayed so."
        ),
        fix=(
            "bring {link} back (ip link set {link} up, or re-create it) and find what removed "
            "it (a network manager, a container engine, a script)"
        ),
        sources=(),
    ),
    Cause(
        id="address-lost",
        title="{target} lost its default route or address",
        mechanism=(
            "The namespace's default route or its address was removed (a DHCP lease lost, a "
            "network manager or a script reconfiguring it): nothing leaves until it is back."
        ),
        evidence=(
            "state: the target's default route or address is missing (route-missing), from "
            "the start to the end of an outage",
        ),
        scoring=(
            "Outages aligned with route-missing intervals; like path-link-down, one such "
            "outage names it."
        ),
        explanation=(
            "The outage lasted as long as the target had no default route (or no address)."
        ),
        fix=(
            "find what removes the route or address (DHCP client, network manager) and make "
            "the configuration static or the lease renewal reliable"
        ),
        sources=("systemd#16071", "systemd#15421"),
    ),
    Cause(
        id="upstream-dns",
        title="the DNS server or the path beyond this host loses queries",
        mechanism=(
            "The resolver, or the path between this host and it, loses or throttles queries: "
            "every client fails alike, the host itself too."
        ),
        evidence=(
            "pattern: the host control fails too, in outages no state of this host explains",
            "pattern: the namespaces' unexplained failures come at a comparable rate",
        ),
        scoring=(
            "Named when the host control (a target in the namespace that holds the bridge) has "
            "failures that no recorded state explains, at a rate comparable to the namespaces' "
            "unexplained failures; confidence from the number of such outages (no p-value: "
            "this is a pattern, not a tested alignment)."
        ),
        explanation=(
            "The host control failed as well, in outages no state of this host explains: the "
            "fault lies beyond the host's namespaces, bridges and NAT."
        ),
        fix=(
            "check the upstream resolver and the path to it (loss, rate limits); configure "
            "more than one resolver, or a local caching resolver"
        ),
        sources=("aws/containers-roadmap#2530", "coredns#4327"),
    ),
    Cause(
        id="upstream",
        title="the server or the path beyond this host loses traffic",
        mechanism="The server, or the path between this host and it, loses traffic.",
        evidence=("pattern: the host control fails too, in outages no state explains",),
        scoring="As upstream-dns, for probes that are not DNS.",
        explanation=(
            "The host control failed as well, in outages no state of this host explains: the "
            "fault lies beyond this host."
        ),
        fix="check the server and the path to it",
    ),
    Cause(
        id="upstream-rate-limit",
        title="the resolver throttles this host's DNS queries when their rate peaks",
        mechanism=(
            "Resolvers and the links in front of them limit how many packets per second one "
            "client may send: a cloud's VPC resolver admits 1024 packets/s per network interface "
            "(AWS) and silently drops the rest; a public or corporate resolver may limit each "
            "source address. Behind NAT every container of the host is one client. The host's "
            "query rate peaks when builds or pods start together, and ndots:5 search lists turn "
            "each lookup of an outside name into up to five or six queries, A and AAAA each; "
            "past the limit the excess is dropped from everyone alike, the host itself too, and "
            "the lookups wait for their timeout."
        ),
        evidence=(
            "load: outages begin in the seconds in which the host sends the most packets out of "
            "its uplink (at least twice the run's quiet rate), and rarely otherwise",
            "pattern: the host control fails in those seconds too, while answers keep coming (a "
            "limit passes its rate)",
            "counters: no local drop counter (a socket's receive buffer, conntrack) rose with "
            "the outages",
        ),
        scoring=(
            "The host's egress packet counts, sampled every second, split the record into busy "
            "seconds (at least twice the run's quiet level, its lower quartile: never an absolute "
            "number) and quiet ones; Fisher's exact test asks whether outages that no recorded "
            "state explains begin in busy seconds more often than in quiet ones. Named at p < "
            "0.01 with at least three busy seconds in which an outage began, at twice the quiet "
            "seconds' rate or more. Not named when the host control and most targets were spared "
            "in busy seconds, when the host received less while busy (nothing got through: an "
            "outage, not a limit), or when a local drop counter met the outages."
        ),
        explanation=(
            "Outages began when the host's packet rate out of its uplink peaked, in the host's "
            "own namespace too, while some answers kept coming: the resolver, or a limit in "
            "front of it, admits only so many queries per second and dropped the excess."
        ),
        fix=(
            "lower the query rate: run a caching resolver on the host (NodeLocal DNSCache, "
            "systemd-resolved, dnsmasq) so repeated names are answered locally; cut the ndots "
            "amplification (options ndots:1 in the containers' resolv.conf, or fully qualified "
            "names with a trailing dot); spread build starts; on AWS spread the queries over "
            "network interfaces or resolvers (1024 packets/s per interface). `ip -s link show "
            "{link}` counts the uplink's packets"
        ),
        doctor_why={
            "resolver-search-amplification": (
                "A name with fewer dots than ndots is tried with every search domain before it "
                "is tried as given: here one lookup of an outside name costs up to the "
                "queries_per_lookup of the evidence, A and AAAA for each name, most of them "
                "answered NXDOMAIN. A rate-limited resolver (1024 packets/s per interface on "
                "AWS) counts every one, so the limit is reached at a fraction of the real lookup "
                "rate."
            ),
        },
        doctor_fix={
            "resolver-search-amplification": (
                "if short names do not need the search list, lower ndots: `netsleuth fix "
                "resolv-options {target} --ndots 1 --apply` for a named namespace (backs up "
                '/etc/netns/NAME/resolv.conf); Docker: "dns-opts": ["ndots:1"] in daemon.json; '
                'Kubernetes: dnsConfig.options ndots "1" or "2" in the pod spec. Or write '
                "outside names fully qualified with a trailing dot, or answer the repeats "
                "locally with a caching resolver"
            ),
        },
        sources=(
            "aws/containers-roadmap#2530 (1024 packets/s per interface to the VPC resolver)",
            "coredns#4327",
            "kubernetes#14051",
            "kubernetes#33554",
            "kubernetes#64924",
        ),
    ),
    Cause(
        id="resolver-overload",
        title="a resolver on this host drops queries: its socket's receive buffer overflows",
        mechanism=(
            "A caching or forwarding resolver on the host (NodeLocal DNSCache, the dnsmasq of "
            "libvirt or NetworkManager, systemd-resolved, CoreDNS on the host network) reads its "
            "queries from one UDP socket. When they arrive faster than it handles them — a burst "
            "of lookups, a CPU-starved or throttled process — the socket's receive buffer "
            "(SO_RCVBUF, capped by net.core.rmem_max) fills and the kernel drops every further "
            "datagram before the resolver sees it; the client waits for its timeout. Each drop "
            "is counted in Udp RcvbufErrors of /proc/net/snmp in the resolver's namespace (drop "
            "reason SOCKET_RCVBUFF)."
        ),
        evidence=(
            "counter: snmp.Udp.RcvbufErrors (and Udp InErrors) rises in the resolver's namespace "
            "during the outages",
            "pattern: every client of that resolver fails, the host control too when it asks it",
            "drop: queries dropped as SOCKET_RCVBUFF (udp_queue_rcv_one_skb) during the outages",
        ),
        scoring=(
            "Two tests of snmp.Udp.RcvbufErrors against the outages, the smaller p doubled: the "
            "counter rule (it rose during at least two independent outages, against the chance "
            "of rises meeting outages at random; see docs/report.md), and Fisher's exact test "
            "of the seconds in which it rose against the seconds in which outages began (at "
            "least three, twice as likely), on the grid of the host's one-second counter "
            "samples. Named at p < 0.01; the evidence says in which namespace it rose and how "
            "many datagrams were dropped."
            " Kernel drops as SOCKET_RCVBUFF (failed queries linked by 5-tuple in two or more "
            "outages, or tied to the outages at p < 0.01) raise the confidence and name it "
            "without the counter."
        ),
        explanation=(
            "While the outages lasted, the kernel dropped UDP datagrams because a socket's "
            "receive buffer on this host was full: a local resolver could not keep up with its "
            "queries, and the dropped ones were never answered."
        ),
        fix=(
            "give the resolver room and time: a larger receive buffer (Unbound so-rcvbuf; raise "
            "net.core.rmem_max so such a setting takes effect), more CPU or replicas (lift its "
            "CPU limit, NodeLocal DNSCache), or fewer queries (caching in the clients, options "
            "ndots:1); `nstat -az UdpRcvbufErrors` in its namespace shows the drops"
        ),
        doctor_why={
            "resolver-socket-drops": (
                "The kernel counts, for each UDP socket, the datagrams it dropped because the "
                "socket's receive buffer was full (the drops column of /proc/net/udp). This DNS "
                "server socket has such drops since it was opened: queries arrived faster than "
                "the resolver read them, were never answered, and their clients waited for a "
                "timeout. Non-zero once is enough to be seen here; `netsleuth watch` tells "
                "whether it happens during the outages."
            ),
        },
        sources=(
            "/proc/net/snmp Udp RcvbufErrors",
            "kernel drop reason SOCKET_RCVBUFF (include/net/dropreason-core.h)",
        ),
    ),
    Cause(
        id="conntrack-race",
        title="single lost DNS queries from namespaces only (conntrack insert race?)",
        mechanism=(
            "A resolver that sends A and AAAA queries from one socket at once through NAT makes "
            "two conntrack entries race to be inserted; one packet is dropped and the lookup "
            "waits for the resolver's timeout (5 s). Conntrack entries without NAT, left by "
            "frames a bridge flooded after its MAC changed, show the same pattern: a later "
            "query from the same port reuses one and leaves untranslated."
        ),
        evidence=(
            "counter: ct.insert_failed (and ct.drop) rises by one in the namespace that NATs, "
            "in the sample of each lost query, with the table far from full",
            "pattern: nearly every outage is a single lost query, in namespaces only",
            "pattern: no event or state is tied to them",
        ),
        scoring=(
            "Named when ct.insert_failed rose in two or more independent outages and p < 0.01: "
            "the outages came with its rises, or its rises came during outages, more often "
            "than chance allows (the better of the two tests, Bonferroni-corrected); the "
            "single-lost-query pattern is supporting evidence. Without such a rise the pattern "
            "alone (at least five outages, 80 % of them single lost queries, the host control "
            "not failing alike) names it with low confidence, and only when no other cause is "
            "named."
        ),
        explanation=(
            "Only the namespaces failed and nearly every outage was one lost query: the "
            "pattern of the conntrack insert race, confirmed when the kernel's insert_failed "
            "counter rose with the lost queries (without it, a pattern match, not proof: "
            "conntrack entries without NAT reused by a later query look the same)."
        ),
        fix=(
            "tell them apart with `netsleuth capture` + `netsleuth explain` (the second names "
            "stale-conntrack-entry; `netsleuth fix bridge` removes those entries); for the race "
            "add `options single-request-reopen` to the namespaces' resolv.conf: `netsleuth fix "
            "resolv-options NETNS --apply` for a named namespace (/etc/netns/NETNS/resolv.conf, "
            'backed up); Docker: "dns-opts": ["single-request-reopen"] in daemon.json; or use a '
            "local caching resolver"
        ),
        doctor_why={
            "conntrack-pressure": (
                "insert_failed counts the conntrack race of parallel UDP packets of one socket "
                "(glibc sends A and AAAA at once): one of the two DNS queries is dropped and the "
                "lookup waits for its 5 s timeout."
            ),
            "resolver-parallel-queries": (
                "glibc sends the A and AAAA queries of a lookup at once from one UDP socket. "
                "Through NAT both packets race to insert the same conntrack entry; the loser is "
                "dropped (insert_failed) and the lookup waits for its 5 s timeout. Kernels from "
                "5.0 resolve this clash for packets of one socket to one server, so there it "
                "is mostly harmless (info); DNAT to several backends still loses some before "
                "5.6. single-request-reopen sends the second query from a new socket; musl "
                "(Alpine) ignores the option."
            ),
        },
        doctor_fix={
            "conntrack-pressure": (
                "in the namespaces set 'options single-request-reopen' in resolv.conf (`netsleuth "
                'fix resolv-options NETNS --apply`; Docker: daemon.json "dns-opts"), or run a '
                "node-local DNS cache; on kernels < 5.0 upgrade (the clash resolution fixes "
                "landed there)"
            ),
            "resolver-parallel-queries": (
                "netsleuth fix resolv-options {target} --apply (adds `options "
                "single-request-reopen` to the namespace's resolv.conf after a backup; for a "
                'container it prints the daemon.json "dns-opts" to set instead); or run a local '
                "caching resolver the namespaces reach without NAT"
            ),
        },
        sources=(
            "weave: Racy conntrack and DNS lookup timeouts",
            "kubernetes#56903",
            "weave#3287",
        ),
    ),
    Cause(
        id="conntrack-full",
        title="the conntrack table is full",
        mechanism=(
            "When the connection tracking table reaches nf_conntrack_max, new flows are "
            "dropped (the kernel logs 'nf_conntrack: table full, dropping packet'); flows "
            "already tracked go on."
        ),
        evidence=(
            "counter: ct.drop / ct.early_drop rise in the host namespace during the outages, "
            "with ct.count at ct.max beside them",
            "pattern: outages come in bursts, in every target the host control included (its "
            "own new flows are tracked too; its sends fail with EPERM)",
            "fact: conntrack count near its maximum (doctor)",
        ),
        scoring=(
            "Named when ct.drop or ct.early_drop rose in two or more independent outages at "
            "p < 0.01 (outages with rises, or rises during outages; the better test, "
            "Bonferroni-corrected) and ct.count was at least 90 % of ct.max beside the rises "
            "(a lost insert race counts drop too, with the table nearly empty). Upstream is "
            "then not named for the host control's failures."
        ),
        explanation=(
            "New connections were dropped because the conntrack table was full: the kernel's "
            "drop counter rose with the outages while the table was at its maximum."
        ),
        fix=(
            "raise the limit: `netsleuth fix conntrack-max` plans nf_conntrack_max from the "
            "fullest namespace's count (and the hash size, and /etc/sysctl.d/90-netsleuth-"
            "conntrack-max.conf), `--apply` sets and keeps it; by hand: sysctl -w "
            "net.netfilter.nf_conntrack_max=N and the same line in /etc/sysctl.d/; or shorten "
            "net.netfilter.nf_conntrack_udp_timeout"
        ),
        doctor_why={
            "conntrack-pressure": (
                "When the table is full new flows are dropped (kernel logs 'nf_conntrack: table "
                "full'), so new DNS lookups fail at random."
            ),
        },
        doctor_fix={
            "conntrack-pressure": (
                "netsleuth fix conntrack-max --apply (nf_conntrack_max from the fullest "
                "namespace's count, the hash size, and a file in /etc/sysctl.d/; without --apply "
                "it shows the plan); or shorten net.netfilter.nf_conntrack_udp_timeout"
            ),
        },
        sources=("kubernetes#18604", "kubernetes#71261", "kubernetes#97377"),
    ),
    Cause(
        id="neighbour-table-full",
        title="the neighbour table overflows",
        mechanism=(
            "Past gc_thresh3 entries the kernel refuses new neighbour entries ('neighbor table "
            "overflow!'): sends fail with ENOBUFS, hosts stay unresolved."
        ),
        evidence=(
            "counter: arp.table_fulls / arp.unresolved_discards rise in the initial namespace "
            "(the table is machine-wide) during the outages; arp.forced_gc_runs rising and "
            "arp.entries near gc_thresh3 beside them",
            "event: a target's gateway entry deleted at the outage's start and made again at "
            "its end",
            "fact: neighbour entries near gc_thresh3 (doctor)",
            "drop: packets dropped as NEIGH_CREATEFAIL or NEIGH_QUEUEFULL during the outages",
        ),
        scoring=(
            "Named when arp.table_fulls or arp.unresolved_discards rose in two or more "
            "independent outages at p < 0.01 (outages with rises, or rises during outages; the "
            "better test, Bonferroni-corrected). Upstream is then not named for the host "
            "control's failures (its next hop needs an entry too)."
            " Kernel drops as NEIGH_CREATEFAIL / NEIGH_QUEUEFULL (failed probes linked by "
            "5-tuple in two or more outages, or tied to the outages at p < 0.01) raise the "
            "confidence and name it without the counters."
        ),
        explanation=(
            "Neighbour entries could not be created because the table was full: the kernel "
            "refused new entries (table_fulls) while the targets' sends failed."
        ),
        fix=(
            "raise the thresholds: `netsleuth fix neigh-thresh` plans "
            "net.ipv4.neigh.default.gc_thresh1/2/3 from the table's entries (and /etc/sysctl.d/"
            "90-netsleuth-neigh-thresh.conf), `--apply` sets and keeps them; by hand: sysctl -w "
            "for each and the same lines in /etc/sysctl.d/"
        ),
        doctor_why={
            "neigh-table-pressure": (
                "Above gc_thresh3 the kernel refuses new neighbour entries ('neighbour table "
                "overflow'): new peers are unreachable until entries are collected."
            ),
        },
        doctor_fix={
            "neigh-table-pressure": (
                "netsleuth fix neigh-thresh --apply (gc_thresh1/2/3 from the table's entries, "
                "kept in /etc/sysctl.d/; without --apply it shows the plan)"
            ),
        },
        sources=("kops#4533", "Azure/aks-engine#2732"),
    ),
    Cause(
        id="mtu-blackhole",
        title="the path MTU is smaller than the namespaces' MTU",
        mechanism=(
            "When a hop on the path (a tunnel, an uplink, the bridge) has a smaller MTU than "
            "the packets sent across it and the ICMP 'fragmentation needed' its router sends "
            "back is lost or blocked, the sender never learns to send smaller ones: small "
            "packets pass and large ones (EDNS answers, TLS handshakes) vanish."
        ),
        evidence=(
            "pattern: a DNS probe that allows large answers (edns=SIZE) times out while a "
            "smaller one from the same target to the same server gets answers",
            "pattern: the host control gets the same large answers (the narrow hop is between "
            "the host and the namespaces)",
            "counter: snmp.Icmp.OutDestUnreachs rises in the host namespace (its router answers "
            "what it cannot forward)",
            "fact: a link of the host namespace has a smaller MTU than the others",
            "fact: a bridge or veth MTU larger than the uplink's",
            "drop: the large answers dropped as PKT_TOO_BIG (ip_forward) on this host",
        ),
        scoring=(
            "Named when, for some target, a DNS probe offering an EDNS buffer above 512 bytes "
            "failed in at least half of at least 10 attempts, mostly by timeout, while one "
            "with a smaller buffer (or none) to the same server failed in at most 10 %, and "
            "Fisher's exact test gives p < 0.01 that failures did not depend on the probe. "
            "Confidence from that p, at most medium unless the host saw the narrow hop: the "
            "host control got the same large answers, snmp.Icmp.OutDestUnreachs rose in the "
            "host namespace, the kernel dropped the answers as PKT_TOO_BIG, or a host link has "
            "a smaller MTU than the others. It needs a "
            "large-answer probe beside a small one, e.g. --probe dns:SERVER/NAME/TXT/edns=4096."
        ),
        explanation=(
            "Large answers timed out while small ones from the same namespace to the same "
            "server got through: a hop on the path has a smaller MTU than those packets, and "
            "the ICMP 'fragmentation needed' that should have made the sender send smaller "
            "ones was lost or blocked."
        ),
        fix=(
            "let ICMP 'fragmentation needed' (type 3 code 4) through every firewall on the path "
            "so that path MTU discovery works, and make the MTUs on the path agree (the narrow "
            'hop: {link}; Docker: "mtu" in daemon.json); for DNS, an EDNS buffer of 1232 '
            "bytes keeps answers below any common MTU"
        ),
        doctor_why={
            "mtu-mismatch": (
                "Frames larger than the smallest MTU on the path are dropped silently when ICMP "
                "'fragmentation needed' is filtered: small packets (DNS over UDP) work, large "
                "ones (TLS, DNS over TCP) hang."
            ),
        },
        doctor_fix={
            "mtu-mismatch": (
                "netsleuth fix mtu {bridge}{netns_flag} --apply (sets the bridge and its ports to "
                'the smallest MTU on the path); Docker: "mtu" in daemon.json'
            ),
        },
        sources=("moby#20178", "moby#12565", "actions/runner#2966"),
    ),
    Cause(
        id="rp-filter",
        title="strict reverse-path filtering drops replies",
        mechanism=(
            "With rp_filter=1 (strict) the kernel drops a packet when the route back to its "
            "source leaves by another interface than the one it came in on. With asymmetric "
            "routes (two uplinks, policy routing, a return path that changes now and then) "
            "the replies that come back the other way are dropped, and counted in "
            "IPReversePathFilter."
        ),
        evidence=(
            "counter: netstat.TcpExt.IPReversePathFilter rises during the outages, and only then",
            "fact: rp_filter=1 in effect (the higher of all and the interface's own) on an "
            "interface of the host namespace",
            "fact: rp_filter=1 on an interface with asymmetric routes",
            "drop: the failed queries' answers dropped as IP_RPFILTER (ip_rcv_finish_core)",
        ),
        scoring=(
            "Two tests of IPReversePathFilter against the outages: how many independent outages "
            "came while it rose, and how many stretches of its rises came during an outage, "
            "each against the chance of that by accident (docs/report.md); the better p, "
            "doubled, must be below 0.01 with at least two outages met. Each rise is a packet "
            "the kernel dropped, so a record too short for that p still names the cause (low "
            "confidence) when every stretch of rises, at least two, came during an outage and "
            "at least half the outages came with a rise. The recorded rp_filter values are "
            "evidence and name the interface of the fix."
            " Kernel drops as IP_RPFILTER (answers linked to the failed queries by their "
            "reversed 5-tuple in two or more outages, or tied to the outages at p < 0.01) raise "
            "the confidence and name it without the counter."
        ),
        explanation=(
            "Replies arrived on an interface other than the one the route back to their source "
            "uses, and strict reverse-path filtering dropped them: the kernel counted such "
            "drops (IPReversePathFilter) during the outages."
        ),
        fix=(
            "use loose mode: netsleuth fix rp-filter {link}{netns_flag} --apply (rp_filter=2 "
            "now and in /etc/sysctl.d/); by hand sysctl -w net.ipv4.conf.{link}.rp_filter=2, "
            "with net.ipv4.conf.all.rp_filter at most 2 (the higher of the two applies); or "
            "make the routes symmetric"
        ),
        doctor_why={
            "rp-filter-strict-asymmetric": (
                "Strict reverse-path filtering drops packets that arrive on an interface other "
                "than the one the reply would leave by; with asymmetric routes some flows are "
                "dropped depending on the path."
            ),
        },
        doctor_fix={
            "rp-filter-strict-asymmetric": (
                "netsleuth fix rp-filter {bridge}{netns_flag} --apply (rp_filter=2, loose, now "
                "and on the host in /etc/sysctl.d/; `fix rp-filter all` for every interface)"
            ),
        },
        sources=("amazon-vpc-cni-k8s#75", "amazon-vpc-cni-k8s#1392"),
    ),
    Cause(
        id="resolver-unreachable",
        title="the namespaces' resolver cannot be reached from them",
        mechanism=(
            "A resolv.conf naming a loopback stub (127.0.0.53) or an address only the host can "
            "reach makes every lookup from the namespaces fail while the host's succeed."
        ),
        evidence=(
            "pattern: every query from a namespace to a nameserver of its resolv.conf fails, "
            "while the host control gets answers from its own resolver",
            "fact: that nameserver is a loopback address, or not one the host control reached",
            "outcome: refused at once (nothing listens there), unreachable (no route) or timeouts",
            "fact: the namespaces' resolv.conf names a loopback address",
            "drop: the queries dropped as NO_SOCKET (nothing listens on that port) in the "
            "namespace",
        ),
        scoring=(
            "Named when a namespace's DNS probes to a nameserver of its resolv.conf (as watch "
            "read it; probes given a server of their own do not count) failed in at least 90 % "
            "of at least 10 attempts, and that nameserver is a loopback address or not one the "
            "host control got answers from. Fisher's exact test of the namespace's failures "
            "against the host control's gives the p-value (below 0.01) and the confidence; "
            "without a control only a loopback address names it (low). A server the host "
            "reaches as well is a problem of the path, not of the address."
        ),
        explanation=(
            "Every lookup from the namespace went to a resolver address it cannot reach — a "
            "loopback stub that exists only on the host, or an address only the host can "
            "reach — while the host's own lookups got answers."
        ),
        fix=(
            "point {target} at a resolver it can reach: its own resolv.conf "
            '(/etc/netns/NAME/resolv.conf; Docker: --dns or "dns" in daemon.json) naming the '
            "upstream servers (those of /run/systemd/resolve/resolv.conf on a systemd-resolved "
            "host) or a resolver that listens on the bridge gateway"
        ),
        doctor_why={
            "resolver-loopback-unreachable": (
                "A loopback address is local to each network namespace: a resolver on the "
                "host's 127.0.0.53 does not exist inside this namespace, so its lookups time out "
                "(or wait for the next server each time)."
            ),
        },
        doctor_fix={
            "resolver-loopback-unreachable": (
                "give the namespace its own resolv.conf (/etc/netns/NAME/resolv.conf) naming a "
                "resolver it can reach, e.g. the bridge gateway or the upstream servers of "
                "/run/systemd/resolve/resolv.conf"
            ),
        },
        sources=("systemd#9450", "moby#38243", "moby#41859"),
    ),
    Cause(
        id="stale-conntrack-nat",
        title="conntrack entries without NAT, left by flooded queries, are reused by later ones",
        mechanism=(
            "With br_netfilter on, a frame the bridge floods (sent to a gateway MAC no port owns "
            "any more) passes netfilter as bridged traffic and gets a conntrack entry without "
            "NAT, since it was never routed. Unanswered, the entry lives for "
            "nf_conntrack_udp_timeout (30 s); a later query from the same source port matches "
            "it, is routed out untranslated, and its answer has no way back: single lost "
            "queries, seconds after the bridge's own outage ended."
        ),
        evidence=(
            "capture: a query leaves the uplink untranslated while others are NATed, within "
            "nf_conntrack_udp_timeout of an earlier query with the same addresses and ports "
            "that never left the bridge",
            "fact: conntrack lists [UNREPLIED] entries whose reply goes back to the client's "
            "own address",
            "counter: ct.unnated_unreplied above 0 while single queries are lost",
        ),
        scoring=(
            "Watch counts, once a second in every namespace with conntrack, the unanswered "
            "entries from a NATed bridge subnet that were not NATed (a filtered ctnetlink "
            "dump; level ct.unnated_unreplied, written when it changes). Named when short "
            "losses (3 failed probes or fewer) of the namespaces that no state explains fall "
            "inside the stretches in which such entries were present, 3 or more, more than the "
            "share of the record those stretches cover allows by chance (binomial test, "
            "p < 0.05). Beside a named bridge-mac-flap (whose flooded queries left the "
            "entries) both are named; it leads the verdict when its losses outnumber the "
            "outages the flap's state explains and its confidence is at least the flap's "
            "(a flap seen in many outages stays the verdict). Explain names it from a "
            "capture too."
        ),
        explanation=(
            "A query matched a conntrack entry without NAT that a flooded query from the same "
            "port had left, and left the host untranslated."
        ),
        fix=(
            "remove the flooding: pin the bridge's MAC (`netsleuth fix bridge "
            "{bridge}{netns_flag} --apply`, which also deletes the entries already left "
            "behind); otherwise they expire 30 s after the last flooded query"
        ),
        explain_why={
            "stale-conntrack-entry": (
                "With br_netfilter on (bridge-nf-call-iptables=1, as on every Docker host), a "
                "query the bridge floods — sent to a gateway MAC no port owns any more — passes "
                "netfilter as bridged traffic and gets a conntrack entry without NAT, since it "
                "was never routed. Unanswered, the entry lives 30 s (nf_conntrack_udp_timeout). "
                "A later query from the same source port matches it instead of a new entry, is "
                "routed out untranslated, and its answer has no way back: a single lost query, "
                "seconds after the outage itself ended. " + _UNNATED_CHECK + "."
            ),
        },
        scored=True,
    ),
    Cause(
        id="subnet-overlap",
        title="the subnet of {bridge} overlaps another route",
        mechanism=(
            "A bridge subnet that overlaps another route (a VPN, a second Docker network, a "
            "cloud route) splits its addresses: the longer prefix wins, so traffic for some "
            "hosts leaves through the wrong interface."
        ),
        evidence=("fact: a route other than the bridge's own covers part of its subnet",),
        scoring="Seen by doctor only so far.",
        explanation=(
            "Traffic for part of the bridge's subnet left through another interface whose route "
            "overlaps it."
        ),
        fix=(
            "renumber one side (Docker: 'bip' and 'default-address-pools' in daemon.json; a "
            "bridge: its address in the network configuration)"
        ),
        doctor_why={
            "subnet-overlap": (
                "Two routes cover the same addresses: depending on prefix length replies for "
                "some hosts leave through the wrong interface (a VPN or a second Docker network "
                "taking 172.17/16 is typical)."
            ),
        },
        scored=False,
    ),
    Cause(
        id="stp-forward-delay",
        title="STP on {bridge} holds every new port back for twice the forward delay",
        mechanism=(
            "With STP on, a new bridge port forwards only after the listening and learning "
            "states, each one forward delay long (15 s by default): the first packets of a "
            "container that just started, often its DNS lookups, are dropped."
        ),
        evidence=(
            "fact: stp_state 1 and a forward delay of 2 s or more on a bridge with veth/tap ports",
        ),
        scoring="Seen by doctor only so far.",
        explanation=(
            "A container's first packets were dropped while its bridge port was still listening "
            "and learning."
        ),
        fix="ip link set dev {bridge} type bridge stp_state 0 (or forward_delay 0)",
        doctor_why={
            "bridge-stp-delay": (
                "With STP a port forwards only after listening+learning (2 x {forward_delay} s): "
                "a container's first packets (often its DNS lookups) are dropped after each "
                "start."
            ),
        },
        scored=False,
    ),
    Cause(
        id="br-netfilter-off",
        title="bridged traffic bypasses iptables while Docker relies on it",
        mechanism=(
            "Docker's published ports reached from a container on the same bridge (hairpin NAT) "
            "and its inter-container rules work only when bridged frames pass iptables "
            "(br_netfilter loaded, net.bridge.bridge-nf-call-iptables=1); without it those "
            "connections time out."
        ),
        evidence=(
            "fact: dockerd runs and a bridge has ports, while bridge-nf-call-iptables is not 1 "
            "or br_netfilter is not loaded",
        ),
        scoring="Seen by doctor only so far.",
        explanation=(
            "Connections through a published port between containers on one bridge timed out: "
            "bridged frames bypassed iptables."
        ),
        fix=(
            "modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1 (persist in "
            "/etc/modules-load.d/)"
        ),
        doctor_why={
            "br-netfilter-mismatch": (
                "Docker's published ports between containers on one bridge (hairpin NAT) and its "
                "inter-container rules need bridged frames to pass iptables; without it those "
                "connections time out."
            ),
        },
        scored=False,
    ),
    Cause(
        id="unknown",
        title="no cause could be named",
        mechanism="",
        evidence=(),
        scoring="Shown when no catalogued cause is named.",
        scored=False,
        explanation=(
            "No recorded state lines up with the outages and no event class is significantly "
            "tied to them. The strongest candidates are listed; record longer or add targets "
            "to narrow it down."
        ),
        fix=(
            "keep `netsleuth watch` running (a control target in the host namespace is added "
            "by itself); run `netsleuth doctor` for known pitfalls"
        ),
    ),
    Cause(
        id="no-failures",
        title="no failures recorded",
        mechanism="",
        evidence=(),
        scoring="Shown when nothing failed.",
        scored=False,
        explanation="Nothing failed in the selected data.",
        fix="nothing to fix; record longer if failures are rare",
    ),
)

CAUSES: dict[str, Cause] = {c.id: c for c in _ALL}


_REGENERATE = (
    "python -c 'import netsleuth.causes as c; print(c.markdown(), end=\"\")' > docs/causes.md"
)


# What the docs show for each field: its name in capitals, a few as on the host.
_DOC_VALUES = {name: name.upper() for name in FIELDS} | {
    "netns_flag": "",
    "ip": "ip",
    "subject": "BRIDGE",
}


def _md(entry: Cause, text: str) -> str:
    return entry.render(text, **_DOC_VALUES)


def _md_findings(entry: Cause, heading: str, why: Mapping[str, str]) -> list[str]:
    if not why:
        return []
    lines = [f"{heading}:", ""]
    for rule in why:
        own_fix = entry.doctor_fix.get(rule) or entry.explain_fix.get(rule)
        fix = f" Fix: {_md(entry, own_fix)}" if own_fix else ""
        lines.append(f"- `{rule}`: {_md(entry, why[rule])}{fix}")
    return [*lines, ""]


def markdown() -> str:
    """The catalogue as Markdown: docs/causes.md is this text."""
    lines = [
        "# Causes",
        "",
        "Every cause of sporadic connectivity loss netsleuth knows: how it works, what",
        "shows it, how `netsleuth report` weighs that evidence, the fix, and the",
        "`netsleuth doctor` rules and `netsleuth explain` findings that bear on it, with",
        "what they say. Values filled in at run time are shown in capitals (`BRIDGE`,",
        "`SUBNET`).",
        "",
        "This file is generated from `src/netsleuth/causes.py`; after changing the",
        "catalogue, regenerate it:",
        "",
        f"    {_REGENERATE}",
        "",
        "| cause | title | scored by report | doctor rules | explain findings |",
        "|---|---|---|---|---|",
    ]
    for entry in _ALL:
        rules = ", ".join(f"`{r}`" for r in entry.doctor_rules)
        findings = ", ".join(f"`{f}`" for f in entry.explain_findings)
        scored = "yes" if entry.scored else "no"
        lines.append(
            f"| [{entry.id}](#{entry.id}) | {_md(entry, entry.title)} | {scored} | {rules} "
            f"| {findings} |"
        )
    for entry in _ALL:
        lines += ["", f"## {entry.id}", "", f"**{_md(entry, entry.title)}**", ""]
        if entry.mechanism:
            lines += [_md(entry, entry.mechanism), ""]
        if entry.evidence:
            lines += ["Evidence, strongest first:", ""]
            lines += [f"- {_md(entry, text)}" for text in entry.evidence]
            lines.append("")
        lines += [f"How it is scored: {_md(entry, entry.scoring)}", ""]
        if entry.scored:
            lines += [f"What the report says: {_md(entry, entry.explanation)}", ""]
        lines += [f"Fix: {_md(entry, entry.fix)}", ""]
        lines += _md_findings(entry, "Doctor rules", entry.doctor_why)
        lines += _md_findings(entry, "Explain findings", entry.explain_why)
        if entry.sources:
            lines += [f"Sources: {'; '.join(entry.sources)}.", ""]
        lines.pop()
    return "\n".join(lines) + "\n"
