"""Parse the firewall into the few facts the rules need: which sources are
masqueraded/SNATed, and which forward chains drop by default and what
they let through. Pure functions over ``nft -j list ruleset`` output and
``iptables-save`` text.

NAT rules are collected from every chain of a nat table (user chains such as
libvirt's or firewalld's are reached by jumps we do not follow). A forward
chain is walked in order, as the kernel does: an accept or a jump that names
an interface or a network covers it (we trust a conditional jump to accept
what it names, so Docker's ``-o docker0 -j DOCKER`` covers docker0); an
unconditional jump is followed into its chain (firewalld's zone dispatch);
the first unconditional accept, drop or reject ends the walk for everything
(rules after it are never reached). A chain whose policy is drop, or whose
walk ends in an unconditional drop or reject, drops what it did not accept.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Collection, Iterable
from typing import Any

from netsleuth.audit.snapshot import ForwardChain, NatRule

__all__ = [
    "forward_blocking",
    "forward_blocks",
    "nat_covering",
    "parse_iptables_save",
    "parse_nft_json",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_BUILTIN_TARGETS = {"ACCEPT", "DROP", "REJECT", "RETURN", "LOG", "MARK", "CONNMARK", "NFLOG"}


def _networks(right: Any) -> list[str]:
    """The networks of a match's right side: an address, a prefix, or a set of them."""
    if isinstance(right, str):
        return [right]
    if isinstance(right, dict) and "prefix" in right:
        p = right["prefix"]
        return [f"{p['addr']}/{p['len']}"]
    if isinstance(right, dict) and "set" in right:
        return [n for item in right["set"] for n in _networks(item)]
    return []


def _names(right: Any) -> list[str]:
    if isinstance(right, str):
        return [right]
    if isinstance(right, dict) and "set" in right:
        return [x for x in right["set"] if isinstance(x, str)]
    return []


# nft statements that neither match nor end a rule: a rule made of them and a
# verdict is unconditional. Anything else (limit, quota, xt, ...) counts as a
# condition, so an unknown expression never makes a rule look unconditional.
_NFT_STATEMENTS = {"counter", "log", "mangle", "notrack", "nflog"}


def _facts() -> dict[str, Any]:
    return {
        "saddr": "",
        "daddr": "",
        "nets": [],
        "iif": [],
        "oif": [],
        "oif_not": "",
        "verdict": "",
        "target": "",
        "conditions": 0,
    }


def _nft_verdict(e: dict[str, Any]) -> tuple[str, str] | None:
    """(verdict, jump target) of a verdict expression, else None."""
    if "accept" in e:
        return "accept", ""
    if "drop" in e or "reject" in e:
        return "drop", ""
    if "return" in e:
        return "return", ""
    for kind in ("jump", "goto"):
        if kind in e:
            target = e[kind].get("target", "") if isinstance(e[kind], dict) else ""
            return kind, target
    return None


def _nft_vmap(facts: dict[str, Any], vmap: dict[str, Any]) -> None:
    """``iifname vmap { "br0" : accept, ... }``: the keys that accept or jump
    count as covered (a conditional rule)."""
    facts["conditions"] += 1
    key = vmap.get("key", {})
    data = vmap.get("data", {})
    entries = data.get("set", []) if isinstance(data, dict) else []
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], dict)):
            continue
        verdict = _nft_verdict(entry[1])
        if verdict is None or verdict[0] not in ("accept", "jump", "goto"):
            continue
        if isinstance(key, dict) and "meta" in key:
            side = "oif" if key["meta"].get("key") in ("oifname", "oif") else "iif"
            facts[side] += _names(entry[0])
        elif isinstance(key, dict) and "payload" in key:
            facts["nets"] += _networks(entry[0])
    if any(facts[k] for k in ("iif", "oif", "nets")):
        facts["verdict"] = "jump"


def _nft_rule_facts(exprs: list[dict[str, Any]]) -> dict[str, Any]:
    facts = _facts()
    for e in exprs:
        verdict = _nft_verdict(e)
        if verdict is not None:
            facts["verdict"], facts["target"] = verdict
        elif "match" in e:
            m = e["match"]
            left, right, op = m.get("left", {}), m.get("right"), m.get("op", "==")
            facts["conditions"] += 1
            if isinstance(left, dict) and "payload" in left:
                field = left["payload"].get("field")
                if field in ("saddr", "daddr") and op in ("==", "in"):
                    nets = _networks(right)
                    facts[field] = nets[0] if len(nets) == 1 else ""
                    facts["nets"] += nets
            elif isinstance(left, dict) and "meta" in left:
                key = left["meta"].get("key")
                names = _names(right)
                if key in ("iifname", "iif") and op == "==":
                    facts["iif"] += names
                elif key in ("oifname", "oif") and op == "==":
                    facts["oif"] += names
                elif key in ("oifname", "oif") and op == "!=" and names:
                    facts["oif_not"] = names[0]
        elif "masquerade" in e:
            facts["verdict"] = "MASQUERADE"
        elif "snat" in e:
            facts["verdict"] = "SNAT"
        elif "vmap" in e:
            _nft_vmap(facts, e["vmap"])
        elif not set(e) & _NFT_STATEMENTS:
            facts["conditions"] += 1
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
    rules: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for item in items:
        if "rule" not in item:
            continue
        r = item["rule"]
        key = (r["family"], r["table"], r["chain"])
        facts = _nft_rule_facts(r.get("expr", []))
        rules.setdefault(key, []).append(facts)
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
    chains_out = []
    for key, c in chains.items():
        if c.get("hook") != "forward" or c.get("type", "filter") != "filter":
            continue
        table_rules = {k[2]: v for k, v in rules.items() if k[:2] == key[:2]}
        origin = f"nft {key[0]} {key[1]} {key[2]}"
        chains_out.append(_forward_chain(origin, c.get("policy", "accept"), table_rules, key[2]))
    return nat, chains_out


