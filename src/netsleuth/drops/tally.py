"""What ``netsleuth drops`` shows: drops counted by reason, location,
namespace and device (pure; the command feeds it and renders it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from netsleuth.drops.record import Drop

__all__ = ["DropTally", "Row"]


@dataclass(slots=True)
class Row:
    reason: str
    location: str
    netns: str
    netns_inode: int
    device: str
    count: int = 0
    first_ns: int = 0
    last_ns: int = 0
    example: str = ""  # the latest single drop's packet: "udp 10.0.0.2:4000 > 10.0.9.9:53"

    def to_json(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {
            "reason": self.reason,
            "location": self.location,
            "netns": self.netns,
            "netns_inode": self.netns_inode,
            "device": self.device,
            "count": self.count,
        }
        if self.example:
            out["example"] = self.example
        return out


def packet_text(drop: Drop) -> str:
    if not drop.saddr:
        return drop.proto
    if drop.sport or drop.dport:
        return f"{drop.proto} {drop.saddr}:{drop.sport} > {drop.daddr}:{drop.dport}"
    return f"{drop.proto} {drop.saddr} > {drop.daddr}"


class DropTally:
    def __init__(self, name_of: Callable[[int], str]) -> None:
        self.name_of = name_of
        self.rows: dict[tuple[str, str, int, str], Row] = {}
        self.reasons: Counter[str] = Counter()
        self.total = 0

    def add(self, drops: Iterable[Drop]) -> None:
        for drop in drops:
            row = self.rows.get(drop.key)
            if row is None:
                row = self.rows[drop.key] = Row(
                    drop.reason,
                    drop.location,
                    self.name_of(drop.netns),
                    drop.netns,
                    drop.ifname,
                    first_ns=drop.mono_ns,
                )
            row.count += drop.count
            row.last_ns = max(row.last_ns, drop.mono_ns)
            if drop.count == 1 and drop.saddr:
                row.example = packet_text(drop)
            self.reasons[drop.reason] += drop.count
            self.total += drop.count

    def top(self, n: int | None = None) -> list[Row]:
        rows = sorted(self.rows.values(), key=lambda r: (-r.count, r.reason, r.netns, r.device))
        return rows if n is None else rows[:n]
