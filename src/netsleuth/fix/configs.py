"""Find where a bridge is defined in the host's network configuration and
write its MAC there, one :class:`Writer` per network manager.

Each writer parses its format, finds the bridge (never guesses a file),
renders the edited text, and reads the result back with the same parser:
if the result does not say exactly the old thing plus the new MAC, the
edit is refused. Files are written atomically after a backup, only when
their text changes, so applying twice changes nothing.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from netsleuth.errors import NetsleuthError

__all__ = [
    "WRITERS",
    "Definition",
    "Edit",
    "EditRefused",
    "IfupdownWriter",
    "NetplanWriter",
    "NetworkManagerWriter",
    "NetworkdWriter",
    "Writer",
    "find_definitions",
    "plan_edit",
    "write_edit",
]


class EditRefused(NetsleuthError):
    """The file could not be edited safely; nothing was written."""


@dataclass(frozen=True, slots=True)
class Definition:
    """A bridge defined in ``path`` by ``manager``; ``mac`` as configured."""

    manager: str
    path: Path
    bridge: str
    mac: str = ""


@dataclass(frozen=True, slots=True)
class Edit:
    manager: str
    path: Path
    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.old.splitlines(keepends=True),
                self.new.splitlines(keepends=True),
                fromfile=f"{self.path} (now)",
                tofile=f"{self.path} (after fix)",
            )
        )


class Writer(Protocol):
    """One network manager's configuration format."""

    @property
    def manager(self) -> str: ...

    def files(self, etc_root: Path) -> list[Path]: ...

    def read_mac(self, text: str, bridge: str, path: Path) -> str | None:
        """The configured MAC ('' if none), or None if ``text`` does not
        define the bridge."""

    def canonical(self, text: str, bridge: str, path: Path) -> Any:
        """The parsed content without the bridge's MAC (for the read-back)."""

    def render(self, text: str, bridge: str, mac: str) -> str: ...

    def hint(self, bridge: str, mac: str) -> str: ...


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _under(etc_root: Path, path: str) -> Path:
    """Map an absolute /etc path named inside a file to the configured root."""
    if path.startswith("/etc/"):
        return etc_root / path[len("/etc/") :]
    return Path(path)


# --- ifupdown ------------------------------------------------------------

_STANZA = ("iface", "mapping", "auto", "source", "source-directory", "rename", "allow-")
_IFUPDOWN_MAC_KEYS = ("hwaddress", "bridge_hw", "bridge-hw")
_SOURCE_DIR_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")


@dataclass(frozen=True)
class _Stanza:
    name: str
    header: int  # line index of "iface ..."
    options: tuple[tuple[int, str, str], ...]  # (line index, key, value)


def _ifupdown_stanzas(text: str) -> list[_Stanza]:
    stanzas: list[_Stanza] = []
    current: list[Any] | None = None
    for i, raw in enumerate(text.splitlines()):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word = line.split()[0]
        if word.startswith(_STANZA) or word in _STANZA:
            if current is not None:
                stanzas.append(_Stanza(current[0], current[1], tuple(current[2])))
                current = None
            if word == "iface" and len(line.split()) >= 2:
                current = [line.split()[1], i, []]
            continue
        if current is not None:
            key, _, value = line.partition(" ")
            current[2].append((i, key, value.strip()))
    if current is not None:
        stanzas.append(_Stanza(current[0], current[1], tuple(current[2])))
    return stanzas


def _is_bridge_stanza(st: _Stanza) -> bool:
    return any(k in ("bridge_ports", "bridge-ports") for _, k, _ in st.options)


def _mac_value(key: str, value: str) -> str:
    parts = value.split()
    if key == "hwaddress" and parts and parts[0] == "ether":
        parts = parts[1:]
    return parts[0].lower() if parts else ""


