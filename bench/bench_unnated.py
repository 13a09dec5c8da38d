"""Cost of one ``ct.unnated_unreplied`` sample with a full conntrack table.

Builds a namespace (``nsl-bunn-*``) and fills its conntrack table with N
entries through ctnetlink. ctnetlink makes them unreplied and untranslated
(it refuses to set SEEN_REPLY), so two reads bound the cost: the kernel
filter matching none of them (``translated()``: the walk of a table of
answered entries, the usual case) and matching all of them (``read()``:
every entry a candidate, the worst case). Both against the peer, a pyroute2
dump of the whole table (what :mod:`netsleuth.netns.conntrack` does), in the
same run. Needs root. ``python bench/bench_unnated.py --entries 10000``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import statistics
import subprocess
import time

from netsleuth import netns
from netsleuth.netns import Namespace
from netsleuth.netns.unnated import UnnatedReader


def _fill(n: int) -> None:
    """In the calling thread's namespace (pyroute2 opens its socket here)."""
    from pyroute2 import NFCTSocket
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

    ct = NFCTSocket()
    try:
        for i in range(n):
            host, port = divmod(i, 50_000)
            src = f"198.18.{host}.10"
            ct.entry(
                "add",
                timeout=600,
                tuple_orig=NFCTAttrTuple(
                    saddr=src, daddr="198.19.0.2", proto=17, sport=1024 + port, dport=53
                ),
                tuple_reply=NFCTAttrTuple(
                    saddr="198.19.0.2", daddr=src, proto=17, sport=53, dport=1024 + port
                ),
            )
    finally:
        ct.close()


def _full_dump() -> int:
    from pyroute2 import NFCTSocket

    ct = NFCTSocket(nfgen_family=socket.AF_INET)
    try:
        return sum(1 for _ in ct.dump())
    finally:
        ct.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    name = f"nsl-bunn-{secrets.token_hex(2)}"
    netns.create_owned(name)
    try:
        ns = Namespace.named(name)
        subprocess.run(
            netns.exec_argv(name, ["nft", "add table ip b; add chain ip b p "
                                   "{ type nat hook postrouting priority 100; }"]),
            check=True,
        )  # fmt: skip
        t = time.perf_counter()
        ns.run(lambda: _fill(args.entries))
        fill_s = time.perf_counter() - t

        def ours() -> tuple[list[float], list[float]]:
            reader = UnnatedReader()
            none, every = [], []
            for _ in range(args.rounds):
                c0 = time.perf_counter()
                reader.translated()
                none.append(time.perf_counter() - c0)
                c0 = time.perf_counter()
                reader.read()
                every.append(time.perf_counter() - c0)
            reader.close()
            return none, every

        def peer() -> list[float]:
            out = []
            for _ in range(max(3, args.rounds // 5)):
                c0 = time.perf_counter()
                _full_dump()
                out.append(time.perf_counter() - c0)
            return out

        (none, every), theirs = ns.run(ours), ns.run(peer)
        print(
            json.dumps(
                {
                    "entries": args.entries,
                    "fill_s": round(fill_s, 1),
                    "filtered_none_ms_median": round(1000 * statistics.median(none), 3),
                    "filtered_all_ms_median": round(1000 * statistics.median(every), 1),
                    "pyroute2_full_dump_ms_median": round(1000 * statistics.median(theirs), 1),
                }
            )
        )
    finally:
        netns.remove_owned(name)


if __name__ == "__main__":
    main()
