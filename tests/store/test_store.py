"""The SQLite store: what goes in comes out, selected by run and time; the
writer batches off the probe path; readers read while it writes; files it
cannot use are refused in one line."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from netsleuth.errors import StoreError
from netsleuth.model import (
    EventKind,
    MacChange,
    NeighChange,
    NetEvent,
    NoteDetail,
    Outcome,
    ProbeResult,
    RawDetail,
    StateChange,
    StateKind,
)
from netsleuth.store import SCHEMA_VERSION, Store, StoreWriter
from netsleuth.store.sqlite import default_store_path


def _probe(i: int, outcome: Outcome = Outcome.OK) -> ProbeResult:
    return ProbeResult(
        1_000 + i,
        2_000 + i,
        "netns:c0",
        "dns:198.18.255.2/www.lab.test/A",
        "198.18.255.2",
        outcome,
        5_000 if outcome == Outcome.OK else None,
        "198.18.255.80" if outcome == Outcome.OK else "",
    )


def test_round_trip_probes_events_facts(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, create=True) as store:
        run = store.begin_run("t", ["netns:c0"], {"rate": 20})
        writer = StoreWriter(path, run)
        writer.put_probes([_probe(0), _probe(1, Outcome.TIMEOUT), _probe(2)])
        writer.put_event(
            NetEvent(
                1_001, 2_001, "host", EventKind.MAC_CHANGED, "br0", "", MacChange(old="a", new="b")
            )
        )
        writer.close()
        store.add_fact(run, "host", "bridge", "br0", {"pinned": False})
        store.end_run(run)
    with Store(path) as store:
        assert [p.outcome for p in store.probes()] == [Outcome.OK, Outcome.TIMEOUT, Outcome.OK]
        assert store.probes()[0] == _probe(0)
        cols = store.probe_columns(runs=[run])
        assert cols.failed.tolist() == [False, True, False]
        assert cols.latency_ns.tolist() == [5_000, -1, 5_000]
        assert store.probe_columns(since_ns=1_001).wall_ns.tolist() == [1_001, 1_002]
        [event] = store.events()
        assert event.kind == EventKind.MAC_CHANGED and event.detail == MacChange(old="a", new="b")
        assert store.facts()[0]["data"] == {"pinned": False}
        [info] = store.runs()
        assert info.targets == ["netns:c0"] and info.ended_ns is not None


def test_newer_schema_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store(path, create=True).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer netsleuth"):
        Store(path)


def test_corrupt_and_foreign_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="corrupt"):
        Store(junk)
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE x (a)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError):
        Store(other)
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "missing.sqlite")


def test_sigkill_loses_at_most_the_last_second(tmp_path: Path) -> None:
    """A writer killed with SIGKILL keeps everything older than about a second."""
    path = tmp_path / "s.sqlite"
    script = textwrap.dedent(f"""
        import sys, time
        from netsleuth.model import Outcome, ProbeResult
        from netsleuth.store import Store, StoreWriter
        store = Store({str(path)!r}, create=True)
        writer = StoreWriter({str(path)!r}, store.begin_run("kill", ["t"], {{}}))
        i = 0
        while True:
            writer.put_probes([ProbeResult(time.time_ns(), time.monotonic_ns(), "t", "p", "s",
                                           Outcome.OK)])
            i += 1
            if i == 50:
                print("writing", flush=True)
            time.sleep(0.002)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
    time.sleep(2.0)
    killed_at = time.time_ns()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Store(path) as store:
        cols = store.probe_columns()
    assert len(cols) > 100
    assert killed_at - int(cols.wall_ns.max()) < 1_000_000_000


# -- runs, series, answers ---------------------------------------------------


def write(
    path: Path, run: int, probes: Sequence[ProbeResult], events: Sequence[NetEvent] = ()
) -> None:
    """Write through a writer of its own, closed (so flushed) before returning."""
    writer = StoreWriter(path, run)
    writer.put_probes(probes)
    for e in events:
        writer.put_event(e)
    writer.close()


def probe(
    wall_ns: int, target: str = "netns:c0", outcome: Outcome = Outcome.OK, answer: str = ""
) -> ProbeResult:
    server = "198.18.255.2"
    return ProbeResult(wall_ns, wall_ns + 7, target, f"dns:{server}/www.lab.test/A", server,
                       outcome, answer=answer)  # fmt: skip


