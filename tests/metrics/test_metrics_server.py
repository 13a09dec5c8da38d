"""The endpoint for real: a loopback HTTP server scraped with urllib."""

from __future__ import annotations

import socket
import threading
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from netsleuth.errors import InvalidArgument, NetsleuthError
from netsleuth.metrics import DEFAULT_ADDR, WatchMetrics, parse_addr, serve
from netsleuth.model import Outcome, ProbeResult


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_scrape_over_http_on_an_ephemeral_loopback_port() -> None:
    metrics = WatchMetrics()
    metrics.observe_batch(
        [ProbeResult(1, 1, "c1", "dns", "198.18.0.1", Outcome.TIMEOUT)] * 3
        + [ProbeResult(1, 1, "c1", "dns", "198.18.0.1", Outcome.OK, 250_000)]
    )
    with serve("127.0.0.1:0", metrics.registry) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        samples = scrape(server.url)
        metrics.observe_batch([ProbeResult(2, 2, "c1", "dns", "198.18.0.1", Outcome.TIMEOUT)])
        again = scrape(server.url)

    def timeouts(s: dict[str, list[tuple[dict[str, str], float]]]) -> float:
        return next(
            v for labels, v in s["netsleuth_probe_attempts_total"] if labels["outcome"] == "timeout"
        )

    assert timeouts(samples) == 3
    assert timeouts(again) == 4
    assert samples["netsleuth_build_info"][0][1] == 1
    assert "process_cpu_seconds_total" in samples


def test_close_joins_the_thread_and_frees_the_port() -> None:
    before = threading.active_count()
    server = serve("127.0.0.1:0", WatchMetrics().registry)
    port = server.port
    server.close()
    assert threading.active_count() == before
    with socket.socket() as sock:  # the port can be bound again at once
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    try:
        server = serve("[::1]:0", WatchMetrics().registry)
    except NetsleuthError as exc:
        pytest.skip(f"::1 not configured: {exc}")
    with server:
        assert server.url.startswith("http://[::1]:")
        assert "netsleuth_build_info" in scrape(server.url)


def test_used_port_is_a_one_line_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(NetsleuthError, match="already in use; pick another port") as info:
            serve(f"127.0.0.1:{port}", WatchMetrics().registry)
    assert "\n" not in str(info.value)


def test_address_not_on_this_host() -> None:
    with pytest.raises(NetsleuthError, match="no interface of this host has the address"):
        serve("198.18.254.254:0", WatchMetrics().registry)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DEFAULT_ADDR, ("127.0.0.1", 9477)),
        ("[::1]:9477", ("::1", 9477)),
        ("localhost:0", ("localhost", 0)),
        (" 0.0.0.0:9100 ", ("0.0.0.0", 9100)),
    ],
)
def test_parse_addr(text: str, expected: tuple[str, int]) -> None:
    assert parse_addr(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9477", "give HOST:PORT"),
        (":9477", "name the host"),
        ("127.0.0.1:http", "use a number from 0 to 65535"),
        ("127.0.0.1:70000", "use a number from 0 to 65535"),
        ("::1:9477", "give HOST:PORT"),
        ("[::1]9477", "give HOST:PORT"),
        ("no-such-host.invalid:9477", "cannot resolve"),
    ],
)
def test_bad_addresses(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        serve(text, WatchMetrics().registry)
