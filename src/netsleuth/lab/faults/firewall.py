"""Faults made with nftables: the NAT rule removed now and then
(``nat-missing``), a firewall reload that leaves the forward hook dropping
the bridge's traffic now and then (``forward-blocked``), and random packet
loss at the resolver (``upstream-dns``, an nftables drop rule: this kernel
has no netem). Each is a context manager; a periodic one owns its thread."""

from __future__ import annotations

import json
from types import TracebackType

from netsleuth.lab.background import BackgroundLoop
from netsleuth.lab.faults.periodic import PeriodicFault
from netsleuth.lab.topology import NFT_TABLE, LabTopology, nat_ruleset, nft_apply

__all__ = ["ForwardReload", "NatFlap", "UpstreamLoss", "reload_ruleset"]

LOSS_TABLE = "netsleuth_loss"
RELOAD_TABLE = "netsleuth_reload"


class NatFlap(BackgroundLoop):
    """Delete the lab's NAT table for ``off`` seconds every ``period`` seconds."""

    name = "lab-nat-flap"

    def __init__(self, topo: LabTopology, period: float = 6.0, off: float = 2.0) -> None:
        self.topo = topo
        self.period = period
        self.off = off
        self.flaps = 0
        super().__init__()

    def _run(self) -> None:
        delete = json.dumps(
            {"nftables": [{"delete": {"table": {"family": "ip", "name": NFT_TABLE}}}]}
        )
        while not self._stop.wait(self.period - self.off):
            nft_apply(self.topo.host_ns, delete)
            self.flaps += 1
            stopped = self._stop.wait(self.off)
            nft_apply(self.topo.host_ns, nat_ruleset(self.topo.uplink))
            if stopped:
                return


def reload_ruleset() -> str:
    """What a firewall manager's reload leaves on the forward hook when the
    container engine's accept rules are gone: a base chain with a drop
    policy and nothing that accepts the bridge. (Not even established
    flows: a fresh query may reuse the ports of an earlier one whose
    conntrack entry still lives, and a lone answer would split the outage.)"""
    rules = [
        {"add": {"table": {"family": "inet", "name": RELOAD_TABLE}}},
        {
            "add": {
                "chain": {
                    "family": "inet",
                    "table": RELOAD_TABLE,
                    "name": "forward",
                    "type": "filter",
                    "hook": "forward",
                    "prio": 0,
                    "policy": "drop",
                }
            }
        },
    ]
    return json.dumps({"nftables": rules})


class ForwardReload(PeriodicFault):
    """Now and then (``on`` s every ``period`` s) a reload installs a forward
    chain with a drop policy in the host namespace; the engine's rules come
    back when it is removed again. The NAT table is never touched."""

    name = "lab-forward-reload"

    def __init__(
        self, topo: LabTopology, duration: float, *, period: float = 7.0, on: float = 2.5
    ) -> None:
        self.topo = topo
        super().__init__(duration, period=period, on=on)

    def _on(self) -> None:
        nft_apply(self.topo.host_ns, reload_ruleset())

    def _off(self) -> None:
        delete = {"delete": {"table": {"family": "inet", "name": RELOAD_TABLE}}}
        nft_apply(self.topo.host_ns, json.dumps({"nftables": [delete]}))


class UpstreamLoss:
    """Drop ``percent`` % of the DNS packets arriving upstream, at random."""

    def __init__(self, topo: LabTopology, percent: int = 5) -> None:
        self.topo = topo
        self.percent = percent

    def __enter__(self) -> UpstreamLoss:
        rules = {
            "nftables": [
                {"add": {"table": {"family": "ip", "name": LOSS_TABLE}}},
                {
                    "add": {
                        "chain": {
                            "family": "ip",
                            "table": LOSS_TABLE,
                            "name": "input",
                            "type": "filter",
                            "hook": "input",
                            "prio": 0,
                            "policy": "accept",
                        }
                    }
                },
                {
                    "add": {
                        "rule": {
                            "family": "ip",
                            "table": LOSS_TABLE,
                            "chain": "input",
                            "expr": [
                                {
                                    "match": {
                                        "op": "==",
                                        "left": {"payload": {"protocol": "udp", "field": "dport"}},
                                        "right": 53,
                                    }
                                },
                                {
                                    "match": {
                                        "op": "<",
                                        "left": {
                                            "numgen": {"mode": "random", "mod": 100, "offset": 0}
                                        },
                                        "right": self.percent,
                                    }
                                },
                                {"drop": None},
                            ],
                        }
                    }
                },
            ]
        }
        nft_apply(self.topo.upstream_ns, json.dumps(rules))
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None  # the upstream namespace goes away with the lab
