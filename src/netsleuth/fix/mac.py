"""Stable MAC addresses for bridges, and MAC parsing.

:func:`derive_mac` gives the same locally-administered unicast MAC for the
same bridge name on the same machine (keyed by the machine id), like
systemd's ``MACAddressPolicy=persistent``: a reinstall that keeps the
machine id keeps the MAC.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from netsleuth.errors import InvalidArgument

__all__ = ["derive_mac", "normalize_mac", "read_machine_id"]

_MAC_RE = re.compile(r"^[0-9a-f]{2}([:-]?)(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}$")


def normalize_mac(text: str) -> str:
    """``AA-BB-..`` or ``aabb..`` → ``aa:bb:..``; refuse multicast and zero."""
    raw = text.strip().lower()
    if not _MAC_RE.match(raw):
        raise InvalidArgument(f"{text!r} is not a MAC address; write it as 02:11:22:33:44:55")
    digits = re.sub(r"[:-]", "", raw)
    mac = ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    if int(digits[:2], 16) & 1:
        raise InvalidArgument(f"{mac} is a multicast MAC; a bridge needs a unicast one")
    if digits == "0" * 12:
        raise InvalidArgument("00:00:00:00:00:00 cannot be a bridge MAC; use --mac auto")
    return mac


def read_machine_id(etc_root: Path = Path("/etc")) -> str:
    for path in (etc_root / "machine-id", etc_root.parent / "var/lib/dbus/machine-id"):
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        if re.fullmatch(r"[0-9a-f]{32}", value):
            return value
    raise InvalidArgument(
        f"no machine id in {etc_root / 'machine-id'}; pass an explicit --mac 02:XX:XX:XX:XX:XX"
    )


def derive_mac(bridge: str, machine_id: str) -> str:
    """Locally administered (bit 1 set), unicast (bit 0 clear), never zero."""
    digest = hmac.new(
        machine_id.encode(), b"netsleuth bridge mac\0" + bridge.encode(), hashlib.sha256
    ).digest()
    octets = bytearray(digest[:6])
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in octets)
