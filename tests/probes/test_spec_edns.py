"""DNS probes with EDNS0 (``/edns=SIZE``): parsed, written back the same, and
sent with that UDP buffer size; texts without it are unchanged."""

from __future__ import annotations

import dns.message
import pytest

from netsleuth.errors import InvalidArgument
from netsleuth.probes.schedule import Schedule
from netsleuth.probes.spec import ProbeSpec, expand_dns_servers, parse_probe
from netsleuth.probes.worker import _Probe


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "dns:198.18.255.2/big.lab.test/TXT/edns=4096",
            ProbeSpec("dns", "big.lab.test", "198.18.255.2", "TXT", edns=4096),
        ),
        ("dns:big.lab.test/edns=1232", ProbeSpec("dns", "big.lab.test", "", "A", edns=1232)),
        ("dns:198.18.255.2/www.lab.test/A", ProbeSpec("dns", "www.lab.test", "198.18.255.2")),
    ],
)
def test_parse_and_round_trip(text: str, expected: ProbeSpec) -> None:
    spec = parse_probe(text)
    assert spec == expected
    assert parse_probe(spec.text) == spec


def test_old_texts_are_unchanged_and_expansion_keeps_the_option() -> None:
    assert parse_probe("dns:198.18.255.2/www.lab.test").text == "dns:198.18.255.2/www.lab.test/A"
    specs = expand_dns_servers(
        [parse_probe("dns:big.lab.test/TXT/edns=4096")], "nameserver 9.9.9.9\n"
    )
    assert [s.text for s in specs] == ["dns:9.9.9.9/big.lab.test/TXT/edns=4096"]


@pytest.mark.parametrize("size", ["100", "70000", "x", ""])
def test_bad_sizes_say_what_is_wrong(size: str) -> None:
    with pytest.raises(InvalidArgument, match="edns="):
        parse_probe(f"dns:1.2.3.4/name/TXT/edns={size}")


def test_the_query_offers_the_buffer_and_the_answer_fits_the_receive_buffer() -> None:
    def query(text: str) -> tuple[dns.message.Message, int]:
        probe = _Probe(0, parse_probe(text), Schedule(0, 1.0, 0.0))
        return dns.message.from_wire(b"\0\0" + probe.tail), probe.bufsize

    big, bufsize = query("dns:1.2.3.4/big.lab.test/TXT/edns=8192")
    assert (big.edns, big.payload, bufsize) == (0, 8192, 8192)
    plain, bufsize = query("dns:1.2.3.4/www.lab.test/A")
    assert (plain.edns, bufsize) == (-1, 4096)