class _Walk:
    """What a walk of a forward chain (and the chains it jumps to) found."""

    def __init__(self) -> None:
        self.ifs: list[str] = []
        self.nets: list[str] = []
        self.end = ""  # "accept" or "drop" when a rule ended the chain for everything


def _walk(
    rules: dict[str, list[dict[str, Any]]], chain: str, walk: _Walk, seen: tuple[str, ...]
) -> None:
    """Follow ``chain`` in order: conditional accepts and jumps cover what
    they name; an unconditional jump is followed; an unconditional accept,
    drop or reject ends the walk for everything; an unconditional return
    (or the end of a chain jumped to) goes back to the caller."""
    if chain in seen or len(seen) > 16:
        return
    for facts in rules.get(chain, []):
        verdict, unconditional = facts["verdict"], facts["conditions"] == 0
        if verdict in ("accept", "jump", "goto") and not unconditional:
            walk.ifs += facts["iif"] + facts["oif"]
            walk.nets += facts["nets"]
        elif not unconditional:
            continue
        elif verdict in ("accept", "drop"):
            walk.end = verdict
            return
        elif verdict in ("jump", "goto"):
            _walk(rules, facts["target"], walk, (*seen, chain))
            if walk.end or verdict == "goto":
                return
        elif verdict == "return":
            return


def _forward_chain(
    origin: str, policy: str, rules: dict[str, list[dict[str, Any]]], base: str
) -> ForwardChain:
    walk = _Walk()
    _walk(rules, base, walk, ())
    return ForwardChain(
        origin=origin,
        policy=policy,
        accepts_ifnames=tuple(walk.ifs),
        accepts_networks=tuple(walk.nets),
        accepts_all=walk.end == "accept",
        drops_all=walk.end == "drop",
    )


def parse_iptables_save(text: str, label: str) -> tuple[list[NatRule], list[ForwardChain]]:
    table = ""
    nat: list[NatRule] = []
    policy: str | None = None
    rules: dict[str, list[dict[str, Any]]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":FORWARD ") and table == "filter":
            policy = line.split()[1]
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
            elif table == "filter":
                rules.setdefault(args[1], []).append(facts)
    chains = []
    if policy is not None:
        chains.append(_forward_chain(f"{label} filter FORWARD", policy, rules, "FORWARD"))
    return nat, chains


def _ipt_rule_facts(args: list[str]) -> dict[str, Any]:
    facts = _facts()
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
                facts["nets"].append(value)
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
            elif value in ("DROP", "REJECT"):
                facts["verdict"] = "drop"
            elif value == "RETURN":
                facts["verdict"] = "return"
            elif value not in _BUILTIN_TARGETS:
                facts["verdict"] = "goto" if arg in ("-g", "--goto") else "jump"
                facts["target"] = value
            i += 2
            # target options (--reject-with, --log-prefix) are not matches
            while i < len(args) and args[i].startswith("--"):
                i += 2
        elif arg in ("-m", "--match", "--comment"):
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


def forward_blocks(
    chains: Iterable[ForwardChain], bridge: str, net: IPNetwork
) -> list[tuple[ForwardChain, str]]:
    """Each forward chain that drops what it does not accept (drop policy,
    or an unconditional drop/reject) and accepts nothing of ``bridge`` or
    ``net`` before that, with how it drops."""
    blocked = []
    for chain in chains:
        if not chain.drops_by_default or chain.accepts_all:
            continue
        if bridge in chain.accepts_ifnames:
            continue
        if any(_overlaps(net, n) for n in chain.accepts_networks):
            continue
        how = "policy drop" if chain.policy.lower() == "drop" else "unconditional drop/reject"
        blocked.append((chain, how))
    return blocked


def forward_blocking(chains: Iterable[ForwardChain], bridge: str, net: IPNetwork) -> list[str]:
    """The origins of :func:`forward_blocks`."""
    return [chain.origin for chain, _ in forward_blocks(chains, bridge, net)]


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