class IfupdownWriter:
    manager = "ifupdown"

    def files(self, etc_root: Path) -> list[Path]:
        start = etc_root / "network" / "interfaces"
        seen: list[Path] = []
        todo = [start]
        while todo and len(seen) < 256:
            path = todo.pop(0)
            if path in seen or not path.is_file():
                continue
            seen.append(path)
            for raw in (_read(path) or "").splitlines():
                words = raw.split()
                if len(words) < 2 or words[0] not in ("source", "source-directory"):
                    continue
                target = words[1]
                if not target.startswith("/"):
                    target = str(path.parent / target)
                mapped = _under(etc_root, target)
                if words[0] == "source":
                    todo += sorted(mapped.parent.glob(mapped.name))
                elif mapped.is_dir():
                    todo += sorted(p for p in mapped.iterdir() if _SOURCE_DIR_NAME.match(p.name))
        return seen

    def read_mac(self, text: str, bridge: str, path: Path) -> str | None:
        found: str | None = None
        for st in _ifupdown_stanzas(text):
            if st.name != bridge or not _is_bridge_stanza(st):
                continue
            found = found or ""
            for _, key, value in st.options:
                if key in _IFUPDOWN_MAC_KEYS:
                    found = _mac_value(key, value)
        return found

    def canonical(self, text: str, bridge: str, path: Path) -> Any:
        return [
            (
                st.name,
                text.splitlines()[st.header].split(),
                [
                    (k, v)
                    for _, k, v in st.options
                    if not (st.name == bridge and k in _IFUPDOWN_MAC_KEYS)
                ],
            )
            for st in _ifupdown_stanzas(text)
        ]

    def render(self, text: str, bridge: str, mac: str) -> str:
        lines = text.splitlines()
        stanzas = [s for s in _ifupdown_stanzas(text) if s.name == bridge and _is_bridge_stanza(s)]
        if not stanzas:
            raise EditRefused(f"no bridge stanza for {bridge}")
        st = stanzas[0]
        existing = [(i, k) for i, k, _ in st.options if k in _IFUPDOWN_MAC_KEYS]
        first = lines[st.options[0][0]] if st.options else "    x"
        indent = first[: len(first) - len(first.lstrip())] or "    "
        if existing:
            i, key = existing[-1]
            value = f"ether {mac}" if key == "hwaddress" else mac
            lines[i] = f"{indent}{key} {value}"
        else:
            last = st.options[-1][0] if st.options else st.header
            lines.insert(last + 1, f"{indent}hwaddress ether {mac}")
        return "\n".join(lines) + ("\n" if text.endswith("\n") or not text else "")

    def hint(self, bridge: str, mac: str) -> str:
        return (
            f"in the 'iface {bridge} ...' stanza of /etc/network/interfaces add the "
            f"option line 'hwaddress ether {mac}'"
        )


# --- ini-style (systemd-networkd, NetworkManager keyfiles) ----------------


def _ini_sections(text: str) -> list[tuple[str, list[tuple[int, str, str]], int]]:
    """[(section, [(line, key, value)], header line)] in file order."""
    out: list[tuple[str, list[tuple[int, str, str]], int]] = []
    for i, raw in enumerate(text.splitlines()):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            out.append((line[1:-1].strip(), [], i))
        elif "=" in line and out:
            key, value = line.split("=", 1)
            out[-1][1].append((i, key.strip(), value.strip()))
    return out


def _ini_get(text: str, section: str, key: str) -> str | None:
    value = None
    for name, items, _ in _ini_sections(text):
        if name == section:
            for _, k, v in items:
                if k == key:
                    value = v
    return value


def _ini_set(text: str, section: str, key: str, value: str, create: bool) -> str:
    lines = text.splitlines()
    sections = [s for s in _ini_sections(text) if s[0] == section]
    if not sections:
        if not create:
            raise EditRefused(f"no [{section}] section")
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", f"[{section}]", f"{key}={value}"]
        return "\n".join(lines) + "\n"
    _, items, header = sections[0]
    hits = [i for i, k, _ in items if k == key]
    if hits:
        if len(hits) > 1:
            raise EditRefused(f"{key}= appears twice in [{section}] (line {hits[1] + 1})")
        lines[hits[-1]] = f"{key}={value}"
    else:
        last = items[-1][0] if items else header
        lines.insert(last + 1, f"{key}={value}")
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def _ini_canonical(text: str, drop: tuple[str, str]) -> Any:
    return [
        (name, [(k, v) for _, k, v in items if (name, k) != drop])
        for name, items, _ in _ini_sections(text)
    ]