def test_runs_keep_their_order_labels_targets_and_args(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, create=True) as store:
        first = store.begin_run("before", ["host", "netns:c0"], {"rate": 20.0, "store": path})
        second = store.begin_run("after", [], {})
        store.end_run(first)
        runs = store.runs()
    assert [r.id for r in runs] == [first, second] and first < second
    one, two = runs
    assert (one.label, one.targets) == ("before", ["host", "netns:c0"])
    assert (two.label, two.targets) == ("after", [])
    assert one.args == {"rate": 20.0, "store": str(path)}  # what JSON cannot hold, as text
    assert one.ended_ns is not None and one.ended_ns >= one.started_ns and two.ended_ns is None
    assert one.host and one.kernel


def test_series_and_answers_are_stored_once(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, create=True) as store:
        run = store.begin_run("t", [], {})
    write(path, run, [probe(i, answer="198.18.255.80") for i in range(5)])
    write(path, run, [probe(10), probe(11, target="host", outcome=Outcome.TIMEOUT)])
    with Store(path) as store:
        series = store.series()
        assert sorted((s.target, s.server) for s in series.values()) == [
            ("host", "198.18.255.2"),
            ("netns:c0", "198.18.255.2"),
        ]
        assert all(sid == s.id for sid, s in series.items())
        by_target = {s.target: sid for sid, s in series.items()}
        cols = store.probe_columns()
        assert cols.series.tolist() == [by_target["netns:c0"]] * 6 + [by_target["host"]]
        assert [p.answer for p in store.probes()] == ["198.18.255.80"] * 5 + ["", ""]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM answers").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM series").fetchone() == (2,)
    conn.close()


def test_create_on_an_existing_store_appends(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, create=True) as store:
        run = store.begin_run("first", [], {})
    write(path, run, [probe(1)])
    with Store(path, create=True) as store:
        store.begin_run("second", [], {})
        assert [r.label for r in store.runs()] == ["first", "second"]
        assert len(store.probe_columns()) == 1


# -- probe columns: selection by run and time --------------------------------


def test_probe_columns_select_runs_and_a_half_open_time_range(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, create=True) as store:
        r1, r2 = store.begin_run("a", [], {}), store.begin_run("b", [], {})
    # written out of order: columns come sorted by wall time
    write(path, r1, [probe(300), probe(100), probe(200, outcome=Outcome.TIMEOUT)])
    write(path, r2, [probe(150, outcome=Outcome.NXDOMAIN), probe(250, outcome=Outcome.SERVFAIL)])
    with Store(path) as store:
        every = store.probe_columns()
        assert every.wall_ns.tolist() == [100, 150, 200, 250, 300]
        assert every.run.tolist() == [r1, r2, r1, r2, r1]
        assert every.mono_ns.tolist() == [107, 157, 207, 257, 307]
        assert every.failed.tolist() == [False, False, True, True, False]  # NXDOMAIN is an answer
        assert every.latency_ns.tolist() == [-1] * 5
        assert store.probe_columns(runs=[r1]).wall_ns.tolist() == [100, 200, 300]
        assert store.probe_columns(runs=[r2, r1]).wall_ns.tolist() == [100, 150, 200, 250, 300]
        # since is inclusive, until exclusive
        assert store.probe_columns(since_ns=150, until_ns=250).wall_ns.tolist() == [150, 200]
        assert store.probe_columns(runs=[r2], since_ns=200).wall_ns.tolist() == [250]
        assert [p.wall_ns for p in store.probes(runs=[r1], until_ns=300)] == [100, 200]
        none = store.probe_columns(since_ns=1_000)
        assert len(none) == 0 and none.outcome.dtype == np.int8 and none.wall_ns.dtype == np.int64
        assert store.probe_columns(runs=[r2 + 1]).wall_ns.tolist() == []
        late = every.take(every.wall_ns >= 200)
        assert late.wall_ns.tolist() == [200, 250, 300] and late.run.tolist() == [r1, r2, r1]


# -- events and facts ----------------------------------------------------------


