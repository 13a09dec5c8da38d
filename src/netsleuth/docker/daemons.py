"""Every dockerd running on this machine, as ``doctor`` needs to see them:
socket(s), bridge, whether it writes firewall rules / forwards / masquerades,
data root, and the network namespace it runs in.

:func:`parse_dockerd` is pure (command line + the daemon's JSON config →
:class:`DaemonInfo`); :func:`list_daemons` is the ``/proc`` adapter.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_CONFIG", "DaemonInfo", "list_daemons", "parse_dockerd"]

DEFAULT_CONFIG = "/etc/docker/daemon.json"
DEFAULT_HOST = "unix:///var/run/docker.sock"

# flag → (config key, takes a value)
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
class DaemonInfo:
    """One dockerd. ``bridge`` is ``docker0`` unless ``--bridge`` names a
    bridge made by someone else (``bridge_precreated``); ``"none"`` means no
    default bridge network."""

    pid: int
    hosts: tuple[str, ...]
    bridge: str
    bridge_precreated: bool
    iptables: bool
    ip_forward: bool
    ip_masq: bool
    data_root: str
    exec_root: str
    config_file: str
    storage_driver: str
    netns_inode: int | None = None


def _to_bool(value: str) -> bool:
    return value.strip().lower() not in ("false", "0", "no", "off")


def parse_dockerd(
    pid: int,
    argv: Sequence[str],
    config: Mapping[str, Any] | None = None,
    netns_inode: int | None = None,
) -> DaemonInfo:
    """Pure: flags win over the JSON config, which wins over dockerd's defaults."""
    flags: dict[str, Any] = {}
    hosts: list[str] = []
    args = list(argv[1:])
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
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

    bridge = str(merged.get("bridge") or "docker0")
    return DaemonInfo(
        pid=pid,
        hosts=tuple(hosts),
        bridge=bridge,
        bridge_precreated=bridge not in ("docker0", "none"),
        iptables=flag_bool("iptables"),
        ip_forward=flag_bool("ip-forward"),
        ip_masq=flag_bool("ip-masq"),
        data_root=str(merged.get("data-root") or "/var/lib/docker"),
        exec_root=str(merged.get("exec-root") or "/var/run/docker"),
        config_file=str(merged.get("config-file") or DEFAULT_CONFIG),
        storage_driver=str(merged.get("storage-driver") or ""),
        netns_inode=netns_inode,
    )


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def list_daemons(proc: Path = Path("/proc")) -> list[DaemonInfo]:
    """Every running dockerd, from ``/proc/PID/cmdline`` and its config file
    (read through ``/proc/PID/root``, so a daemon in a container or private
    mount namespace is read as it sees it)."""
    found = []
    for entry in sorted(proc.iterdir(), key=lambda p: p.name):
        if not entry.name.isdigit():
            continue
        try:
            exe = os.readlink(entry / "exe")
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if os.path.basename(exe.removesuffix(" (deleted)")) != "dockerd":
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        first = parse_dockerd(int(entry.name), args)
        config = _read_config(entry / "root" / first.config_file.lstrip("/"))
        try:
            inode: int | None = os.stat(entry / "ns" / "net").st_ino
        except OSError:
            inode = None
        found.append(parse_dockerd(int(entry.name), args, config, inode))
    return found