class NetworkdWriter:
    """``.netdev`` files with ``[NetDev] Kind=bridge``; only /etc is edited
    (a vendor file under /usr/lib must be overridden by hand)."""

    manager = "networkd"

    def files(self, etc_root: Path) -> list[Path]:
        d = etc_root / "systemd" / "network"
        return sorted(d.glob("*.netdev")) if d.is_dir() else []

    def read_mac(self, text: str, bridge: str, path: Path) -> str | None:
        if _ini_get(text, "NetDev", "Name") != bridge:
            return None
        if _ini_get(text, "NetDev", "Kind") != "bridge":
            return None
        return (_ini_get(text, "NetDev", "MACAddress") or "").lower()

    def canonical(self, text: str, bridge: str, path: Path) -> Any:
        return _ini_canonical(text, ("NetDev", "MACAddress"))

    def render(self, text: str, bridge: str, mac: str) -> str:
        return _ini_set(text, "NetDev", "MACAddress", mac, create=False)

    def hint(self, bridge: str, mac: str) -> str:
        return (
            f"in the .netdev file with Name={bridge} add to [NetDev]: MACAddress={mac} "
            f"(or create /etc/systemd/network/{bridge}.netdev with [NetDev] Name={bridge} "
            f"Kind=bridge MACAddress={mac})"
        )


class NetworkManagerWriter:
    """Keyfiles with ``[connection] type=bridge``; the MAC goes to
    ``[bridge] mac-address``."""

    manager = "networkmanager"

    def files(self, etc_root: Path) -> list[Path]:
        d = etc_root / "NetworkManager" / "system-connections"
        if not d.is_dir():
            return []
        return sorted(
            p
            for p in d.iterdir()
            if p.is_file() and not p.name.endswith(("~", ".bak", ".orig", ".tmp", ".swp"))
        )

    def read_mac(self, text: str, bridge: str, path: Path) -> str | None:
        if _ini_get(text, "connection", "type") != "bridge":
            return None
        if _ini_get(text, "connection", "interface-name") != bridge:
            return None
        return (_ini_get(text, "bridge", "mac-address") or "").lower()

    def canonical(self, text: str, bridge: str, path: Path) -> Any:
        return [s for s in _ini_canonical(text, ("bridge", "mac-address")) if s != ("bridge", [])]

    def render(self, text: str, bridge: str, mac: str) -> str:
        return _ini_set(text, "bridge", "mac-address", mac.upper(), create=True)

    def hint(self, bridge: str, mac: str) -> str:
        return f"nmcli connection modify <bridge connection of {bridge}> bridge.mac-address {mac}"


# --- netplan -------------------------------------------------------------


