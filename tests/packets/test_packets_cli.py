"""`netsleuth explain` and `netsleuth capture` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netsleuth.cli import main
from netsleuth.cli.capture_cmd import parse_iface
from netsleuth.errors import InvalidArgument
from netsleuth.model import EventKind, Finding, MacChange, NetEvent, PortDetail, Severity
from netsleuth.packets.explain import Explanation
from netsleuth.packets.model import Fate, ReadStats
from netsleuth.packets.render import render_explanation
from netsleuth.store import Store, StoreWriter

FIXTURES = Path(__file__).parent.parent / "fixtures" / "packets"
GOLDEN = str(FIXTURES / "lab_churn.pcapng")


def test_explain_text_names_the_stale_gateway(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", GOLDEN]) == 0
    out = capsys.readouterr().out
    assert "238 DNS queries" in out
    assert "127   53.4 %  never-left-bridge" in out
    assert "CRITICAL stale-gateway" in out
    assert "127 queries to 02:00:00:00:00:01" in out
    assert "fix: pin the MAC" in out
    assert "queries (" not in out  # the per-query list only on request


def test_explain_text_keeps_long_mac_lists_short() -> None:
    macs = [f"02:00:00:00:00:{n:02x}" for n in range(1, 40)]
    finding = Finding(
        rule="stale-gateway",
        severity=Severity.CRITICAL,
        subject="br0",
        title="stale",
        evidence={
            "destination_macs": dict.fromkeys(macs, 2),
            "bridge_macs_then": macs[1:],
            "departed_ports": [],
        },
        why="why",
        fix="fix",
    )
    result = Explanation(
        files=(),
        stats=ReadStats(),
        interfaces=(),
        counts={str(v): 0 for v in Fate},
        journeys_total=0,
        stale_gateway=78,
        orphan_answers=0,
        journeys=(),
        findings=(finding,),
        seconds=0.0,
    )
    text = render_explanation(result, queries=None, limit=10)
    assert text.count(" queries to 02:") == 10
    assert "and to 29 more MACs (--json lists all)" in text
    bridge_line = next(line for line in text.splitlines() if "bridge MAC at" in line)
    assert bridge_line.count("02:00") == 10
    assert bridge_line.endswith("(+28 more, --json lists all)")


def test_explain_query_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", GOLDEN, "--queries", "--limit", "3"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "STALE-GATEWAY" in line]
    assert len(lines) == 3
    assert "queries (198, first 3):" in out
    assert main(["explain", GOLDEN, "--queries", "all", "--limit", "1000"]) == 0
    out = capsys.readouterr().out
    assert "queries (238):" in out


def test_explain_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", GOLDEN, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["journeys"] == 238
    assert doc["verdicts"]["never-left-bridge"] == 127
    assert doc["stale_gateway"] == 127
    assert doc["finding"]["rule"] == "stale-gateway"
    assert [i["role"] for i in doc["interfaces"]] == ["client", "bridge", "uplink"]
    stale = [q for q in doc["queries"] if q["verdict"] == "never-left-bridge"]
    assert len(stale) == 127
    assert all(
        q["mac"]["stale_gateway"] and q["mac"]["dst_mac"] == "02:00:00:00:00:01" for q in stale
    )


def test_explain_with_a_watch_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a store that says: vch1 (02:00:00:00:00:01) left the bridge just before the outage
    first = 1_795_543_363_412_205_673  # the first query that never left, in the golden file
    db = tmp_path / "w.sqlite"
    with Store(db, create=True) as store:
        run = store.begin_run("t", ["c0"], {})
    writer = StoreWriter(db, run)
    for ev in [
        NetEvent(
            first - 4_000_000_000,
            0,
            "host",
            EventKind.PORT_JOINED,
            "vch1",
            "labbr0",
            PortDetail("02:00:00:00:00:01"),
        ),
        NetEvent(
            first - 4_000_000_000,
            0,
            "host",
            EventKind.MAC_CHANGED,
            "labbr0",
            "",
            MacChange(old="8e:7e:8a:12:19:2b", new="02:00:00:00:00:01", kind="bridge"),
        ),
        NetEvent(
            first - 10_000_000,
            0,
            "host",
            EventKind.PORT_LEFT,
            "vch1",
            "labbr0",
            PortDetail("02:00:00:00:00:01"),
        ),
        NetEvent(
            first - 10_000_000,
            0,
            "host",
            EventKind.MAC_CHANGED,
            "labbr0",
            "",
            MacChange(old="02:00:00:00:00:01", new="8e:7e:8a:12:19:2b", kind="bridge"),
        ),
    ]:
        writer.put_event(ev)
    writer.close()
    assert main(["explain", GOLDEN, "--store", str(db), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    stale = [q for q in doc["queries"] if q["verdict"] == "never-left-bridge"]
    assert stale
    assert all(q["mac"]["bridge_mac_source"] == "store" for q in stale)
    assert all(q["mac"]["port"] == "vch1" and q["mac"]["port_owned"] is False for q in stale)
    assert doc["finding"]["evidence"]["departed_ports"] == ["vch1"]
    assert "labbr0" in doc["finding"]["fix"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "/nonexistent/x.pcap"], "does not exist"),
        (["explain", GOLDEN, "--gateway", "nope"], "not an IPv4 address"),
        (["explain", GOLDEN, "--bridge", "br0"], "give --store too"),
        (["explain", GOLDEN, "--store", "/nonexistent/s.sqlite"], "does not exist"),
        (["capture", "--iface", "a:b", "-w", "/dev/null"], "--duration"),
        (["capture", "--iface", "justone", "--count", "1", "-w", "/dev/null"], "NETNS:IFNAME"),
    ],
)
def test_user_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_parse_iface() -> None:
    spec = parse_iface("nsl-x-host:labbr0:bridge")
    assert (spec.netns, spec.ifname, spec.role) == ("nsl-x-host", "labbr0", "bridge")
    assert parse_iface("host:eth0").netns == ""
    with pytest.raises(InvalidArgument, match="ROLE"):
        parse_iface("ns:eth0:router")


def test_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("explain", "capture"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = capsys.readouterr().out
        assert "examples:" in out
