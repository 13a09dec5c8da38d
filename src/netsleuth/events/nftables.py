"""Firewall changes as ``nft monitor`` sees them, one subprocess per namespace.

Each JSON line (``{"add": {"rule": {...}}}``) becomes a ``firewall-changed``
event saying what changed and whether it touches NAT, so a MASQUERADE rule
that comes and goes is on the timeline.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable

from netsleuth import netns
from netsleuth.events.netlink import wall_mono
from netsleuth.model import EventKind, FirewallChange, NetEvent

__all__ = ["NftMonitor", "summarize"]

_NAT_WORDS = ("masquerade", "snat", "dnat", '"nat"')


def summarize(line: str) -> FirewallChange | None:
    """Pure: one ``nft -j monitor`` line -> event detail, or None to skip."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or not data:
        return None
    op, body = next(iter(data.items()))
    if (
        op not in ("add", "delete", "insert", "replace", "flush", "destroy")
        or not isinstance(body, dict)
        or not body
    ):
        return None
    obj, spec = next(iter(body.items()))
    spec = spec if isinstance(spec, dict) else {}
    parts = [str(spec[k]) for k in ("family", "table", "chain") if k in spec]
    if spec.get("name"):
        parts.append(str(spec["name"]))
    summary = f"{op} {obj} {'/'.join(parts)}".strip()
    return FirewallChange(str(op), str(obj), summary, any(w in line for w in _NAT_WORDS))


class NftMonitor:
    def __init__(
        self, label: str, netns_name: str | None, sink: Callable[[list[NetEvent]], None]
    ) -> None:
        self.label = label
        self.sink = sink
        nft = shutil.which("nft") or "/usr/sbin/nft"
        argv = netns.exec_argv(netns_name, [nft, "-j", "monitor", "ruleset"], die_with_parent=True)
        self._proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._run, name=f"nft:{label}", daemon=True)

    def start(self) -> NftMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(2)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._thread.join()

    def _run(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            detail = summarize(line)
            if detail is None:
                continue
            wall, mono = wall_mono()
            self.sink(
                [
                    NetEvent(
                        wall,
                        mono,
                        self.label,
                        EventKind.FIREWALL_CHANGED,
                        subject=detail.summary,
                        detail=detail,
                    )
                ]
            )
