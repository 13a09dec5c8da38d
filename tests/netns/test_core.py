"""The namespace primitives of netns.core: run_in hands back values and
errors and never moves the caller; owned namespaces are created and removed
whole; programs started in a namespace (exec_argv, SysfsAnchor, a worker that
enters for good) see that namespace, and die with their owner when asked."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from netsleuth import netns
from netsleuth.errors import NetsleuthError, NotPermitted, TargetNotFound
from netsleuth.netns import core
from netsleuth.netns.core import NETNS_ETC_DIR, NETNS_RUN_DIR, OWNERS_DIR
from netsleuth.netns.owners import Owner


def own_netns() -> str:
    return os.readlink("/proc/thread-self/ns/net")


def wait_exe(pid: int, name: str, timeout: float = 5.0) -> bool:
    """Until ``pid`` runs ``name`` (past setpriv and ``ip netns exec``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{pid}/exe").endswith(f"/{name}"):
                return True
        except OSError:
            pass
        time.sleep(0.01)
    return False


def add_bridge(name: str, ifname: str) -> None:
    subprocess.run(["ip", "-n", name, "link", "add", ifname, "type", "bridge"], check=True)


# --- no root needed ------------------------------------------------------------


def test_exec_argv() -> None:
    ip = core.shutil.which("ip") or "/usr/sbin/ip"
    setpriv = core.shutil.which("setpriv") or "/usr/bin/setpriv"
    assert netns.exec_argv(None, ["cat"]) == ["cat"]
    assert netns.exec_argv("nslt-x", ["cat", "-"]) == [ip, "netns", "exec", "nslt-x", "cat", "-"]
    guarded = [setpriv, "--pdeathsig", "KILL", "--", "cat"]
    assert netns.exec_argv(None, ["cat"], die_with_parent=True) == guarded
    assert netns.exec_argv("nslt-x", ["cat"], die_with_parent=True) == [
        ip, "netns", "exec", "nslt-x", *guarded,
    ]  # fmt: skip


def test_paths_and_listing_without_a_netns_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert netns.netns_path("nslt-x") == NETNS_RUN_DIR / "nslt-x"
    monkeypatch.setattr(core, "NETNS_RUN_DIR", tmp_path / "none")
    assert netns.list_named() == [] and netns.list_named("nslt-") == []
    assert not netns.exists("nslt-x")


def test_creating_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(NotPermitted, match="needs root"):
        netns.create_owned("nslt-never")


def test_entering_a_missing_namespace_is_target_not_found(tmp_path: Path) -> None:
    before = own_netns()
    with pytest.raises(TargetNotFound, match="does not exist"):
        netns.run_in(tmp_path / "none", lambda: 1)
    assert own_netns() == before


def test_detach_mount_of_a_plain_directory_fails_quietly(tmp_path: Path) -> None:
    assert netns.detach_mount(tmp_path) is False


# --- in namespaces of our own ------------------------------------------------------


@pytest.mark.netns
def test_run_in_returns_and_raises_and_the_caller_never_moves(
    make_netns: Callable[..., Path],
) -> None:
    path = make_netns("run")
    before = own_netns()
    assert netns.run_in(path, own_netns) == f"net:[{os.stat(path).st_ino}]" != before
    assert netns.run_in(path, threading.get_ident) != threading.get_ident()
    assert netns.run_in(path, lambda: None) is None
    assert netns.run_in(path, lambda: [1, "two"]) == [1, "two"]
    error = ValueError("boom")

    def fails() -> None:
        raise error

    with pytest.raises(ValueError, match="boom") as raised:
        netns.run_in(path, fails)
    assert raised.value is error  # the very exception, not a copy
    with pytest.raises(SystemExit):  # not only Exceptions
        netns.run_in(path, lambda: sys.exit(3))
    assert own_netns() == before


@pytest.mark.netns
def test_create_owned_registers_the_owner_and_remove_owned_takes_everything() -> None:
    name = f"nslt-{secrets.token_hex(3)}-own"
    try:
        path = netns.create_owned(name, {"resolv.conf": "nameserver 198.18.255.2\n"})
        assert path == netns.netns_path(name) and netns.exists(name)
        assert Owner.from_file(OWNERS_DIR / name) == Owner.me()
        assert (NETNS_ETC_DIR / name / "resolv.conf").read_text() == "nameserver 198.18.255.2\n"
        with pytest.raises(NetsleuthError, match="already exists"):
            netns.create_owned(name)
        assert Owner.from_file(OWNERS_DIR / name) == Owner.me()
        netns.remove_owned(name)
        assert not netns.exists(name)
        assert not (OWNERS_DIR / name).exists() and not (NETNS_ETC_DIR / name).exists()
        netns.remove_owned(name)  # nothing left: nothing to complain about
    finally:
        netns.remove_owned(name)


@pytest.mark.netns
def test_list_named_by_prefix(make_netns: Callable[..., Path]) -> None:
    a, b = make_netns("la"), make_netns("lb")
    prefix = a.name.rsplit("-", 1)[0] + "-"
    assert netns.list_named(prefix) == sorted([a.name, b.name])
    assert netns.list_named(a.name) == [a.name]
    assert netns.list_named(f"nslt-{secrets.token_hex(4)}-") == []
    assert {a.name, b.name} <= set(netns.list_named())


@pytest.mark.netns
def test_programs_run_inside_and_are_found_there(make_netns: Callable[..., Path]) -> None:
    path = make_netns("exec")
    out = subprocess.run(
        netns.exec_argv(path.name, ["readlink", "/proc/self/ns/net"]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == f"net:[{os.stat(path).st_ino}]"
    sleeper = subprocess.Popen(netns.exec_argv(path.name, ["sleep", "30"]))
    try:
        assert wait_exe(sleeper.pid, "sleep")
        assert netns.pids_in(path) == [sleeper.pid]
        assert os.getpid() not in netns.pids_in(path)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert netns.pids_in(path) == []
    assert netns.pids_in(path.parent / "nslt-none-such") == []


@pytest.mark.netns
def test_a_program_started_to_die_with_its_parent_does(make_netns: Callable[..., Path]) -> None:
    path = make_netns("die")
    started: list[subprocess.Popen[bytes]] = []

    def owner() -> None:  # the thread that starts it, and then ends
        proc = subprocess.Popen(netns.exec_argv(path.name, ["sleep", "30"], die_with_parent=True))
        started.append(proc)
        wait_exe(proc.pid, "sleep")

    thread = threading.Thread(target=owner)
    thread.start()
    thread.join()
    [proc] = started
    try:
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.netns
def test_sysfs_anchor_shows_the_namespace_sysfs(make_netns: Callable[..., Path]) -> None:
    path = make_netns("anchor")
    add_bridge(path.name, "br.anchor")
    anchor = netns.SysfsAnchor(path.name)
    try:
        assert anchor.ready()
        assert sorted(os.listdir(anchor.root / "class/net")) == ["br.anchor", "lo"]
        assert (anchor.root / "class/net/br.anchor/addr_assign_type").read_text().strip()
    finally:
        anchor.close()
    assert not anchor.root.exists()  # the anchor process is gone
    assert not Path("/sys/class/net/br.anchor").exists()


@pytest.mark.netns
def test_a_worker_that_enters_for_good_sees_the_namespace_sysfs_and_etc(
    make_netns: Callable[..., Path],
) -> None:
    resolv = "nameserver 198.18.255.2\n"
    path = make_netns("good", {"resolv.conf": resolv})
    add_bridge(path.name, "br-good0")
    ours = Path("/etc/resolv.conf").read_bytes() if Path("/etc/resolv.conf").exists() else None
    code = (
        "import os, sys\n"
        "from netsleuth.netns import enter_for_good\n"
        "enter_for_good(sys.argv[1], sys.argv[2])\n"
        "print(' '.join(sorted(os.listdir('/sys/class/net'))))\n"
        "print(os.readlink('/proc/self/ns/net'))\n"
        "if os.path.exists('/etc/resolv.conf'):\n"
        "    print(open('/etc/resolv.conf').read(), end='')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), path.name],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    lines = out.splitlines(keepends=True)
    assert lines[0] == "br-good0 lo\n"
    assert lines[1] == f"net:[{os.stat(path).st_ino}]\n"
    if ours is not None:  # /etc/netns/NAME/resolv.conf is bound over the real one
        assert "".join(lines[2:]) == resolv
        assert Path("/etc/resolv.conf").read_bytes() == ours
    assert not Path("/sys/class/net/br-good0").exists()
