"""Owners of namespaces: a PID plus its start time, so a dead owner (or a
reused PID) is told apart from a live one, and clean_stale removes only what
a dead owner left behind."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netsleuth import netns
from netsleuth.netns.core import NETNS_ETC_DIR, OWNERS_DIR
from netsleuth.netns.owners import Owner, owner_alive, process_start_time


def fake_stat(proc: Path, pid: int, comm: str, state: str, start: int) -> None:
    fields = [state, *["0"] * 18, str(start), *["0"] * 30]  # starttime is field 22
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)}\n")


def state_of(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


# --- no root needed ------------------------------------------------------------


def test_start_time_is_read_after_the_command_name(tmp_path: Path) -> None:
    fake_stat(tmp_path, 123, "a) (b c)", "S", 4242)
    fake_stat(tmp_path, 124, "zombie", "Z", 99)
    fake_stat(tmp_path, 125, "dead", "X", 99)
    assert process_start_time(123, tmp_path) == 4242
    assert process_start_time(124, tmp_path) is None
    assert process_start_time(125, tmp_path) is None
    assert process_start_time(126, tmp_path) is None  # no such process


def test_start_time_of_a_live_a_zombie_and_a_reaped_process() -> None:
    mine = Path("/proc/self/stat").read_text()
    assert process_start_time(os.getpid()) == int(mine[mine.rindex(")") + 2 :].split()[19])
    child = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while state_of(child.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert state_of(child.pid) == "Z"  # exited, not reaped yet
        assert process_start_time(child.pid) is None
    finally:
        child.wait()
    assert process_start_time(child.pid) is None


def test_owner_round_trip_and_liveness(tmp_path: Path) -> None:
    me = Owner.me()
    assert me.pid == os.getpid() and me.start_time == process_start_time(os.getpid())
    (tmp_path / "owner").write_text(me.to_json())
    assert Owner.from_file(tmp_path / "owner") == me
    assert owner_alive(me)
    assert not owner_alive(Owner(me.pid, me.start_time + 1))  # the PID was reused
    assert not owner_alive(None)
    for junk in ("", "{", '{"pid": 1}', '{"pid": "x", "start_time": 1}', "[1, 2]"):
        (tmp_path / "junk").write_text(junk)
        assert Owner.from_file(tmp_path / "junk") is None, junk
    assert Owner.from_file(tmp_path / "missing") is None
    fake_stat(tmp_path / "proc", 77, "sleep", "S", 500)
    assert owner_alive(Owner(77, 500), tmp_path / "proc")
    assert not owner_alive(Owner(77, 501), tmp_path / "proc")


# --- clean_stale, in namespaces of our own -------------------------------------------


def create_by_a_dead_owner(name: str) -> Owner:
    """A namespace (with /etc files) whose creating process has exited."""
    code = (
        "import sys\nfrom netsleuth import netns\n"
        "netns.create_owned(sys.argv[1], {'resolv.conf': 'nameserver 198.18.255.2\\n'})\n"
    )
    subprocess.run([sys.executable, "-c", code, name], check=True, timeout=30)
    owner = Owner.from_file(OWNERS_DIR / name)
    assert owner is not None and not owner_alive(owner)
    return owner


@pytest.mark.netns
def test_clean_stale_removes_only_what_dead_owners_left() -> None:
    prefix = f"nslt-{secrets.token_hex(3)}-"
    live, dead, reused, unknown = (prefix + n for n in ("live", "dead", "reused", "unknown"))
    orphan, orphan_live = prefix + "orphan", prefix + "orphan-live"
    sleeper = None
    try:
        netns.create_owned(live)
        dead_owner = create_by_a_dead_owner(dead)
        netns.create_owned(reused)
        me = Owner.me()
        (OWNERS_DIR / reused).write_text(Owner(me.pid, me.start_time + 1).to_json())
        netns.create_owned(unknown)
        (OWNERS_DIR / unknown).unlink()
        (OWNERS_DIR / orphan).write_text(dead_owner.to_json())  # its namespace is gone
        (OWNERS_DIR / orphan_live).write_text(me.to_json())
        # what still runs in a dead owner's namespace was started by it
        sleeper = subprocess.Popen(netns.exec_argv(dead, ["sleep", "30"]))
        deadline = time.monotonic() + 5
        while not netns.pids_in(netns.netns_path(dead)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert netns.pids_in(netns.netns_path(dead)) == [sleeper.pid]

        assert sorted(netns.clean_stale(prefix)) == sorted([dead, reused, unknown])

        assert netns.list_named(prefix) == [live]
        assert sleeper.wait(timeout=10) == -signal.SIGKILL
        assert not (NETNS_ETC_DIR / dead).exists()
        assert sorted(p.name for p in OWNERS_DIR.glob(f"{prefix}*")) == [live, orphan_live]
        assert json.loads((OWNERS_DIR / live).read_text())["pid"] == os.getpid()
        assert netns.clean_stale(prefix) == []  # nothing stale is left
    finally:
        if sleeper is not None and sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        for name in (live, dead, reused, unknown, orphan, orphan_live):
            netns.remove_owned(name)
