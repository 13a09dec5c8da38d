"""`capture --drops` on real interfaces: two namespaces of our own joined by a
veth pair, queries to a port nobody listens on (the kernel drops them as
NO_SOCKET in the server's namespace), and a namespace that is not captured
whose drops must stay out. And where no tracer can run: one line, and the
capture goes on."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import pytest
from pyroute2 import IPRoute

from netsleuth import netns
from netsleuth.cli import main
from netsleuth.drops import Availability
from netsleuth.packets.drops import read_sidecar, sidecar_path

pytestmark = pytest.mark.netns

A_ADDR, B_ADDR = "198.18.101.1", "198.18.101.2"


@pytest.fixture
def pair(make_netns: Callable[..., Path]) -> Iterator[tuple[str, str, str]]:
    """Namespaces a (``va``, .1) and b (``vb``, .2) joined by a veth pair,
    and c, not joined to anything."""
    a, b, c = (make_netns(f"drop-{x}").name for x in "abc")
    with IPRoute(netns=a) as ipr:
        ipr.link("add", ifname="va", kind="veth", peer={"ifname": "vb", "net_ns_fd": b})
        idx = ipr.link_lookup(ifname="va")[0]
        ipr.addr("add", index=idx, address=A_ADDR, prefixlen=24)
        ipr.link("set", index=idx, state="up")
    with IPRoute(netns=b) as ipr:
        idx = ipr.link_lookup(ifname="vb")[0]
        ipr.addr("add", index=idx, address=B_ADDR, prefixlen=24)
        ipr.link("set", index=idx, state="up")
    with IPRoute(netns=c) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
    yield a, b, c


def send_queries(a: str, c: str, count: int) -> int:
    """``count`` queries a → b:53 (nobody listens), from one socket; and the
    same to 127.0.0.1:53 inside c (dropped there, but c is not captured)."""
    client = netns.run_in(
        netns.netns_path(a), lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    )
    other = netns.run_in(
        netns.netns_path(c), lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    )
    try:
        for i in range(count):
            wire = dns.message.make_query(f"q{i}.lab.test", "A").to_wire()
            client.sendto(wire, (B_ADDR, 53))
            other.sendto(wire, ("127.0.0.1", 53))
            time.sleep(0.1)
        return int(client.getsockname()[1])
    finally:
        client.close()
        other.close()


def run_capture(a: str, b: str, c: str, out: Path, count: int) -> tuple[int, list[int]]:
    side = sidecar_path(out)
    box: list[int] = []
    errors: list[BaseException] = []

    def traffic() -> None:
        try:
            deadline = time.monotonic() + 90
            while not (side.exists() and side.read_text().strip()):
                assert time.monotonic() < deadline, "the recorder never wrote its first line"
                time.sleep(0.1)
            time.sleep(0.5)  # the capture binds its sockets
            box.append(send_queries(a, c, count))
        except BaseException as exc:  # handed to the test thread below
            errors.append(exc)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        argv = ["capture", "--iface", f"{a}:va:client", "--iface", f"{b}:vb", "--drops"]
        code = main([*argv, "--duration", "2.5", "-w", str(out)])
    finally:
        thread.join(120)
    assert not errors, errors
    return code, box


def test_capture_drops_names_the_drop_in_the_captured_namespace(
    pair: tuple[str, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("bpftrace") is None:
        pytest.skip("bpftrace is not installed (scripts/setup installs it)")
    a, b, c = pair
    out = tmp_path / "pair.pcapng"
    code, box = run_capture(a, b, c, out, 5)
    assert code == 0
    sport = box[0]
    log = read_sidecar(sidecar_path(out))
    assert log.recorded
    ours = [d for d in log.drops if d.sport == sport and d.daddr == B_ADDR]
    assert len(ours) == 5, log.drops
    assert {(d.reason, d.netns, d.device) for d in ours} == {("NO_SOCKET", b, "vb")}
    # c was not captured: its drops are not in the file
    assert not [d for d in log.drops if d.daddr == "127.0.0.1"], log.drops
    capsys.readouterr()

    assert main(["explain", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    lost = [q for q in doc["queries"] if q["verdict"] == "unanswered"]
    assert len(lost) == 5, doc["verdicts"]
    texts = {q["drop"]["text"] for q in lost}
    assert len(texts) == 1
    [text] = texts
    assert text.startswith("dropped as NO_SOCKET by ") and text.endswith(f" on vb ({b})")
    assert doc["drops"]["dropped"] == 5 and doc["drops"]["reasons"] == {"NO_SOCKET": 5}


def test_capture_drops_unavailable_says_one_line_and_captures(
    pair: tuple[str, str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # this kernel has everything: make the source see a kernel that lacks tracefs
    from netsleuth.drops import source

    missing = "no tracefs (mount -t tracefs tracefs /sys/kernel/tracing)"
    monkeypatch.setattr(source, "availability", lambda *a, **k: Availability(None, missing))
    a, b, c = pair
    out = tmp_path / "pair.pcapng"
    code, _box = run_capture(a, b, c, out, 3)
    assert code == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if "drop reasons" in line]
    assert lines == [f"kernel drop reasons unavailable: {missing}; capturing without drops"]
    assert "Traceback" not in captured.err
    assert "wrote" in captured.out and "no kernel drops recorded" in captured.out

    assert main(["explain", str(out), "--queries"]) == 0
    text = capsys.readouterr().out
    assert "3 DNS queries" in text
    assert text.count("kernel drops:") == 1
    assert f"kernel drops: not recorded (kernel drop reasons unavailable: {missing})" in text
    assert "dropped as" not in text and "no drop was recorded" not in text
