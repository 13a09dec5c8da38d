"""Faults made with nftables: the NAT rule removed now and then
(``nat-missing``), and random packet loss at the resolver (``upstream-dns``,
an nftables drop rule: this kernel has no netem). Each is a context manager;
a periodic one owns its thread."""

from __future__ import annotations

import json
from types import TracebackType

from netsleuth.lab.background import BackgroundLoop
from netsleuth.lab.topology import NFT_TABLE, LabTopology, nat_ruleset, nft_apply

__all__ = ["NatFlap", "UpstreamLoss"]

LOSS_TABLE = "netsleuth_loss"


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
