"""Sysctl plans that persist: set keys now and keep them in a sysctl.d file.

A kernel setting made with ``sysctl -w`` is lost at reboot; systemd-sysctl
(and ``sysctl --system``) applies ``/etc/sysctl.d/*.conf`` at boot, merged
by file name with ``/run/sysctl.d``, ``/usr/local/lib/sysctl.d`` and
``/usr/lib/sysctl.d`` (the same name in /etc wins), in name order, so a
later file overrides an earlier one; procps reads ``/etc/sysctl.conf`` last.
Where udev runs, systemd's rules re-run systemd-sysctl for
``net.ipv4.conf.IFACE.*`` whenever IFACE appears, and for
``net.netfilter.*`` when nf_conntrack is loaded.

A :class:`SysctlPlan` holds the settings (key, value now, value wanted), the
:class:`~netsleuth.fix.configs.Edit` of netsleuth's own sysctl.d file
(:func:`plan_sysctl_file`, pure over the file's text) and notes (why these
values, a later file that would override ours). :func:`apply_sysctl_plan`
carries it out: the kernel first (unless the plan persists only), then the
file, after a backup. Nothing already right is touched, so a second apply
changes nothing.
"""

from __future__ import annotations

import fnmatch
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netsleuth.fix.apply import set_sysctl
from netsleuth.fix.configs import Edit, EditRefused, write_edit

__all__ = [
    "SysctlPlan",
    "SysctlResult",
    "SysctlSetting",
    "apply_sysctl_plan",
    "file_header",
    "override_notes",
    "overriding_settings",
    "parse_sysctl_conf",
    "plan_sysctl_file",
    "render_sysctl_conf",
    "sysctl_file",
    "write_new_file",
]

# The directories systemd-sysctl merges, relative to the root above /etc.
_SYSCTL_DIRS = ("etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d")


@dataclass(frozen=True, slots=True)
class SysctlSetting:
    key: str
    before: str
    value: str

    @property
    def needed(self) -> bool:
        return self.before.split() != self.value.split()


@dataclass(frozen=True)
class SysctlPlan:
    """What a sysctl fix would do. ``netns`` is ``host`` or a namespace
    name; ``edit`` the sysctl.d file (None: not persisted, see ``notes``);
    ``runtime`` False when only the file is to be written."""

    what: str
    netns: str
    settings: tuple[SysctlSetting, ...]
    edit: Edit | None = None
    notes: tuple[str, ...] = ()
    runtime: bool = True

    @property
    def runtime_changes(self) -> tuple[SysctlSetting, ...]:
        return tuple(s for s in self.settings if s.needed) if self.runtime else ()

    @property
    def changes_anything(self) -> bool:
        return bool(self.runtime_changes) or (self.edit is not None and self.edit.changed)

    def steps(self) -> list[str]:
        where = "" if self.netns == "host" else f" (netns {self.netns})"
        out = []
        for s in self.settings:
            if not s.needed:
                out.append(f"{s.key} is already {s.value}{where}")
            elif self.runtime:
                out.append(f"set {s.key} {s.before} -> {s.value}{where}")
            else:
                out.append(f"leave {s.key} at {s.before} until the file is applied (persist only)")
        if self.edit is not None:
            out.append(
                f"write {self.edit.path}" + (", backup first" if self.edit.old else " (new file)")
                if self.edit.changed
                else f"{self.edit.path} already holds these values"
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "fix": self.what,
            "netns": self.netns,
            "settings": [
                {"key": s.key, "before": s.before, "wanted": s.value, "change": s.needed}
                for s in self.settings
            ],
            "runtime": self.runtime,
            "file": None
            if self.edit is None
            else {
                "path": str(self.edit.path),
                "changed": self.edit.changed,
                "diff": self.edit.diff(),
            },
            "notes": list(self.notes),
            "steps": self.steps(),
        }


@dataclass(frozen=True)
class SysctlResult:
    changed: tuple[str, ...] = ()
    backups: tuple[Path, ...] = field(default=())


def sysctl_file(etc_root: Path, name: str) -> Path:
    """netsleuth's sysctl.d file ``90-netsleuth-NAME.conf`` under ``etc_root``."""
    return etc_root / "sysctl.d" / f"90-netsleuth-{name}.conf"


def _norm(key: str) -> str:
    return key.strip().lstrip("-").replace("/", ".")


