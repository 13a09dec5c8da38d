"""`watch --containers` against a real throwaway dockerd: a container started
after the watch began is probed and its end recorded; ten `docker run --rm`
containers come and go without a single stored failure from their endings.
DNS is our own dnsmasq on the bridge address (marker ``docker``)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path

import dns.message
import dns.query
import pytest
from pyroute2 import IPRoute
from rich.console import Console

from netsleuth import netns
from netsleuth.analysis import analyze
from netsleuth.docker import BUSYBOX_IMAGE, DockerDaemon, ensure_image
from netsleuth.model import EndDetail, EventKind, Outcome
from netsleuth.report import render_terminal, to_json
from netsleuth.store import Store
from netsleuth.watch import WatchConfig, WatchEngine

pytestmark = [pytest.mark.docker, pytest.mark.timeout(150)]

BRIDGE = "br0"  # made by the bridge_ns fixture (conftest.py)
BRIDGE_ADDR = "198.18.44.1"
ZONE = "fleet.test"
ANSWER = "198.18.44.250"
CHURN = 10


def wait_for(pred: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


@pytest.fixture
def dnsmasq(bridge_ns: str) -> Iterator[str]:
    """dnsmasq in the bridge namespace on the bridge address, answering *.fleet.test."""
    argv = [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        f"--listen-address={BRIDGE_ADDR}",
        f"--address=/{ZONE}/{ANSWER}",
        "--pid-file",
        "--user=root",
        "--cache-size=0",
        "--log-facility=/dev/null",
    ]
    proc = subprocess.Popen(
        netns.exec_argv(bridge_ns, argv, die_with_parent=True),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    path = str(netns.netns_path(bridge_ns))
    query = dns.message.make_query(f"www.{ZONE}", "A")

    def answers() -> bool:
        try:
            reply = netns.run_in(path, lambda: dns.query.udp(query, BRIDGE_ADDR, timeout=0.3))
        except Exception:
            return False
        return ANSWER in reply.to_text()

    try:
        assert wait_for(answers, 10), "dnsmasq did not answer"
        yield BRIDGE_ADDR
    finally:
        proc.terminate()
        proc.wait(5)


def answered(engine: WatchEngine, target: str) -> int:
    """The live count of one target's answered attempts (read from another
    thread: retried)."""
    for _ in range(20):
        try:
            return sum(
                st.outcomes[Outcome.OK.label]
                for (t, _p, _s), st in list(engine.stats.series.items())
                if t == target
            )
        except RuntimeError:  # changed while copied
            time.sleep(0.01)
    return 0


def test_watch_containers_probes_new_ones_and_records_ends(
    bridge_ns: str, dnsmasq: str, tmp_path: Path
) -> None:
    store_path = tmp_path / "fleet.sqlite"
    # A pinned bridge MAC: the churn's ports do not move it, so the network is
    # sound and any failure stored would be one of the endings.
    with IPRoute(netns=bridge_ns) as ipr:
        br = ipr.link_lookup(ifname=BRIDGE)[0]
        ipr.link("set", index=br, address=ipr.get_links(br)[0].get("address"))
    with DockerDaemon(bridge_ns, BRIDGE, fixed_cidr="198.18.44.128/25", dns=[dnsmasq]) as d:
        client = d.client()
        ensure_image(client)
        resident = client.containers.run(
            BUSYBOX_IMAGE, ["sleep", "120"], detach=True, name="resident", labels={"ci": "1"}
        )
        client.containers.run(BUSYBOX_IMAGE, ["sleep", "120"], detach=True, name="outsider")
        config = WatchConfig(
            targets=(),
            probes=(f"dns:www.{ZONE}",),  # the container's own resolv.conf: our dnsmasq
            rate=20,
            timeout=1.0,
            docker_hosts=(d.host,),
            containers=("label=ci",),
            control=False,
            counters=0,
            drops=False,
        )
        engine = WatchEngine(config, store_path)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                engine.run()
            except BaseException as exc:
                failure.append(exc)

        watcher = threading.Thread(target=run)
        watcher.start()
        try:
            # the resident, running before the watch, is probed (and the fleet is following)
            assert wait_for(lambda: answered(engine, "container:resident") > 0, 30), failure
            late = client.containers.run(
                BUSYBOX_IMAGE, ["sleep", "120"], detach=True, name="late", labels={"ci": "1"}
            )
            assert wait_for(lambda: answered(engine, "container:late") >= 5, 30)
            late.stop(timeout=1)
            assert wait_for(lambda: engine.containers_ended >= 1, 15)

            def churn(i: int) -> None:
                client.containers.run(
                    BUSYBOX_IMAGE,
                    ["sleep", "1.5" if i % 2 else "1"],
                    remove=True,
                    labels={"ci": "churn"},
                )

            with ThreadPoolExecutor(2) as pool:
                list(pool.map(churn, range(CHURN)))
            assert wait_for(lambda: engine.containers_ended >= 1 + CHURN, 20)
        finally:
            engine.stop_event.set()
            watcher.join(60)
        assert not watcher.is_alive() and not failure, failure
        resident.reload()
        assert resident.status == "running"
        client.close()

    with Store(store_path) as store:
        series = store.series()
        cols = store.probe_columns()
        events = store.events()
        facts = [f for f in store.facts() if f["kind"] == "container"]
        analysis = analyze(store)
    by_target: dict[str, dict[Outcome, int]] = {}
    for sid, outcome in zip(cols.series.tolist(), cols.outcome.tolist(), strict=True):
        counts = by_target.setdefault(series[sid].target, {})
        counts[Outcome(outcome)] = counts.get(Outcome(outcome), 0) + 1
    # the late container was probed, answered, under its own label
    assert by_target["container:late"].get(Outcome.OK, 0) >= 5
    assert by_target["container:resident"].get(Outcome.OK, 0) > 0
    assert not any(t.startswith("container:outsider") for t in by_target)
    # not one failed or target-gone attempt from any container, ends included
    bad = {t: {o: n for o, n in c.items() if o is not Outcome.OK} for t, c in by_target.items()}
    assert not any(bad.values()), bad
    assert not [e for e in events if e.kind is EventKind.TARGET_GONE]

    ended = [e for e in events if e.kind is EventKind.TARGET_ENDED]
    assert len(ended) == 1 + CHURN
    late_end = [e for e in ended if e.netns == "container:late"]
    assert len(late_end) == 1
    detail = late_end[0].detail
    assert isinstance(detail, EndDetail)
    assert detail.exit_code is not None and detail.image == BUSYBOX_IMAGE
    churn_ends = [e for e in ended if e.netns != "container:late"]
    assert all(isinstance(e.detail, EndDetail) and e.detail.exit_code == 0 for e in churn_ends)

    # every life recorded as started (and, but the resident, as ended), beside its series
    started = {(f["netns"], f["data"]["id"]) for f in facts if f["data"]["event"] == "started"}
    finished = {(f["netns"], f["data"]["id"]) for f in facts if f["data"]["event"] == "ended"}
    assert len(started) == 2 + CHURN and len(finished) == 1 + CHURN
    assert finished < started
    late_fact = next(f["data"] for f in facts if f["netns"] == "container:late")
    assert late_fact["image"] == BUSYBOX_IMAGE and late_fact["daemon"] == d.host
    assert late_fact["labels"] == {"ci": "1"} and late_fact["name"] == "late"

    # the report names the containers and counts those that came and went
    assert len(analysis.containers) == 2 + CHURN
    doc = to_json(analysis)
    assert doc["containers_ended"] == 1 + CHURN
    assert {c["target"] for c in doc["containers"]} >= {"container:late", "container:resident"}
    out = StringIO()
    render_terminal(analysis, Console(file=out, width=160))
    assert f"{1 + CHURN} came and went" in out.getvalue()
