"""MAC derivation and parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netsleuth.errors import InvalidArgument
from netsleuth.fix import derive_mac, normalize_mac, read_machine_id

MID = "3d1219c7c4c5404aaa1f6d2a48adfda4"
_ifname = st.from_regex(r"[a-zA-Z0-9_.-]{1,15}", fullmatch=True)


@given(_ifname, st.from_regex(r"[0-9a-f]{32}", fullmatch=True))
def test_derived_mac_is_local_unicast_and_stable(bridge: str, machine_id: str) -> None:
    mac = derive_mac(bridge, machine_id)
    first = int(mac[:2], 16)
    assert first & 0x02 and not first & 0x01
    assert normalize_mac(mac) == mac == derive_mac(bridge, machine_id)


def test_derived_mac_depends_on_bridge_and_machine() -> None:
    assert derive_mac("br0", MID) != derive_mac("br1", MID)
    assert derive_mac("br0", MID) != derive_mac("br0", "0" * 31 + "1")


@pytest.mark.parametrize(
    ("text", "mac"),
    [("02:AA:bb:00:11:22", "02:aa:bb:00:11:22"), ("02-aa-bb-00-11-22", "02:aa:bb:00:11:22"),
     ("02aabb001122", "02:aa:bb:00:11:22")],
)  # fmt: skip
def test_normalize_mac(text: str, mac: str) -> None:
    assert normalize_mac(text) == mac


@pytest.mark.parametrize("bad", ["01:00:5e:00:00:01", "00:00:00:00:00:00", "02:aa:bb", "zz" * 6,
                                 "02:aa-bb:00:11:22"])  # fmt: skip
def test_normalize_mac_refuses(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        normalize_mac(bad)


def test_read_machine_id(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="--mac"):
        read_machine_id(tmp_path)
    (tmp_path / "machine-id").write_text(MID + "\n")
    assert read_machine_id(tmp_path) == MID
