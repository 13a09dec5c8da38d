"""The ``skb:kfree_skb`` tracepoint as the running kernel describes it.

Since 5.17 every ``kfree_skb_reason()`` carries an ``enum skb_drop_reason``;
the tracepoint's ``format`` file names its fields (6.x: ``skbaddr``,
``location``, ``rx_sk`` from 6.11, ``protocol``, ``reason``) and maps the
enum's numbers to names in the ``__print_symbolic(REC->reason, {N, "NAME"},
...)`` of its print format. The numbers move between kernel versions (new
reasons are inserted, the list was reordered): a reason is only ever known
by the name this file gives its number here, never from a fixed table.

Some "reasons" are not drops: ``NOT_DROPPED_YET`` and ``CONSUMED`` (a packet
delivered, on kernels that trace it here) and ``NOT_SPECIFIED`` (the generic
``kfree_skb()``, called on many paths that lose nothing). They are left out
unless asked for (:data:`NOISE`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NOISE", "TracepointFormat", "parse_format", "read_format"]

NOISE = frozenset({"NOT_DROPPED_YET", "CONSUMED", "NOT_SPECIFIED"})
"""Reason names that are not a lost packet (or say nothing): filtered out by default."""

_FIELD = re.compile(r"field:(?P<decl>[^;]+);")
_SYMBOL = re.compile(r'\{\s*(-?\d+|0x[0-9a-fA-F]+)\s*,\s*"([^"]*)"\s*\}')


@dataclass(frozen=True, slots=True)
class TracepointFormat:
    """What ``events/skb/kfree_skb/format`` says: the event's ID, its field
    names, and reason number → name (empty on a kernel without reasons)."""

    id: int | None = None
    fields: tuple[str, ...] = ()
    reasons: Mapping[int, str] = field(default_factory=dict)

    @property
    def has_reason(self) -> bool:
        return "reason" in self.fields and bool(self.reasons)

    def name(self, code: int) -> str:
        """The name of reason ``code``; a number the table lacks stays a number."""
        return self.reasons.get(code, f"REASON_{code}")

    def codes(self, names: Iterable[str]) -> frozenset[int]:
        """The numbers of those reason names this kernel has."""
        wanted = set(names)
        return frozenset(code for code, name in self.reasons.items() if name in wanted)

    def noise_codes(self) -> frozenset[int]:
        return self.codes(NOISE)


def parse_format(text: str) -> TracepointFormat:
    """Parse a tracepoint ``format`` file (pure; any kernel version).

    The reason table is the ``__print_symbolic`` applied to ``REC->reason``
    in the ``print fmt`` line; a kernel whose event has no ``reason`` field
    (before 5.17) gives an empty table.
    """
    ident = None
    fields: list[str] = []
    print_fmt = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("ID:"):
            try:
                ident = int(stripped[3:].strip())
            except ValueError:
                ident = None
        elif stripped.startswith("field:"):
            match = _FIELD.match(stripped)
            if match:
                decl = match.group("decl").strip()
                name = re.sub(r"\[.*\]$", "", decl.split()[-1]).lstrip("*")
                if not name.startswith("common_"):
                    fields.append(name)
        elif stripped.startswith("print fmt:"):
            print_fmt = stripped
    reasons: dict[int, str] = {}
    if "reason" in fields:
        start = print_fmt.find("__print_symbolic(REC->reason")
        if start >= 0:
            depth, end = 0, len(print_fmt)
            for i in range(start + len("__print_symbolic"), len(print_fmt)):
                ch = print_fmt[i]
                if ch == "(":
                    depth += 1
                elif ch == ")":
                    depth -= 1
                    if depth == 0:
                        end = i
                        break
            for num, name in _SYMBOL.findall(print_fmt[start:end]):
                reasons[int(num, 0)] = name
    return TracepointFormat(ident, tuple(fields), reasons)


def read_format(tracefs: Path) -> TracepointFormat:
    """The running kernel's format (raises OSError when it cannot be read)."""
    return parse_format((tracefs / "events" / "skb" / "kfree_skb" / "format").read_text())