def parse_sysctl_conf(text: str) -> dict[str, str]:
    """``key = value`` lines (``#``/``;`` comments; a leading ``-`` only
    means "ignore errors"); a key given twice keeps the last value."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out[_norm(key)] = " ".join(value.split())
    return out


def render_sysctl_conf(old: str, values: Mapping[str, str], header: str) -> str:
    """``old`` with each key set to its value: the last line of a key is
    rewritten in place, a missing key is appended; a new file starts with
    ``header`` (comment lines)."""
    lines = old.splitlines()
    last: dict[str, int] = {}
    for i, raw in enumerate(lines):
        line = raw.strip()
        if line and line[0] not in "#;" and "=" in line:
            last[_norm(line.split("=", 1)[0])] = i
    out = list(lines) if old else [f"# {h}" if h else "#" for h in header.splitlines()]
    for key, value in values.items():
        if key in last:
            if parse_sysctl_conf(lines[last[key]]).get(key) != " ".join(value.split()):
                out[last[key]] = f"{key} = {value}"
        else:
            out.append(f"{key} = {value}")
    return "\n".join(out) + "\n"


def plan_sysctl_file(path: Path, values: Mapping[str, str], header: str) -> Edit:
    """The edit that makes ``path`` set ``values``, read back to check it."""
    if path.is_symlink():
        raise EditRefused(f"{path} is a symlink; edit the file it points to by hand")
    try:
        old = path.read_text() if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise EditRefused(f"cannot read {path}: {exc}") from None
    wanted = {k: " ".join(v.split()) for k, v in values.items()}
    if all(parse_sysctl_conf(old).get(k) == v for k, v in wanted.items()):
        return Edit("sysctl.d", path, old, old)
    new = render_sysctl_conf(old, values, header)
    read_back = parse_sysctl_conf(new)
    rest_before = {k: v for k, v in parse_sysctl_conf(old).items() if k not in wanted}
    rest_after = {k: v for k, v in read_back.items() if k not in wanted}
    if any(read_back.get(k) != v for k, v in wanted.items()) or rest_before != rest_after:
        raise EditRefused(f"{path}: the edited file would not read back as intended")
    return Edit("sysctl.d", path, old, new)


def _matches(pattern: str, key: str) -> bool:
    return pattern == key or ("*" in pattern and fnmatch.fnmatchcase(key, pattern))


def overriding_settings(etc_root: Path, ours: Path, values: Mapping[str, str]) -> list[str]:
    """Files read after ``ours`` at boot that set one of ``values``' keys to
    another value (they win): ``PATH: KEY = VALUE``."""
    root = etc_root.parent
    chosen: dict[str, Path] = {}
    for d in reversed(_SYSCTL_DIRS):  # /etc last: the same name there wins
        base = etc_root / "sysctl.d" if d == "etc/sysctl.d" else root / d
        for p in sorted(base.glob("*.conf")) if base.is_dir() else []:
            chosen[p.name] = p
    later = [chosen[n] for n in sorted(chosen) if n > ours.name]
    later.append(etc_root / "sysctl.conf")
    out = []
    for path in later:
        try:
            settings = parse_sysctl_conf(path.read_text())
        except (OSError, UnicodeDecodeError):
            continue
        for pattern, value in settings.items():
            for key, wanted in values.items():
                if _matches(pattern, key) and value != " ".join(wanted.split()):
                    out.append(f"{path}: {pattern} = {value}")
    return out


def override_notes(etc_root: Path, ours: Path, values: Mapping[str, str]) -> list[str]:
    """A note per setting of :func:`overriding_settings`."""
    return [
        f"overridden at boot by {o}: change it there"
        for o in overriding_settings(etc_root, ours, values)
    ]


def write_new_file(edit: Edit) -> None:
    """Create ``edit.path`` (mode 0644) atomically; refuse if it appeared."""
    edit.path.parent.mkdir(parents=True, exist_ok=True)
    if edit.path.exists():
        raise EditRefused(f"{edit.path} appeared since it was read; run the fix again")
    fd, tmp = tempfile.mkstemp(dir=edit.path.parent, prefix=f".{edit.path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(edit.new)
        os.chmod(tmp, 0o644)
        os.replace(tmp, edit.path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def apply_sysctl_plan(plan: SysctlPlan, netns: str | Path | None) -> SysctlResult:
    """Set each key that needs it (unless the plan persists only), then
    write the file (a backup first when it existed)."""
    changed: list[str] = []
    for s in plan.runtime_changes:
        old, new = set_sysctl(netns, s.key, s.value)
        if old.split() != new.split():
            changed.append(f"{s.key} {old} -> {new}")
    backups: list[Path] = []
    edit = plan.edit
    if edit is not None and edit.changed:
        if edit.old == "" and not edit.path.exists():
            write_new_file(edit)
            changed.append(f"{edit.path} written")
        else:
            backup = write_edit(edit)
            if backup is not None:
                backups.append(backup)
                changed.append(f"{edit.path} updated (backup {backup.name})")
    return SysctlResult(changed=tuple(changed), backups=tuple(backups))


def file_header(what: str, lines: Sequence[str]) -> str:
    """The comment a new sysctl.d file starts with."""
    return "\n".join([f"Written by `netsleuth fix {what}`; remove this file to undo.", *lines])