def _netplan_doc(text: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EditRefused(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    return doc if isinstance(doc, dict) else {}


def _netplan_bridge(doc: dict[str, Any], bridge: str) -> dict[str, Any] | None:
    net = doc.get("network")
    bridges = net.get("bridges") if isinstance(net, dict) else None
    if not isinstance(bridges, dict) or bridge not in bridges:
        return None
    node = bridges[bridge]
    return node if isinstance(node, dict) else {}


class NetplanWriter:
    """``network: bridges: BR:`` in /etc/netplan/*.yaml. The edit is textual
    (comments survive) and is checked by parsing the result."""

    manager = "netplan"

    def files(self, etc_root: Path) -> list[Path]:
        d = etc_root / "netplan"
        return sorted(d.glob("*.yaml")) if d.is_dir() else []

    def read_mac(self, text: str, bridge: str, path: Path) -> str | None:
        node = _netplan_bridge(_netplan_doc(text), bridge)
        if node is None:
            return None
        return str(node.get("macaddress") or "").lower()

    def canonical(self, text: str, bridge: str, path: Path) -> Any:
        doc = _netplan_doc(text)
        node = _netplan_bridge(doc, bridge)
        if node is not None:
            node.pop("macaddress", None)
        return doc

    def render(self, text: str, bridge: str, mac: str) -> str:
        lines = text.splitlines()
        # Find "bridges:" then the bridge's key inside it, in block style.
        b_idx = next((i for i, ln in enumerate(lines) if re.match(r"\s*bridges:\s*$", ln)), None)
        if b_idx is None:
            raise EditRefused("no block-style 'bridges:' mapping (flow style is not edited)")
        b_indent = len(lines[b_idx]) - len(lines[b_idx].lstrip())
        key_re = re.compile(rf"^(\s*)[\"']?{re.escape(bridge)}[\"']?:\s*(#.*)?$")
        k_idx = None
        for i in range(b_idx + 1, len(lines)):
            ln = lines[i]
            if ln.strip() and not ln.lstrip().startswith("#"):
                indent = len(ln) - len(ln.lstrip())
                if indent <= b_indent:
                    break
                m = key_re.match(ln)
                if m and len(m.group(1)) > b_indent:
                    k_idx = i
                    break
        if k_idx is None:
            raise EditRefused(f"{bridge} is not a block-style key under 'bridges:'")
        k_indent = len(lines[k_idx]) - len(lines[k_idx].lstrip())
        child_indent: int | None = None
        end = len(lines)
        mac_line = None
        for i in range(k_idx + 1, len(lines)):
            ln = lines[i]
            if not ln.strip() or ln.lstrip().startswith("#"):
                continue
            indent = len(ln) - len(ln.lstrip())
            if indent <= k_indent:
                end = i
                break
            if child_indent is None:
                child_indent = indent
            if indent == child_indent and re.match(r"\s*macaddress\s*:", ln):
                mac_line = i
        pad = " " * (child_indent if child_indent is not None else k_indent + 2)
        if mac_line is not None:
            lines[mac_line] = f'{pad}macaddress: "{mac}"'
        else:
            insert = end
            while insert - 1 > k_idx and not lines[insert - 1].strip():
                insert -= 1
            lines.insert(insert, f'{pad}macaddress: "{mac}"')
        return "\n".join(lines) + ("\n" if text.endswith("\n") else "")

    def hint(self, bridge: str, mac: str) -> str:
        return f'under network: bridges: {bridge}: in /etc/netplan/*.yaml add: macaddress: "{mac}"'


WRITERS: dict[str, Writer] = {
    w.manager: w
    for w in (IfupdownWriter(), NetworkdWriter(), NetworkManagerWriter(), NetplanWriter())
}


def find_definitions(
    etc_root: Path, bridge: str, managers: list[str] | None = None
) -> list[Definition]:
    """Every file of the selected managers that defines ``bridge``."""
    out = []
    for name in managers or list(WRITERS):
        writer = WRITERS[name]
        for path in writer.files(etc_root):
            text = _read(path)
            if text is None:
                continue
            try:
                mac = writer.read_mac(text, bridge, path)
            except EditRefused:
                continue
            if mac is not None:
                out.append(Definition(manager=name, path=path, bridge=bridge, mac=mac))
    return out


def plan_edit(definition: Definition, mac: str) -> Edit:
    """The edit that sets ``mac`` in the file, verified by reading it back."""
    writer = WRITERS[definition.manager]
    old = _read(definition.path)
    if old is None:
        raise EditRefused(f"cannot read {definition.path}")
    if writer.read_mac(old, definition.bridge, definition.path) == mac.lower():
        return Edit(definition.manager, definition.path, old, old)
    try:
        new = writer.render(old, definition.bridge, mac)
    except EditRefused as exc:
        raise EditRefused(
            f"{definition.path}: {exc}; add it by hand: {writer.hint(definition.bridge, mac)}"
        ) from None
    back = writer.read_mac(new, definition.bridge, definition.path)
    same_rest = writer.canonical(old, definition.bridge, definition.path) == writer.canonical(
        new, definition.bridge, definition.path
    )
    if back != mac.lower() or not same_rest:
        raise EditRefused(
            f"{definition.path}: the edited file would not read back as intended; "
            f"add it by hand: {writer.hint(definition.bridge, mac)}"
        )
    return Edit(definition.manager, definition.path, old, new)


def write_edit(edit: Edit, clock: Callable[[], float] = time.time) -> Path | None:
    """Back up the file, then replace it atomically (mode kept). Returns
    the backup path, or None when the text did not change."""
    if not edit.changed:
        return None
    current = _read(edit.path)
    if current != edit.old:
        raise EditRefused(f"{edit.path} changed since it was read; run the fix again")
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(clock()))
    backup = edit.path.with_name(f"{edit.path.name}.netsleuth-{stamp}.bak")
    n = 0
    while backup.exists() and n < 100:
        n += 1
        backup = edit.path.with_name(f"{edit.path.name}.netsleuth-{stamp}-{n}.bak")
    st = edit.path.stat()
    backup.write_text(edit.old)
    os.chmod(backup, st.st_mode & 0o7777)
    fd, tmp = tempfile.mkstemp(dir=edit.path.parent, prefix=f".{edit.path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(edit.new)
        os.chmod(tmp, st.st_mode & 0o7777)
        os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, edit.path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return backup
