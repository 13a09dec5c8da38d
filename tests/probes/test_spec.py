import pytest

from netsleuth.errors import InvalidArgument
from netsleuth.probes.spec import (
    ProbeSpec,
    expand_dns_servers,
    parse_probe,
    parse_resolv_conf,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dns:198.18.255.2/www.lab.test/A", ProbeSpec("dns", "www.lab.test", "198.18.255.2", "A")),
        ("dns:198.18.255.2/www.lab.test", ProbeSpec("dns", "www.lab.test", "198.18.255.2", "A")),
        ("dns:example.org/aaaa", ProbeSpec("dns", "example.org", "", "AAAA")),
        ("resolve:example.org", ProbeSpec("resolve", "example.org")),
        ("tcp:198.18.0.1:53", ProbeSpec("tcp", server="198.18.0.1", port=53)),
        ("icmp:198.18.0.1", ProbeSpec("icmp", server="198.18.0.1")),
    ],
)
def test_parse_valid(text: str, expected: ProbeSpec) -> None:
    assert parse_probe(text) == expected


def test_text_is_canonical_and_round_trips() -> None:
    spec = parse_probe("dns:198.18.255.2/www.lab.test")
    assert spec.text == "dns:198.18.255.2/www.lab.test/A"
    assert parse_probe(spec.text) == spec


@pytest.mark.parametrize(
    "text",
    [
        "dns",
        "dns:",
        "dns:1.2.3.4/name/NOPE",
        "tcp:1.2.3.4",
        "tcp:1.2.3.4:99999",
        "icmp:not-an-ip",
        "ftp:x",
        "dns:1.2.3.4/a/b/c",
    ],
)
def test_parse_invalid_says_what_is_wrong(text: str) -> None:
    with pytest.raises(InvalidArgument, match="probe"):
        parse_probe(text)


def test_resolv_conf_and_expansion_one_probe_per_server() -> None:
    conf = (
        "# comment\nsearch lab.test\nnameserver 198.18.255.2\nnameserver ::1\nnameserver 9.9.9.9\n"
    )
    assert parse_resolv_conf(conf) == ["198.18.255.2", "9.9.9.9"]
    specs = expand_dns_servers([parse_probe("dns:www.lab.test"), parse_probe("icmp:1.2.3.4")], conf)
    assert [s.text for s in specs] == [
        "dns:198.18.255.2/www.lab.test/A",
        "dns:9.9.9.9/www.lab.test/A",
        "icmp:1.2.3.4",
    ]
