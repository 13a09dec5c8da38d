"""`explain` names the kernel drop that ended each lost query: a synthetic
capture (frames built by netsleuth_testing.frames) plus a synthetic drops
sidecar or watch store, read as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from netsleuth.cli import main
from netsleuth.model import DropDetail, EventKind, NetEvent, NoteDetail, PortDetail
from netsleuth.packets.drops import (
    DropLog,
    RecordedDrop,
    attribute_drops,
    read_sidecar,
    sidecar_path,
)
from netsleuth.packets.explain import explain
from netsleuth.packets.model import Fate
from netsleuth.packets.writer import PcapngWriter
from netsleuth.store import Store, StoreWriter
from netsleuth_testing.frames import dns_frame

CLIENT, GW, NAT, SERVER = "198.18.0.10", "198.18.0.1", "198.18.255.1", "198.18.255.2"
CMAC, BMAC, UMAC, SMAC = (
    "02:aa:00:00:00:10",
    "be:00:00:00:00:01",
    "02:bb:00:00:00:01",
    "02:cc:00:00:00:02",
)
GONE = "02:00:00:00:00:01"  # a departed port's MAC
T0 = 1_800_000_000_000_000_000
MS = 1_000_000
SPORT = 40000  # one resolver socket: every query has the same 5-tuple
NATPORT = 61000
PORT, BRIDGE, UPLINK = 0, 1, 2
NS = "lab-host"


def _q(dns_id: int, *, src: str = CLIENT, sport: int = SPORT, dmac: str = BMAC) -> bytes:
    ttl = 64 if src == CLIENT else 63  # the NATed copy was routed
    return dns_frame(
        CMAC, dmac, src, SERVER, sport=sport, dport=53, dns_id=dns_id, qname="a.t", ttl=ttl
    )


def _r(dns_id: int, *, dst: str = CLIENT, dport: int = SPORT) -> bytes:
    return dns_frame(
        SMAC, CMAC, SERVER, dst, sport=53, dport=dport, dns_id=dns_id, qname="a.t", response=True
    )


def build_capture(path: Path) -> dict[str, int]:
    """A lab-like capture: port (client), bridge, uplink (NAT to NAT:NATPORT).

    Queries every 50 ms from one socket; ids 1, 3, 6 never leave (sent to a
    departed MAC), id 5 is NATed out and never answered, id 7 is answered
    upstream but its answer never reaches the port; the rest are answered.
    Returns when each query was (last) seen."""
    seen: dict[str, int] = {}
    frames: list[tuple[int, int, bytes]] = []
    for n in range(10):
        t = T0 + n * 50 * MS
        if n in (1, 3, 6):
            frames.append((t, PORT, _q(n, dmac=GONE)))
            seen[f"q{n}"] = t
            continue
        frames.append((t, PORT, _q(n)))
        frames.append((t + 20_000, BRIDGE, _q(n)))
        frames.append((t + 40_000, UPLINK, _q(n, src=NAT, sport=NATPORT)))
        seen[f"q{n}"] = t + 40_000
        if n == 5:
            continue
        frames.append((t + 2 * MS, UPLINK, _r(n, dst=NAT, dport=NATPORT)))
        seen[f"r{n}"] = t + 2 * MS
        if n == 7:
            continue
        frames.append((t + 2 * MS + 30_000, PORT, _r(n)))
    frames.sort(key=lambda f: f[0])
    with path.open("wb") as fh:
        w = PcapngWriter(fh)
        w.add_interface("vc0", NS, "client")
        w.add_interface("labbr0", NS, "bridge")
        w.add_interface("uplink0", NS, "uplink")
        for ts, iface, frame in frames:
            w.write(iface, ts, frame)
    return seen


def drop_row(ts: int, reason: str, location: str, device: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kind": "drop",
        "wall_ns": ts,
        "mono_ns": ts - T0,
        "reason": reason,
        "location": location,
        "netns": kw.pop("netns", NS),
        "netns_inode": 4026532000,
        "device": device,
        "count": kw.pop("count", 1),
    }
    row.update(kw)
    return row


def q_tuple(src: str = CLIENT, sport: int = SPORT) -> dict[str, Any]:
    return {"proto": "udp", "saddr": src, "daddr": SERVER, "sport": sport, "dport": 53}


def write_sidecar(path: Path, rows: list[dict[str, Any]], *, since: int, until: int) -> None:
    lines = [
        {
            "kind": "recording",
            "version": 1,
            "since_ns": since,
            "mechanism": "bpftrace",
            "summary": "drops via bpftrace on skb:kfree_skb",
            "wall_offset_ns": T0,
        },
        *rows,
        {"kind": "end", "until_ns": until, "lost": 0, "wall_offset_ns": T0},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def standard_drops(seen: dict[str, int]) -> list[dict[str, Any]]:
    """q1 and q6: NO_TX_TARGET on the port; q3: none; q5: NO_SOCKET upstream
    on the translated tuple; r7: the answer, dropped after the reverse NAT."""
    return [
        drop_row(seen["q1"] + 30_000, "NO_TX_TARGET", "br_flood", "vc0", **q_tuple()),
        drop_row(seen["q6"] + 25_000, "NO_TX_TARGET", "br_flood", "vc0", **q_tuple()),
        drop_row(
            seen["q5"] + 300_000,
            "NO_SOCKET",
            "__udp4_lib_rcv",
            "up0",
            netns="lab-upstream",
            **q_tuple(NAT, NATPORT),
        ),
        drop_row(
            seen["r7"] + 50_000,
            "NETFILTER_DROP",
            "nft_do_chain",
            "labbr0",
            proto="udp",
            saddr=SERVER,
            daddr=CLIENT,
            sport=53,
            dport=SPORT,
        ),
        # another flow's drop, and an ARP drop without addresses: neither is any query's
        drop_row(seen["q3"] + 10_000, "NO_SOCKET", "__udp4_lib_rcv", "vc0", **q_tuple(sport=9)),
        drop_row(seen["q3"] + 10_000, "OTHERHOST", "ip_rcv_core", "vc0", proto="arp"),
    ]


@pytest.fixture
def capture_with_drops(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    cap = tmp_path / "lab.pcapng"
    seen = build_capture(cap)
    write_sidecar(
        sidecar_path(cap), standard_drops(seen), since=T0 - 1000 * MS, until=T0 + 2000 * MS
    )
    return cap, seen


def by_id(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {q["dns_id"]: q for q in doc["queries"]}


def test_sidecar_is_next_to_the_capture() -> None:
    assert sidecar_path("/x/lab.pcapng") == Path("/x/lab.drops.jsonl")
    assert sidecar_path("out") == Path("out.drops.jsonl")


def test_explain_names_reason_and_function_per_lost_query(
    capture_with_drops: tuple[Path, dict[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    cap, _seen = capture_with_drops
    assert main(["explain", str(cap), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdicts"]["never-left-bridge"] == 3
    q = by_id(doc)
    for n in (1, 6):
        assert q[n]["verdict"] == "never-left-bridge"
        d = q[n]["drop"]
        assert d["status"] == "dropped" and d["packet"] == "query" and not d["translated"]
        assert (d["drop"]["reason"], d["drop"]["location"], d["drop"]["device"]) == (
            "NO_TX_TARGET",
            "br_flood",
            "vc0",
        )
        assert 0 < d["delay_ns"] < MS
        assert d["text"] == f"dropped as NO_TX_TARGET by br_flood on vc0 ({NS})"
    # q3 never left, and the recording ran: nothing of its tuple was dropped
    assert q[3]["drop"]["status"] == "none"
    assert q[3]["drop"]["text"] == "no drop was recorded for it"
    assert q[5]["verdict"] == "nat-unanswered"
    assert q[5]["drop"]["translated"] and q[5]["drop"]["drop"]["reason"] == "NO_SOCKET"
    assert q[5]["drop"]["text"] == (
        "dropped after NAT as NO_SOCKET by __udp4_lib_rcv on up0 (lab-upstream)"
    )
    assert q[7]["verdict"] == "lost-on-return"
    assert q[7]["drop"]["packet"] == "answer"
    assert q[7]["drop"]["text"].startswith("its answer was dropped as NETFILTER_DROP")
    summary = doc["drops"]
    assert summary["recorded"] and summary["lost_queries"] == 5
    assert (summary["covered"], summary["dropped"], summary["no_drop_recorded"]) == (5, 4, 1)
    assert summary["reasons"] == {"NO_TX_TARGET": 2, "NO_SOCKET": 1, "NETFILTER_DROP": 1}
    assert summary["by_reason"][0] == {
        "reason": "NO_TX_TARGET",
        "location": "br_flood",
        "device": "vc0",
        "netns": NS,
        "queries": 2,
    }
    assert summary["sources"] == [str(sidecar_path(cap))]


def test_explain_text_summary_and_query_lines(
    capture_with_drops: tuple[Path, dict[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    cap, _seen = capture_with_drops
    assert main(["explain", str(cap), "--queries"]) == 0
    out = capsys.readouterr().out
    assert "4 of 5 lost queries were dropped by the kernel:" in out
    assert f"       2  NO_TX_TARGET by br_flood on vc0 ({NS})" in out
    assert "       1  no drop was recorded for them" in out
    lines = [line for line in out.splitlines() if "id 1 " in line or "id 3 " in line]
    assert lines[0].endswith(f"; dropped as NO_TX_TARGET by br_flood on vc0 ({NS})")
    assert lines[1].endswith("; no drop was recorded for it")


def test_a_query_without_its_drop_does_not_take_the_next_ones(tmp_path: Path) -> None:
    # q1 and q3 have the same 5-tuple; only q3's drop was recorded
    cap = tmp_path / "c.pcapng"
    seen = build_capture(cap)
    row = drop_row(seen["q3"] + 30_000, "OTHERHOST", "ip_rcv_core", "labbr0", **q_tuple())
    log = DropLog(
        drops=(RecordedDrop.from_json(row),),
        spans=((T0 - 1000 * MS, T0 + 2000 * MS),),
        mechanisms=("bpftrace",),
    )
    e = explain([cap], drops=log)
    assert e.drops is not None
    status = {
        j.dns_id: m.status
        for j, m in zip(e.journeys, e.drops.matches, strict=True)
        if m is not None
    }
    assert status[1] == "none" and status[3] == "dropped" and status[6] == "none"


def test_clock_tolerance_and_window(tmp_path: Path) -> None:
    cap = tmp_path / "c.pcapng"
    seen = build_capture(cap)
    e = explain([cap])
    span = ((T0 - 1000 * MS, T0 + 20_000 * MS),)

    def status_of(offset_ns: int) -> str:
        row = drop_row(seen["q6"] + offset_ns, "NEIGH_FAILED", "neigh_invalidate", "", **q_tuple())
        log = DropLog(drops=(RecordedDrop.from_json(row),), spans=span)
        report = attribute_drops(e.journeys, log)
        j = next(i for i, j in enumerate(e.journeys) if j.dns_id == 6)
        m = report.matches[j]
        assert m is not None
        return m.status

    assert status_of(-2 * MS) == "dropped"  # within the clock tolerance
    assert status_of(3_000 * MS) == "dropped"  # a neighbour that never answered: ~3 s
    assert status_of(-20 * MS) == "none"  # before the packet was seen: not its drop
    assert status_of(5_000 * MS) == "none"  # too late


def test_outside_the_recording_nothing_is_said(tmp_path: Path) -> None:
    cap = tmp_path / "lab.pcapng"
    seen = build_capture(cap)
    # recording began after q3 and q5: those are not covered
    rows = [drop_row(seen["q6"] + 30_000, "NO_TX_TARGET", "br_flood", "vc0", **q_tuple())]
    write_sidecar(sidecar_path(cap), rows, since=seen["q5"] + MS, until=T0 + 2000 * MS)
    e = explain([cap], drops=read_sidecar(sidecar_path(cap)))
    assert e.drops is not None
    m = {j.dns_id: m for j, m in zip(e.journeys, e.drops.matches, strict=True)}
    assert m[1] is None and m[3] is None and m[5] is None  # no "no drop was recorded"
    assert m[6] is not None and m[6].status == "dropped"
    assert m[7] is not None and m[7].status == "none"
    assert (e.drops.lost_queries, e.drops.covered, e.drops.dropped) == (5, 2, 1)


def test_aggregates_without_addresses_make_no_false_none(tmp_path: Path) -> None:
    cap = tmp_path / "lab.pcapng"
    seen = build_capture(cap)
    rows = [drop_row(seen["q3"] + 200 * MS, "NO_TX_TARGET", "br_flood", "vc0", count=250)]
    write_sidecar(sidecar_path(cap), rows, since=T0 - MS, until=T0 + 2000 * MS)
    e = explain([cap], drops=read_sidecar(sidecar_path(cap)))
    assert e.drops is not None
    m = {j.dns_id: m for j, m in zip(e.journeys, e.drops.matches, strict=True)}
    assert m[3] is not None and m[3].status == "unmatched"
    assert m[3].nearby == (("NO_TX_TARGET", "br_flood", 250),)
    assert "no drop with its addresses" in m[3].sentence


def test_no_drops_file_says_why_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cap = tmp_path / "plain.pcapng"
    build_capture(cap)
    assert main(["explain", str(cap), "--queries"]) == 0
    out = capsys.readouterr().out
    assert out.count("kernel drops:") == 1
    assert "kernel drops: none recorded with this capture (no plain.drops.jsonl" in out
    assert "dropped as" not in out and "no drop was recorded" not in out
    assert main(["explain", str(cap), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["drops"]["recorded"] is False
    assert all(q["drop"] is None for q in doc["queries"])


def test_unavailable_source_says_why_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cap = tmp_path / "lab.pcapng"
    build_capture(cap)
    why = "kernel drop reasons unavailable: no permission: tracing drops needs root"
    sidecar_path(cap).write_text(json.dumps({"kind": "unavailable", "reason": why}) + "\n")
    assert main(["explain", str(cap), "--queries"]) == 0
    out = capsys.readouterr().out
    assert out.count("kernel drops:") == 1
    assert f"kernel drops: not recorded ({why})" in out
    assert "no drop was recorded" not in out


def test_drops_file_option_and_damage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cap = tmp_path / "lab.pcapng"
    seen = build_capture(cap)
    other = tmp_path / "elsewhere.jsonl"
    write_sidecar(other, standard_drops(seen), since=T0 - MS, until=T0 + 2000 * MS)
    with other.open("a") as fh:
        fh.write('{"kind": "drop", "wall_ns": \n')  # a torn last line
    log = read_sidecar(other)
    assert len(log.drops) == 6 and any("1 damaged line" in w for w in log.warnings)
    assert main(["explain", str(cap), "--drops", str(other), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["drops"]["dropped"] == 4
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n")
    assert main(["explain", str(cap), "--drops", str(junk)]) != 0
    err = capsys.readouterr().err
    assert "is not a drops file" in err and err.count("\n") == 1
    assert main(["explain", str(cap), "--drops", str(tmp_path / "none.jsonl")]) != 0
    assert "cannot read drops file" in capsys.readouterr().err


def test_a_killed_recording_counts_up_to_its_last_drop(tmp_path: Path) -> None:
    cap = tmp_path / "lab.pcapng"
    seen = build_capture(cap)
    rows = [
        {"kind": "recording", "since_ns": T0 - MS, "mechanism": "bpftrace", "wall_offset_ns": 0},
        drop_row(seen["q1"] + 30_000, "NO_TX_TARGET", "br_flood", "vc0", **q_tuple()),
    ]
    sidecar_path(cap).write_text("".join(json.dumps(r) + "\n" for r in rows))
    e = explain([cap], drops=read_sidecar(sidecar_path(cap)))
    assert e.drops is not None
    m = {j.dns_id: m for j, m in zip(e.journeys, e.drops.matches, strict=True)}
    assert m[1] is not None and m[1].status == "dropped"
    assert m[3] is None  # after the last thing the killed recording wrote: not covered
    assert any("no end" in w for w in e.drops.warnings)


def test_drops_from_a_watch_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cap = tmp_path / "lab.pcapng"
    seen = build_capture(cap)
    db = tmp_path / "w.sqlite"
    with Store(db, create=True) as store:
        run = store.begin_run("t", ["c0"], {})
    writer = StoreWriter(db, run)
    events = [
        NetEvent(
            T0 - 5000 * MS, 0, "host", EventKind.PORT_JOINED, "vc0", "labbr0", PortDetail(BMAC)
        ),
        NetEvent(
            T0 - 1000 * MS,
            0,
            "host",
            EventKind.NOTE,
            "",
            "drops",
            NoteDetail("drops via bpftrace on skb:kfree_skb"),
        ),
    ]
    for n in (1, 3, 6):
        events.append(
            NetEvent(
                seen[f"q{n}"] + 40_000,
                0,
                "host",
                EventKind.DROP,
                "vc0",
                "OTHERHOST",
                DropDetail("OTHERHOST", "ip_rcv_core", 1, "vc0", "udp", CLIENT, SERVER, SPORT, 53),
            )
        )
    events.append(NetEvent(T0 + 3000 * MS, 0, "host", EventKind.NOTE, "", "x", NoteDetail("end")))
    for ev in events:
        writer.put_event(ev)
    writer.close()
    assert main(["explain", str(cap), "--store", str(db), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    q = by_id(doc)
    assert all(
        q[n]["drop"]["text"] == "dropped as OTHERHOST by ip_rcv_core on vc0 (host)"
        for n in (1, 3, 6)
    )
    assert doc["drops"]["reasons"] == {"OTHERHOST": 3}
    assert doc["drops"]["sources"] == [str(db)]
    assert q[5]["drop"]["status"] == "none"
    assert [j.verdict for j in explain([cap]).journeys].count(Fate.NEVER_LEFT_BRIDGE) == 3
