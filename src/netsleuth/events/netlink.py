"""Netlink event source: one thread per namespace, event-driven (no polling).

The host layer (:mod:`netsleuth.netns.notify`) gives the socket, born inside
the namespace and subscribed to link, address, route and neighbour groups,
its decoder and the initial dump; here the socket is read with ``poll``, each
message becomes one of :mod:`.state`'s plain messages (:func:`decode`), and
the dump seeds the :class:`~netsleuth.events.state.NamespaceState` without
emitting events.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netsleuth.errors import NetsleuthError
from netsleuth.events.state import (
    AddrMsg,
    FdbMsg,
    LinkInfo,
    LinkMsg,
    NamespaceState,
    NeighMsg,
    RouteMsg,
)
from netsleuth.model import EventKind, NetEvent, NoteDetail
from netsleuth.netns import notify

__all__ = ["NetlinkMonitor", "wall_mono"]

AF_INET, AF_BRIDGE, RT_TABLE_MAIN = notify.AF_INET, notify.AF_BRIDGE, notify.RT_TABLE_MAIN
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
RTM_NEWNEIGH, RTM_DELNEIGH = 28, 29


def wall_mono() -> tuple[int, int]:
    return time.time_ns(), time.monotonic_ns()


def _link_info(msg: Any) -> LinkInfo:
    kind = ""
    linkinfo = msg.get_attr("IFLA_LINKINFO")
    if linkinfo is not None:
        kind = linkinfo.get_attr("IFLA_INFO_KIND") or ""
    return LinkInfo(
        index=msg["index"],
        name=msg.get_attr("IFLA_IFNAME") or "",
        mac=msg.get_attr("IFLA_ADDRESS") or "",
        master=msg.get_attr("IFLA_MASTER") or 0,
        operstate=msg.get_attr("IFLA_OPERSTATE") or "",
        mtu=msg.get_attr("IFLA_MTU") or 0,
        kind=kind,
    )


def decode(msg: Any) -> LinkMsg | AddrMsg | RouteMsg | NeighMsg | FdbMsg | None:
    """One pyroute2 message -> one of our plain messages (or None to ignore)."""
    mtype = msg["header"]["type"]
    if mtype in (RTM_NEWLINK, RTM_DELLINK):
        if msg["family"] == AF_BRIDGE:
            return None  # per-port bridge state notifications duplicate the AF_UNSPEC ones
        return LinkMsg(mtype == RTM_DELLINK, _link_info(msg))
    if mtype in (RTM_NEWADDR, RTM_DELADDR):
        if msg["family"] != AF_INET:
            return None
        addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS") or ""
        return AddrMsg(mtype == RTM_DELADDR, msg["index"], addr, msg["prefixlen"])
    if mtype in (RTM_NEWROUTE, RTM_DELROUTE):
        table = msg.get_attr("RTA_TABLE") or msg["table"]
        if msg["family"] != AF_INET or table != RT_TABLE_MAIN:
            return None
        dst = msg.get_attr("RTA_DST")
        dst_text = f"{dst}/{msg['dst_len']}" if dst else "default"
        return RouteMsg(
            mtype == RTM_DELROUTE,
            dst_text,
            msg.get_attr("RTA_GATEWAY") or "",
            msg.get_attr("RTA_OIF") or 0,
        )
    if mtype in (RTM_NEWNEIGH, RTM_DELNEIGH):
        deleted = mtype == RTM_DELNEIGH
        if msg["family"] == AF_BRIDGE:
            return FdbMsg(
                deleted,
                msg["ifindex"],
                msg.get_attr("NDA_MASTER") or 0,
                msg.get_attr("NDA_LLADDR") or "",
                msg["state"],
            )
        if msg["family"] != AF_INET:
            return None
        return NeighMsg(
            deleted,
            msg["ifindex"],
            msg.get_attr("NDA_DST") or "",
            msg.get_attr("NDA_LLADDR") or "",
            msg["state"],
        )
    return None


def apply(
    state: NamespaceState, item: LinkMsg | AddrMsg | RouteMsg | NeighMsg | FdbMsg
) -> list[NetEvent]:
    if isinstance(item, LinkMsg):
        return state.on_link(item)
    if isinstance(item, AddrMsg):
        return state.on_addr(item)
    if isinstance(item, RouteMsg):
        return state.on_route(item)
    if isinstance(item, NeighMsg):
        return state.on_neigh(item)
    return state.on_fdb(item)


class NetlinkMonitor:
    """Follows one namespace; calls ``sink(events)`` from its own thread.

    ``fdb``: also record bridge FDB changes (the host namespace).
    ``after``: called after each batch with the state, to re-check invariants.
    """

    def __init__(
        self,
        label: str,
        path: str | Path | None,
        sink: Callable[[list[NetEvent]], None],
        *,
        fdb: bool = False,
        neigh_filter: Callable[[str], bool] | None = None,
        sysfs_root: Callable[[], Path | None] = lambda: Path("/sys"),
        lock: threading.RLock | None = None,
    ) -> None:
        self.label = label
        # Held while this monitor updates its state and calls the sink, so a
        # sink that reads several monitors' states sees none of them mid-update.
        self._lock = lock if lock is not None else threading.RLock()
        self.path = path
        self.sink = sink
        self.fdb = fdb
        self._sysfs_root = sysfs_root
        self.state = NamespaceState(label, wall_mono, self.addr_assign_type)
        if neigh_filter is not None:
            self.state.record_neigh_for = neigh_filter
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._sock = self._open_socket()
        self._seed()
        self._thread = threading.Thread(target=self._run, name=f"netlink:{label}", daemon=True)

    def addr_assign_type(self, ifname: str) -> int | None:
        root = self._sysfs_root()
        if root is None:
            return None
        try:
            return int((root / "class/net" / ifname / "addr_assign_type").read_text())
        except (OSError, ValueError):
            return None

    def _open_socket(self) -> socket.socket:
        return notify.subscribe(self.path)

    def _seed(self) -> None:
        """Dump the namespace into the state (at start, and after an overrun);
        no events for what already is."""
        state = self.state
        state.links.clear()
        state.addrs.clear()
        state.prefixes.clear()
        state.neigh.clear()
        state.fdb.clear()
        state.gateway, state.gateway_oif = "", 0
        for msg in notify.dump(self.path, fdb=self.fdb):
            item = decode(msg)
            if isinstance(item, LinkMsg):
                state.remember(item.link)
            elif isinstance(item, AddrMsg):
                state.on_addr(item)
            elif isinstance(item, RouteMsg):
                if item.dst == "default" and item.gateway:
                    state.gateway, state.gateway_oif = item.gateway, item.oif
            elif isinstance(item, NeighMsg):
                if item.lladdr:
                    state.neigh[item.ip] = (item.lladdr, item.state)
            elif isinstance(item, FdbMsg):
                state.on_fdb(item)

    def start(self) -> NetlinkMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        if self._thread.is_alive():
            self._thread.join()
        self._sock.close()
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _overrun(self) -> None:
        """The kernel dropped notifications (socket buffer full): say so on the
        timeline and re-read the namespace, so the state is right again."""
        with self._lock:
            self._seed()
            wall, mono = wall_mono()
            self.sink(
                [
                    NetEvent(
                        wall,
                        mono,
                        self.label,
                        EventKind.NOTE,
                        "",
                        "netlink overrun",
                        NoteDetail("events were lost; state re-read"),
                    )
                ]
            )

    def _run(self) -> None:
        marshal = notify.Decoder()
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        self.ready.set()
        try:
            while True:
                fds = {fd for fd, _ in poller.poll()}
                if self._stop_r in fds:
                    return
                batches = []
                while True:
                    try:
                        batches.append(self._sock.recv(1 << 20, socket.MSG_DONTWAIT))
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        if exc.errno != errno.ENOBUFS:
                            raise
                        self._overrun()
                        batches.clear()
                events: list[NetEvent] = []
                with self._lock:
                    for data in batches:
                        for msg in marshal.parse(data):
                            item = decode(msg)
                            if item is None or (isinstance(item, FdbMsg) and not self.fdb):
                                continue
                            events.extend(apply(self.state, item))
                    self.sink(events)
        except (OSError, NetsleuthError) as exc:  # the namespace went away
            self.error = exc
