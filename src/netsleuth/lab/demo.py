"""`netsleuth lab demo`: the whole story in under two minutes.

1. build the lab with an unpinned bridge and CI-like churn;
2. watch it: DNS from the container fails while ports come and go;
3. `report` names the cause from what was recorded;
4. `fix` pins the bridge MAC;
5. watch again under the same churn;
6. before and after, side by side; then everything is torn down.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.rule import Rule

from netsleuth.analysis import analyze
from netsleuth.audit.readers import bridge_mac_state
from netsleuth.errors import NetsleuthError
from netsleuth.fix.conntrack import read_leftovers
from netsleuth.fix.mac import read_machine_id
from netsleuth.fix.plan import BridgeFixResult, apply_bridge_fix, plan_bridge_fix
from netsleuth.lab.render import LabProgress, results_table
from netsleuth.lab.run import LabOptions, lab_session, watch_phase
from netsleuth.lab.topology import check_requirements, wait_healthy
from netsleuth.netns import Namespace, arp_notify_key, netns_path
from netsleuth.report import render_terminal, to_json
from netsleuth.store import Store

__all__ = ["fix_bridge", "run_demo"]


def _say(console: Console, step: int, title: str, text: str = "") -> None:
    console.print(Rule(f"[bold]{step}. {title}", align="left"))
    if text:
        console.print(text, highlight=False)


def fix_bridge(host_ns: str, bridge: str, machine_id: str, out: Console) -> BridgeFixResult:
    """``netsleuth fix bridge BRIDGE --netns HOST_NS --mac auto --arp-notify
    --persist none --apply``, through the same plan and apply: a stable MAC
    derived from the bridge name and machine id, arp_notify first so that
    pinning it is announced, and the conntrack entries the flooded queries left
    without NAT deleted. Prints the plan's steps, as the dry run does, then
    carries the plan out."""
    host = netns_path(host_ns)
    plan = plan_bridge_fix(
        bridge_mac_state(host, bridge),
        host_ns,
        mac_spec="auto",
        persist="none",
        definitions=[],
        etc_root=Path("/etc"),
        machine_id=machine_id,
        arp_notify=Namespace.of(host).sysctl(arp_notify_key(bridge)),
        leftovers=read_leftovers(host, bridge),
    )
    for step in plan.steps():
        out.print(f"  - {step}", highlight=False)
    return apply_bridge_fix(plan, host)


def run_demo(
    duration: float,
    as_json: bool,
    console: Console,
    err: Console,
    *,
    containers: int = 3,
    engine: Literal["veth", "docker"] = "veth",
) -> int:
    check_requirements()
    seed = random.randrange(1 << 30)
    opts = LabOptions(
        engine=engine,
        churn="veth",
        churn_mac="low" if engine == "veth" else "random",
        containers=containers,
        duration=duration,
        seed=seed,
    )
    opts.validate()
    out = err if as_json else console
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="netsleuth-demo-") as tmp,
        lab_session(opts, seed) as session,
    ):
        topo = session.topo
        store_path = Path(tmp) / "demo.sqlite"
        probers = [t for t in session.targets if t != "host"]
        _say(
            out,
            1,
            "The lab",
            f"{len(probers)} container(s) ({', '.join(probers)}) sit on bridge {topo.bridge} "
            f"in a host namespace ({topo.host_ns}) that NATs them to a DNS server upstream "
            f"({topo.dns_server}). The bridge's MAC is not pinned: like any bridge created "
            "with `ip link add`, it takes the smallest MAC among its ports.",
        )
        churner = (
            "a veth port joins"
            if engine == "veth"
            else "a `docker run --rm busybox sleep` container joins"
        )
        _say(
            out,
            2,
            "Watching with churn",
            f"Like CI jobs, {churner} {topo.bridge} for {opts.t_in:.0f} s and leaves for "
            f"{opts.t_out:.0f} s, again and again; each container asks {topo.dns_name} "
            f"{opts.rate:.0f} times a second, and so does the host namespace itself, as a "
            "control.",
        )
        with LabProgress(err) as progress:
            before = watch_phase(
                session, opts, store_path, "before", seed, progress=progress.update
            )

        _say(out, 3, "What `netsleuth report` concludes from the store")
        with Store(store_path) as store:
            analysis = analyze(store, runs=[before.run_id])
        report = to_json(analysis)
        if not as_json:
            render_terminal(analysis, console)

        try:
            machine_id: str | None = read_machine_id()
        except NetsleuthError:
            machine_id = None
        _say(
            out,
            4,
            "The fix",
            f"netsleuth fix bridge {topo.bridge} --netns {topo.host_ns} --mac auto "
            "--arp-notify --persist none --apply",
        )
        fixed = fix_bridge(topo.host_ns, topo.bridge, machine_id or topo.run_id.rjust(32, "0"), out)
        pinned = fixed.mac
        out.print(
            f"{topo.bridge} now has the fixed MAC {pinned} (addr_assign_type 3): ports "
            "joining and leaving no longer move it, and arp_notify announced the new "
            f"MAC to every container on the bridge. {fixed.conntrack_deleted} conntrack "
            "entries the flooded queries had left without NAT were deleted.",
            highlight=False,
        )
        settle = wait_healthy(topo, session.probe_paths, timeout=60.0)
        out.print(
            "Every container answers DNS again "
            + (
                f"{settle:.1f} s after the fix."
                if settle is not None
                else "... not yet after 60 s: some neighbour entry is still stale."
            ),
            highlight=False,
        )

        _say(out, 5, "Watching again, same churn")
        with LabProgress(err) as progress:
            after = watch_phase(session, opts, store_path, "after", seed, progress=progress.update)

        _say(out, 6, "Before and after")
        if not as_json:
            console.print(results_table([before, after], title="lab demo"))
    elapsed = time.monotonic() - started
    outcome: dict[str, Any] = {
        "engine": engine,
        "before": before.to_json(),
        "verdict": report.get("verdict"),
        "fixed_mac": pinned,
        "conntrack_entries_deleted": fixed.conntrack_deleted,
        "recovered_after_s": settle,
        "after": after.to_json(),
        "seconds": elapsed,
    }
    if as_json:
        print(json.dumps(outcome, indent=2, default=str))
    else:
        verdict = report.get("verdict") or {}
        console.print(
            f"cause: {verdict.get('cause')} on {verdict.get('bridge')} "
            f"({verdict.get('confidence')}); failures {before.failed}/{before.probes} before, "
            f"{after.failed}/{after.probes} after the fix. The lab is gone "
            f"({elapsed:.0f} s in all).",
            highlight=False,
        )
    return 0
