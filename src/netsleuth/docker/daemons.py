"""Every dockerd running on this machine, as ``doctor`` needs to see them:
socket(s), bridge, whether it writes firewall rules / forwards / masquerades,
data root, and the network namespace it runs in.

:func:`parse_dockerd` is pure (command line + the daemon's JSON config →
:class:`DockerdProcess`) and the one parser of dockerd command lines;
:func:`list_daemons` is the ``/proc`` adapter, which can also ask each
daemon's API which bridges its networks use.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_HOST",
    "DockerdProcess",
    "list_daemons",
    "network_bridges",
    "parse_dockerd",
]

DEFAULT_CONFIG = "/etc/docker/daemon.json"
DEFAULT_HOST = "unix:///var/run/docker.sock"

# flag → config key; these take a value
_VALUE_FLAGS = {
    "-H": "hosts",
    "--host": "hosts",
    "-b": "bridge",
    "--bridge": "bridge",
    "--bip": "bip",
    "--data-root": "data-root",
    "-g": "data-root",
    "--graph": "data-root",
    "--exec-root": "exec-root",
    "--config-file": "config-file",
    "--fixed-cidr": "fixed-cidr",
    "--storage-driver": "storage-driver",
    "-s": "storage-driver",
}
_BOOL_FLAGS = {
    "--iptables": "iptables",
    "--ip6tables": "ip6tables",
    "--ip-forward": "ip-forward",
    "--ip-masq": "ip-masq",
    "--userland-proxy": "userland-proxy",
}
_BOOL_DEFAULTS = {
    "iptables": True,
    "ip6tables": False,
    "ip-forward": True,
    "ip-masq": True,
    "userland-proxy": True,
}


@dataclass(frozen=True, slots=True)
class DockerdProcess:
    """A dockerd found running on the machine (the throwaway daemon netsleuth
    starts itself is a :class:`~netsleuth.docker.daemon.DockerDaemon`).

    ``bridge`` is the bridge of its default network: ``docker0`` unless it
    was told another (``--bridge``/``-b`` or daemon.json ``bridge``;
    ``bridge_source`` then says where), ``"none"`` for no default bridge
    network. ``network_bridges`` are the bridges its networks name
    (``com.docker.network.bridge.name``), when its API was asked and answered.
    """

    pid: int
    argv: tuple[str, ...] = ()
    hosts: tuple[str, ...] = (DEFAULT_HOST,)
    bridge: str = "docker0"
    bridge_source: str = ""
    iptables: bool = True
    ip_forward: bool = True
    ip_masq: bool = True
    data_root: str = "/var/lib/docker"
    exec_root: str = "/var/run/docker"
    config_file: str = DEFAULT_CONFIG
    storage_driver: str = ""
    netns_inode: int | None = None
    network_bridges: tuple[str, ...] = ()

    @property
    def bridge_precreated(self) -> bool:
        """Its default network uses a bridge made by someone else."""
        return self.bridge not in ("docker0", "none")

    @property
    def told_bridge(self) -> str:
        """The bridge it was told to use; empty when none was named (or ``none``)."""
        return self.bridge if self.bridge_source and self.bridge != "none" else ""


def _to_bool(value: str) -> bool:
    return value.strip().lower() not in ("false", "0", "no", "off")


def parse_dockerd(
    pid: int,
    argv: Sequence[str],
    config: Mapping[str, Any] | None = None,
    netns_inode: int | None = None,
    *,
    config_shown_as: str | None = None,
) -> DockerdProcess:
    """Pure: flags win over the JSON config, which wins over dockerd's defaults.
    ``config_shown_as`` is how ``bridge_source`` names the config file
    (default: the path the daemon reads)."""
    flags: dict[str, Any] = {}
    hosts: list[str] = []
    args = list(argv[1:])
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name not in _VALUE_FLAGS and name not in _BOOL_FLAGS:
            short = arg[:2]
            if short in _VALUE_FLAGS and not arg.startswith("--") and len(arg) > 2:
                name, eq, value = short, "=", arg[2:]  # -bbr0
        if name in _VALUE_FLAGS:
            if not eq:
                i += 1
                value = args[i] if i < len(args) else ""
            key = _VALUE_FLAGS[name]
            if key == "hosts":
                hosts.append(value)
            else:
                flags[key] = value
        elif name in _BOOL_FLAGS:
            flags[_BOOL_FLAGS[name]] = _to_bool(value) if eq else True
        i += 1
    cfg = dict(config or {})
    merged = {**cfg, **flags}
    if not hosts:
        hosts = [str(h) for h in cfg.get("hosts", [])] or [DEFAULT_HOST]

    def flag_bool(key: str) -> bool:
        value = merged.get(key, _BOOL_DEFAULTS[key])
        return value if isinstance(value, bool) else _to_bool(str(value))

    config_file = str(merged.get("config-file") or DEFAULT_CONFIG)
    if flags.get("bridge"):
        bridge, source = str(flags["bridge"]), "--bridge"
    elif cfg.get("bridge"):
        bridge, source = str(cfg["bridge"]), f"{config_shown_as or config_file} bridge"
    else:
        bridge, source = "docker0", ""
    return DockerdProcess(
        pid=pid,
        argv=tuple(argv),
        hosts=tuple(hosts),
        bridge=bridge,
        bridge_source=source,
        iptables=flag_bool("iptables"),
        ip_forward=flag_bool("ip-forward"),
        ip_masq=flag_bool("ip-masq"),
        data_root=str(merged.get("data-root") or "/var/lib/docker"),
        exec_root=str(merged.get("exec-root") or "/var/run/docker"),
        config_file=config_file,
        storage_driver=str(merged.get("storage-driver") or ""),
        netns_inode=netns_inode,
    )


def _load_config(path: Path) -> dict[str, Any]:
    """A daemon.json; empty when it is missing or not a JSON object.
    PermissionError goes to the caller."""
    try:
        data = json.loads(path.read_text())
    except PermissionError:
        raise
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_config(
    entry: Path, config_file: str, etc_root: Path | None
) -> tuple[dict[str, Any], str]:
    """The daemon's config and how to name it. Live (``etc_root`` None): read
    as the daemon sees it, through ``/proc/PID/root``; a tree: its ``/etc``
    files under ``etc_root``."""
    if etc_root is not None:
        path = Path(config_file)
        if config_file.startswith("/etc/"):
            path = etc_root / config_file[len("/etc/") :]
        with contextlib.suppress(PermissionError):
            return _load_config(path), str(path)
        return {}, str(path)
    try:
        return _load_config(entry / "root" / config_file.lstrip("/")), config_file
    except PermissionError:  # not root: the file as this process sees it
        with contextlib.suppress(PermissionError):
            return _load_config(Path(config_file)), config_file
        return {}, config_file


def _program(entry: Path, argv: Sequence[str]) -> str:
    """The executable's name (the command line's first word where /proc
    does not show the executable, e.g. a copied tree)."""
    try:
        exe = os.readlink(entry / "exe")
    except OSError:
        return os.path.basename(argv[0])
    return os.path.basename(exe.removesuffix(" (deleted)"))


def list_daemons(
    proc: Path = Path("/proc"), *, etc_root: Path | None = None, query_api: bool = False
) -> list[DockerdProcess]:
    """Every running dockerd, from ``/proc/PID/cmdline`` and its config file
    (read through ``/proc/PID/root``, so a daemon in a container or private
    mount namespace is read as it sees it; under ``etc_root`` for a copied
    tree). ``query_api`` adds the bridges its networks use."""
    try:
        entries = sorted((e for e in proc.iterdir() if e.name.isdigit()), key=lambda e: int(e.name))
    except OSError:
        return []
    found = []
    for entry in entries:
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        if not args or _program(entry, args) != "dockerd":
            continue
        pid = int(entry.name)
        config, shown = _read_config(entry, parse_dockerd(pid, args).config_file, etc_root)
        try:
            inode: int | None = os.stat(entry / "ns" / "net").st_ino
        except OSError:
            inode = None
        info = parse_dockerd(pid, args, config, inode, config_shown_as=shown)
        if query_api:
            info = replace(info, network_bridges=network_bridges(info))
        found.append(info)
    return found


def network_bridges(daemon: DockerdProcess) -> tuple[str, ...]:
    """Bridge names of the daemon's networks, when its API (on a unix socket
    that exists) answers quickly; empty otherwise: only optional evidence."""
    from netsleuth.docker.client import api_errors, connect

    sockets = [h for h in daemon.hosts if h.startswith("unix://")]
    host = next((h for h in sockets if Path(h[len("unix://") :]).exists()), None)
    if host is None:
        return ()
    try:
        with contextlib.closing(connect(host, 2)) as client:
            names = []
            for net in client.networks.list():
                name = (net.attrs.get("Options") or {}).get("com.docker.network.bridge.name")
                if name:
                    names.append(str(name))
    except api_errors():
        return ()
    return tuple(sorted(names))
