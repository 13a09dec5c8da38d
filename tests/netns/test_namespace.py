"""The Namespace handle: resolution, the one "does not exist" error, running
code inside (a thread, a whole process), sysctls. The caller never moves."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from netsleuth import netns
from netsleuth.errors import DependencyMissing, InvalidArgument, NetsleuthError, TargetNotFound
from netsleuth.netns import Links, Namespace, arp_notify_key, sysctl_path

NO_SUCH_PID = 4_194_305  # above the largest pid_max Linux allows


def own_netns() -> str:
    return os.readlink("/proc/thread-self/ns/net")


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text
    return text


# --- resolution (no root needed) -------------------------------------------


def test_ours_runs_here_in_this_thread() -> None:
    ns = Namespace.of(None)
    assert ns == Namespace.ours() and ns.is_ours and ns.path is None and ns.label == "host"
    assert ns.run(threading.get_ident) == threading.get_ident()
    assert Namespace.of(None, "me").label == "me"


@pytest.mark.parametrize(
    ("target", "hint"),
    [
        ("nslt-no-such-namespace", "ip netns list"),
        (Path("/run/netns/nslt-no-such-namespace"), "ip netns list"),
        ("/nonexistent/ns/net", "/proc/PID/ns/net"),
        (NO_SUCH_PID, "check the PID"),
    ],
)
def test_a_missing_target_is_one_target_not_found(target: str | Path | int, hint: str) -> None:
    with pytest.raises(TargetNotFound) as info:
        Namespace.of(target)
    text = one_line(info.value)
    assert "does not exist" in text and hint in text
    assert info.value.__cause__ is None


def test_spellings_resolve_to_the_same_handle() -> None:
    pid = Namespace.of(os.getpid())
    assert pid.path == Path(f"/proc/{os.getpid()}/ns/net") and pid.label == f"pid {os.getpid()}"
    assert pid.name is None and pid.inode() == os.stat("/proc/self/ns/net").st_ino
    assert Namespace.of(pid) is pid
    relabelled = Namespace.of(pid, "container web")
    assert (relabelled.path, relabelled.label) == (pid.path, "container web")
    assert Namespace.of(f"/proc/{os.getpid()}/ns/net") == Namespace(pid.path, None, str(pid.path))
    with pytest.raises(InvalidArgument):
        Namespace.named("a/b")


def test_a_handle_whose_namespace_went_away_says_so(tmp_path: Path) -> None:
    file = tmp_path / "ns"
    file.write_text("")
    ns = Namespace.at(file, "container gone")
    file.unlink()
    with pytest.raises(TargetNotFound, match="container gone does not exist"):
        ns.run(lambda: None)
    with pytest.raises(TargetNotFound, match="container gone does not exist"):
        ns.run_process(lambda: None)


# --- run_process (ours: no root needed) ------------------------------------


class _Unpicklable:
    def __reduce__(self) -> str:
        raise TypeError("not picklable")


def test_run_process_returns_and_reraises_one_line_errors() -> None:
    ours = Namespace.ours()
    assert ours.run_process(lambda: {"ok": 1}) == {"ok": 1}
    assert ours.run_process(os.getpid) != os.getpid()  # it did run in another process

    def missing() -> None:
        raise TargetNotFound("no interface br9 here")

    with pytest.raises(TargetNotFound, match=r"^no interface br9 here$"):
        ours.run_process(missing)

    def no_tool() -> None:
        raise DependencyMissing("nft", "nftables")

    with pytest.raises(DependencyMissing) as info:
        ours.run_process(no_tool)
    assert (info.value.program, info.value.package) == ("nft", "nftables")
    assert "install the Debian package nftables" in one_line(info.value)

    with pytest.raises(NetsleuthError, match="ZeroDivisionError") as failed:
        ours.run_process(lambda: 1 / 0)
    assert type(failed.value) is NetsleuthError and "host" in one_line(failed.value)
    with pytest.raises(NetsleuthError, match="not picklable"):
        ours.run_process(_Unpicklable)


def test_run_process_times_out_and_kills_its_worker() -> None:
    t0 = time.monotonic()
    with pytest.raises(NetsleuthError, match=r"longer than 0\.3 s") as info:
        Namespace.ours().run_process(lambda: time.sleep(30), 0.3)
    assert time.monotonic() - t0 < 10
    one_line(info.value)


# --- real namespaces -------------------------------------------------------


@pytest.mark.netns
def test_a_named_namespace_resolves_by_name_path_and_pid(make_netns: Callable[..., Path]) -> None:
    path = make_netns("res")
    by_name = Namespace.of(path.name)
    assert (by_name.path, by_name.name, by_name.label) == (path, path.name, path.name)
    assert Namespace.of(path) == by_name == Namespace.of(str(path))
    sleeper = subprocess.Popen(netns.exec_argv(path.name, ["sleep", "30"]))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until `ip netns exec` has exec'd sleep
            if os.readlink(f"/proc/{sleeper.pid}/exe").endswith("sleep"):
                break
            time.sleep(0.01)
        assert Namespace.of(sleeper.pid).inode() == by_name.inode() != Namespace.ours().inode()
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.netns
def test_run_enters_in_a_helper_thread_and_reraises(make_netns: Callable[..., Path]) -> None:
    path = make_netns("run")
    ns = Namespace.named(path.name)
    before = own_netns()
    assert ns.run(own_netns) == f"net:[{ns.inode()}]" != before
    assert ns.run(threading.get_ident) != threading.get_ident()

    def fails() -> None:
        raise TargetNotFound("no interface br9 here")

    with pytest.raises(TargetNotFound, match="br9"):
        ns.run(fails)
    with pytest.raises(ZeroDivisionError):
        ns.run(lambda: 1 / 0)
    assert own_netns() == before


@pytest.mark.netns
def test_run_process_sees_the_namespace_sysfs(make_netns: Callable[..., Path]) -> None:
    path = make_netns("proc")
    ns = Namespace.named(path.name)

    def add_bridge() -> None:
        with Links() as links:
            links.add_bridge("br-proc")

    ns.run(add_bridge)
    before = own_netns()
    names = ns.run_process(lambda: sorted(os.listdir("/sys/class/net")))
    assert names == ["br-proc", "lo"]
    assert not Path("/sys/class/net/br-proc").exists()  # our sysfs did not change
    assert ns.run_process(own_netns) == f"net:[{ns.inode()}]"
    with pytest.raises(TargetNotFound, match="br9"):
        ns.run_process(lambda: Links().index("br9"))
    assert own_netns() == before


@pytest.mark.netns
def test_sysctls_are_read_and_set_in_the_namespace(make_netns: Callable[..., Path]) -> None:
    path = make_netns("sys")
    ns = Namespace.named(path.name)
    ours_before = sysctl_path("net.ipv4.ip_forward").read_text()
    assert ns.sysctl("net.ipv4.ip_forward") == "0"
    assert ns.set_sysctl("net.ipv4.ip_forward", 1) == ("0", "1")
    assert ns.set_sysctl("net.ipv4.ip_forward", "1") == ("1", "1")  # already: no change
    assert ns.sysctl("net/ipv4/ip_forward") == "1"
    assert sysctl_path("net.ipv4.ip_forward").read_text() == ours_before

    def add_bridge() -> None:  # a name with a dot: the one parser keeps it whole
        with Links() as links:
            links.add_bridge("br-s.1")

    ns.run(add_bridge)
    assert ns.arp_notify("br-s.1") == 0
    assert ns.set_sysctl(arp_notify_key("br-s.1"), 1) == ("0", "1")
    assert ns.arp_notify("br-s.1") == 1
    assert ns.arp_notify("nosuchbr") is None and ns.sysctl(arp_notify_key("nosuchbr")) is None
    with pytest.raises(
        TargetNotFound, match=r"no sysctl net\.ipv4\.conf\.nosuchbr\.arp_notify"
    ) as e:
        ns.set_sysctl(arp_notify_key("nosuchbr"), 1)
    one_line(e.value)


def test_sysctl_path_is_the_one_parser(tmp_path: Path) -> None:
    assert sysctl_path("net.ipv4.conf.br-s.1.arp_notify") == Path(
        "/proc/sys/net/ipv4/conf/br-s.1/arp_notify"
    )
    assert sysctl_path("net/ipv4/conf/br-s.1/arp_notify", tmp_path) == (
        tmp_path / "sys/net/ipv4/conf/br-s.1/arp_notify"
    )
    assert sysctl_path("net.ipv4.ip_forward", tmp_path) == tmp_path / "sys/net/ipv4/ip_forward"