def test_events_round_trip_with_their_detail(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, create=True) as store:
        r1, r2 = store.begin_run("a", [], {}), store.begin_run("b", [], {})
    change = MacChange("02:00:00:00:00:01", "02:00:00:00:00:02", "bridge", 1)
    e1 = NetEvent(500, 5, "host", EventKind.MAC_CHANGED, "br0", "br0", change)
    e2 = NetEvent(500, 6, "netns:c0", EventKind.NEIGH_CHANGED, "eth0", "198.18.0.1")
    assert e2.detail == NeighChange()  # made without a detail: its kind's empty one
    # a detail of another version, kept as read: nested values, and what JSON
    # cannot hold as text
    raw = {"state": "from-the-future", "ports": ["veth0", "veth1"], "nested": {"n": 3, "ok": True}}
    e3 = NetEvent(
        100, 1, "host", EventKind.STATE_ENTERED, "br0", "x", RawDetail(raw | {"path": Path("/x")})
    )
    write(path, r1, [], [e1, e2])
    write(path, r2, [], [e3])
    read_e3 = replace(e3, detail=RawDetail(raw | {"path": "/x"}))
    with Store(path) as store:
        assert store.events() == [
            read_e3,
            e1,
            e2,  # same wall time: in the order written
        ]
        assert store.events(runs=[r1]) == [e1, e2]
        assert store.events(since_ns=101) == [e1, e2]
        assert store.events(until_ns=500) == [read_e3]


def test_event_details_are_stored_as_the_same_json(tmp_path: Path) -> None:
    """The stored text keeps the keys and values of earlier versions, so
    stores written before and after read alike."""
    path = tmp_path / "s.sqlite"
    with Store(path, create=True) as store:
        run = store.begin_run("t", [], {})
    change = MacChange("02:00:00:00:00:01", "02:00:00:00:00:02", "bridge", None)
    state = StateChange(StateKind.GATEWAY_MAC_GONE, "br0", mac="02:00:00:00:00:01")
    write(
        path,
        run,
        [],
        [
            NetEvent(1, 1, "host", EventKind.MAC_CHANGED, "br0", "", change),
            NetEvent(2, 2, "netns:a", EventKind.STATE_ENTERED, "br0", str(state.state), state),
            NetEvent(3, 3, "host", EventKind.NOTE, "", "x", NoteDetail("events were lost")),
        ],
    )
    conn = sqlite3.connect(path)
    try:
        texts = [r[0] for r in conn.execute("SELECT detail FROM events ORDER BY wall_ns")]
    finally:
        conn.close()
    assert texts == [
        '{"old": "02:00:00:00:00:01", "new": "02:00:00:00:00:02", "kind": "bridge",'
        ' "addr_assign_type": null}',
        '{"state": "gateway-mac-gone", "bridge": "br0", "mac": "02:00:00:00:00:01"}',
        '{"detail": "events were lost"}',
    ]


def test_rows_of_older_versions_and_corrupt_rows_read_without_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, create=True) as store:
        run = store.begin_run("t", [], {})
    rows = [
        (1, "mac-changed", '{"old": "a", "new": "b", "seen_by": "v0"}'),  # a key of another version
        (2, "mac-changed", '{"old": "a", "new": 7}'),  # a value of the wrong type
        (3, "neigh-changed", "not json"),
        (4, "port-joined", "[1, 2]"),  # not an object
    ]
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO events (run, wall_ns, mono_ns, netns, kind, ifname, subject, detail)"
                " VALUES (?, ?, ?, 'host', ?, 'br0', '', ?)",
                [(run, t, t, kind, text) for t, kind, text in rows],
            )
    finally:
        conn.close()
    with Store(path) as store:
        details = [e.detail for e in store.events()]
    assert details == [
        MacChange(old="a", new="b"),
        RawDetail({"old": "a", "new": 7}),
        RawDetail(),  # nothing readable
        RawDetail(),
    ]


def test_facts_round_trip_by_run(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, create=True) as store:
        r1, r2 = store.begin_run("a", [], {}), store.begin_run("b", [], {})
        store.add_fact(r1, "host", "bridge", "br0", {"addr_assign_type": 1, "ports": ["veth0"]})
        store.add_fact(r2, "nsl-1-host", "bridge", "labbr0", {"addr_assign_type": 3})
        store.add_fact(r2, "host", "note", "", ["a", 1])
    with Store(path) as store:
        facts = store.facts()
        assert [(f["run"], f["netns"], f["kind"], f["subject"]) for f in facts] == [
            (r1, "host", "bridge", "br0"),
            (r2, "nsl-1-host", "bridge", "labbr0"),
            (r2, "host", "note", ""),
        ]
        assert facts[0]["data"] == {"addr_assign_type": 1, "ports": ["veth0"]}
        assert facts[2]["data"] == ["a", 1]
        assert facts[0]["wall_ns"] <= facts[1]["wall_ns"] <= facts[2]["wall_ns"]
        assert [f["subject"] for f in store.facts(runs=[r2])] == ["labbr0", ""]


# -- the writer ------------------------------------------------------------------


