"""Parse the firewall into the few facts the rules need: which sources are
masqueraded/SNATed, and which forward chains drop by default and what
they let through. Pure functions over ``nft -j list ruleset`` output and
``iptables-save`` text.

NAT rules are collected from every chain of a nat table (user chains such as
libvirt's or firewalld's are reached by jumps we do not follow); forward
coverage counts accept verdicts and jumps that name an interface or network.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Collection, Iterable
from typing import Any

from netsleuth.audit.snapshot import ForwardChain, NatRule

__all__ = ["forward_blocking", "nat_covering", "parse_iptables_save", "parse_nft_json"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_BUILTIN_TARGETS = {"ACCEPT", "DROP", "REJECT", "RETURN", "LOG", "MARK", "CONNMARK", "NFLOG"}


def _network(right: Any) -> str:
    if isinstance(right, str):
        return right
    if isinstance(right, dict) and "prefix" in right:
        p = right["prefix"]
        return f"{p['addr']}/{p['len']}"
    return ""


def _nft_rule_facts(exprs: list[dict[str, Any]]) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "saddr": "",
        "daddr": "",
        "iif": [],
        "oif": [],
        "oif_not": "",
        "verdict": "",
        "ct_only": True,
        "conditions": 0,
    }
    for e in exprs:
        if "match" in e:
            m = e["match"]
            left, right, op = m.get("left", {}), m.get("right"), m.get("op", "==")
            facts["conditions"] += 1
            if isinstance(left, dict) and "payload" in left:
                field = left["payload"].get("field")
                if field in ("saddr", "daddr") and op in ("==", "in"):
                    facts[field] = _network(right)
                facts["ct_only"] = False
            elif isinstance(left, dict) and "meta" in left:
                key = left["meta"].get("key")
                names = [right] if isinstance(right, str) else []
                if isinstance(right, dict) and "set" in right:
                    names = [x for x in right["set"] if isinstance(x, str)]
                if key in ("iifname", "iif") and op == "==":
                    facts["iif"] += names
                elif key in ("oifname", "oif") and op == "==":
                    facts["oif"] += names
                elif key in ("oifname", "oif") and op == "!=" and names:
                    facts["oif_not"] = names[0]
                facts["ct_only"] = False
            elif not (isinstance(left, dict) and "ct" in left):
                facts["ct_only"] = False
        elif "masquerade" in e:
            facts["verdict"] = "MASQUERADE"
        elif "snat" in e:
            facts["verdict"] = "SNAT"
        elif "accept" in e:
            facts["verdict"] = "accept"
        elif "jump" in e or "goto" in e:
            facts["verdict"] = "jump"
        elif "xt" in e:
            facts["conditions"] += 1
            facts["ct_only"] = False
    return facts


def parse_nft_json(doc: dict[str, Any]) -> tuple[list[NatRule], list[ForwardChain]]:
    items = doc.get("nftables", [])
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    nat_tables: set[tuple[str, str]] = set()
    for item in items:
        if "chain" in item:
            c = item["chain"]
            key = (c["family"], c["table"], c["name"])
            chains[key] = c
            if c.get("type") == "nat":
                nat_tables.add((c["family"], c["table"]))
    nat: list[NatRule] = []
    fwd: dict[tuple[str, str, str], dict[str, Any]] = {}
    for key, c in chains.items():
        if c.get("hook") == "forward" and c.get("type", "filter") == "filter":
            fwd[key] = {"policy": c.get("policy", "accept"), "ifs": [], "nets": [], "all": False}
    for item in items:
        if "rule" not in item:
            continue
        r = item["rule"]
        key = (r["family"], r["table"], r["chain"])
        facts = _nft_rule_facts(r.get("expr", []))
        origin = f"nft {r['family']} {r['table']} {r['chain']}"
        if facts["verdict"] in ("MASQUERADE", "SNAT") and (key[0], key[1]) in nat_tables:
            nat.append(
                NatRule(
                    origin=origin,
                    action=facts["verdict"],
                    source=facts["saddr"],
                    out=facts["oif"][0] if facts["oif"] else "",
                    out_not=facts["oif_not"],
                )
            )
        if key in fwd and facts["verdict"] in ("accept", "jump"):
            _cover(fwd[key], facts)
    chains_out = [
        ForwardChain(
            origin=f"nft {k[0]} {k[1]} {k[2]}",
            policy=v["policy"],
            accepts_ifnames=tuple(v["ifs"]),
            accepts_networks=tuple(v["nets"]),
            accepts_all=v["all"],
        )
        for k, v in fwd.items()
    ]
    return nat, chains_out


def _cover(chain: dict[str, Any], facts: dict[str, Any]) -> None:
    chain["ifs"] += facts["iif"] + facts["oif"]
    chain["nets"] += [n for n in (facts["saddr"], facts["daddr"]) if n]
    if facts["verdict"] == "accept" and facts["conditions"] == 0:
        chain["all"] = True


def parse_iptables_save(text: str, label: str) -> tuple[list[NatRule], list[ForwardChain]]:
    table = ""
    nat: list[NatRule] = []
    forward: dict[str, Any] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":FORWARD ") and table == "filter":
            forward = {"policy": line.split()[1], "ifs": [], "nets": [], "all": False}
        elif line.startswith("-A "):
            try:
                args = shlex.split(line)
            except ValueError:
                continue
            facts = _ipt_rule_facts(args[2:])
            if table == "nat" and facts["verdict"] in ("MASQUERADE", "SNAT"):
                nat.append(
                    NatRule(
                        origin=f"{label} nat {args[1]}",
                        action=facts["verdict"],
                        source=facts["saddr"],
                        out=facts["oif"][0] if facts["oif"] else "",
                        out_not=facts["oif_not"],
                    )
                )
            elif (
                table == "filter"
                and args[1] == "FORWARD"
                and forward is not None
                and facts["verdict"] in ("accept", "jump")
            ):
                _cover(forward, facts)
    chains = []
    if forward is not None:
        chains.append(
            ForwardChain(
                origin=f"{label} filter FORWARD",
                policy=forward["policy"],
                accepts_ifnames=tuple(forward["ifs"]),
                accepts_networks=tuple(forward["nets"]),
                accepts_all=forward["all"],
            )
        )
    return nat, chains


def _ipt_rule_facts(args: list[str]) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "saddr": "",
        "daddr": "",
        "iif": [],
        "oif": [],
        "oif_not": "",
        "verdict": "",
        "conditions": 0,
    }
    negate = False
    i = 0
    while i < len(args):
        arg = args[i]
        value = args[i + 1] if i + 1 < len(args) else ""
        if arg == "!":
            negate = True
            i += 1
            continue
        if arg in ("-s", "--source", "-d", "--destination"):
            if not negate:
                facts["saddr" if arg in ("-s", "--source") else "daddr"] = value
            facts["conditions"] += 1
            i += 2
        elif arg in ("-i", "--in-interface", "-o", "--out-interface"):
            out = arg in ("-o", "--out-interface")
            if negate and out:
                facts["oif_not"] = value
            elif not negate:
                facts["oif" if out else "iif"].append(value)
            facts["conditions"] += 1
            i += 2
        elif arg in ("-j", "--jump", "-g", "--goto"):
            if value in ("MASQUERADE", "SNAT"):
                facts["verdict"] = value
            elif value == "ACCEPT":
                facts["verdict"] = "accept"
            elif value not in _BUILTIN_TARGETS:
                facts["verdict"] = "jump"
            i += 2
        elif arg in ("-m", "--match"):
            i += 2
        elif arg.startswith("-"):
            facts["conditions"] += 1
            i += 2 if value and not value.startswith("-") else 1
        else:
            i += 1
        negate = False
    return facts


def nat_covering(
    rules: Iterable[NatRule], net: IPNetwork, bridge: str, egress: Collection[str]
) -> list[NatRule]:
    """The masquerade/SNAT rules that translate traffic from ``net`` (behind
    ``bridge``) leaving by one of the ``egress`` interfaces."""
    return [
        r
        for r in rules
        if (not r.source or _contains(r.source, net))
        and r.out != bridge
        and not (r.out and r.out not in egress)
    ]


def forward_blocking(chains: Iterable[ForwardChain], bridge: str, net: IPNetwork) -> list[str]:
    """Forward chains with a drop policy that let nothing of ``bridge`` through."""
    blocked = []
    for chain in chains:
        if chain.policy.lower() != "drop" or chain.accepts_all:
            continue
        if bridge in chain.accepts_ifnames:
            continue
        if any(_overlaps(net, n) for n in chain.accepts_networks):
            continue
        blocked.append(chain.origin)
    return blocked


def _overlaps(net: IPNetwork, text: str) -> bool:
    try:
        other = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return net.version == other.version and net.overlaps(other)


def _contains(source: str, net: IPNetwork) -> bool:
    try:
        src = ipaddress.ip_network(source, strict=False)
    except ValueError:
        return False
    return src.version == net.version and net.subnet_of(src)  # type: ignore[arg-type]