def count(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_writer_batches_probes_and_commits_events_at_once(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, create=True) as store:
        run = store.begin_run("t", [], {})
    writer = StoreWriter(path, run, flush_interval=60.0)
    try:
        writer.put_probes([probe(1), probe(2)])
        time.sleep(0.3)
        assert count(path, "probes") == 0  # batched: the interval has not passed
        # an event is written as soon as the writer wakes, with the probes before it
        writer.put_event(NetEvent(3, 3, "host", EventKind.PORT_LEFT, "veth0", "br0"))
        assert wait_for(lambda: count(path, "events") == 1)
        assert count(path, "probes") == 2
        writer.put_probes([probe(4)])
        time.sleep(0.3)
        assert count(path, "probes") == 2
    finally:
        writer.close()  # flushes what is pending
    assert count(path, "probes") == 3


def test_writer_flushes_every_interval_and_when_much_is_pending(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, create=True) as store:
        run = store.begin_run("t", [], {})
    writer = StoreWriter(path, run, flush_interval=0.1)
    try:
        writer.put_probes([probe(1)])
        assert wait_for(lambda: count(path, "probes") == 1, timeout=2.0)
    finally:
        writer.close()
    writer = StoreWriter(path, run, flush_interval=60.0)
    try:
        writer.put_probes(probe(10 + i) for i in range(50_000))
        assert wait_for(lambda: count(path, "probes") == 50_001, timeout=20.0)
    finally:
        writer.close()


def test_writer_failure_is_raised_by_close(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, create=True) as store:
        run = store.begin_run("t", [], {})
    writer = StoreWriter(path, run, flush_interval=60.0)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE probes")
    conn.commit()
    conn.close()
    writer.put_probes([probe(1)])
    with pytest.raises(StoreError, match=r"writing store .* failed") as exc:
        writer.close()
    assert "\n" not in str(exc.value)


def test_readers_read_while_a_writer_writes(tmp_path: Path) -> None:
    """WAL: a reader never waits for the writer, and sees whole batches."""
    path = tmp_path / "s.sqlite"
    with Store(path, create=True) as store:
        run = store.begin_run("t", [], {})
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    writer = StoreWriter(path, run, flush_interval=0.005)
    stop = threading.Event()

    def produce() -> None:
        for n in range(200):  # at most 10,000 probes, in batches of 50
            if stop.is_set():
                break
            writer.put_probes(probe(n * 50 + k) for k in range(50))
            time.sleep(0.003)

    producer = threading.Thread(target=produce)
    producer.start()
    seen = []
    try:
        assert wait_for(lambda: count(path, "probes") > 0)
        with Store(path) as store:
            for _ in range(30):
                seen.append(len(store.probe_columns()))
                time.sleep(0.01)
    finally:
        stop.set()
        producer.join()
        writer.close()
    assert seen == sorted(seen) and seen[-1] > seen[0] > 0, seen
    assert all(n % 50 == 0 for n in seen), seen  # never half a batch


# -- refusals --------------------------------------------------------------------


def test_refusals_are_one_line_and_name_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"\x00not sqlite\n" * 400)
    no_version = tmp_path / "no-version.sqlite"
    Store(no_version, create=True).close()
    conn = sqlite3.connect(no_version)
    conn.execute("DELETE FROM meta")
    conn.commit()
    conn.close()
    newer = tmp_path / "newer.sqlite"
    Store(newer, create=True).close()
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    cases = [
        (lambda: Store(junk), "corrupt or not a SQLite file", junk),
        (lambda: Store(no_version), "corrupt", no_version),
        (lambda: StoreWriter(newer, 1), "newer netsleuth (schema 99", newer),
        (
            lambda: Store(not_a_dir / "s.sqlite", create=True),
            "cannot create the directory",
            not_a_dir,
        ),
    ]
    for open_it, words, named in cases:
        with pytest.raises(StoreError) as exc:
            open_it()
        message = str(exc.value)
        assert words in message and str(named) in message and "\n" not in message, message
    assert junk.read_bytes() == b"\x00not sqlite\n" * 400  # refused, not touched


def test_default_store_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NETSLEUTH_STORE", str(tmp_path / "env.sqlite"))
    assert default_store_path() == tmp_path / "env.sqlite"
    monkeypatch.delenv("NETSLEUTH_STORE")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_store_path() == Path("/var/lib/netsleuth/netsleuth.sqlite")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_store_path() == tmp_path / ".local/share/netsleuth/netsleuth.sqlite"
