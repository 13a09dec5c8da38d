"""``fix resolv-options NETNS``: stop glibc sending A and AAAA at once.

glibc's resolver sends the A and AAAA queries of a lookup in parallel from
one UDP socket. Through NAT the two packets race to insert the same
conntrack entry; the loser is dropped on kernels without clash resolution
(and in some DNAT cases after), and the lookup waits its 5 s timeout.
``options single-request-reopen`` makes glibc send the second query from a
new socket (a new conntrack entry) when it sees the first answer only.

:func:`render_resolv_options` decides (pure) the new text of a resolv.conf:
the option added on an ``options`` line of its own unless
``single-request-reopen``, ``single-request`` or ``use-vc`` is already
there, and ``ndots`` set when asked; :func:`plan_resolv_edit` reads the
result back with the parser doctor uses and refuses an edit that would say
anything else. A named namespace's resolv.conf is ``/etc/netns/NAME/
resolv.conf`` (what ``ip netns exec`` binds over /etc/resolv.conf); it is
rewritten in place after a backup, because an atomic rename would leave
processes that already run with the old file bound to the old inode. For a
Docker container netsleuth edits nothing (Docker writes the container's
resolv.conf from its own configuration): it prints the ``dns-opts`` to set.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netsleuth.audit.readers import parse_resolv_conf
from netsleuth.audit.rules import SERIAL_OPTIONS
from netsleuth.errors import InvalidArgument
from netsleuth.fix.configs import Edit, EditRefused
from netsleuth.fix.sysctld import write_new_file
from netsleuth.netns import Namespace

__all__ = [
    "REOPEN",
    "ResolvPlan",
    "ResolvTarget",
    "apply_resolv_plan",
    "container_instructions",
    "parse_target",
    "plan_resolv_edit",
    "read_resolv_plan",
    "render_resolv_options",
    "write_in_place",
]

REOPEN = "single-request-reopen"


@dataclass(frozen=True, slots=True)
class ResolvTarget:
    kind: str  # "netns" or "container"
    name: str

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"


def parse_target(text: str) -> ResolvTarget:
    """``NAME`` or ``netns:NAME`` (a name from ``ip netns list``), or
    ``container:NAME``."""
    kind, sep, name = text.partition(":")
    if not sep:
        kind, name = "netns", text
    if kind not in ("netns", "container") or not name or "/" in name:
        raise InvalidArgument(
            f"{text!r}: give a namespace name from `ip netns list` (or netns:NAME), or "
            "container:NAME"
        )
    return ResolvTarget(kind, name)


def _set_ndots(words: list[str], ndots: int) -> list[str]:
    return [f"ndots:{ndots}" if w.startswith("ndots:") else w for w in words]


def render_resolv_options(text: str, ndots: int | None = None) -> str:
    """``text`` with ``options single-request-reopen`` (unless a serialising
    option is there) and, when given, ``ndots:N`` (in place where an
    ``ndots:`` is set, else on the new line). Unchanged text is returned as is."""
    _, options, _ = parse_resolv_conf(text)
    add = [] if set(options) & set(SERIAL_OPTIONS) else [REOPEN]
    lines = text.splitlines()
    has_ndots = any(o.startswith("ndots:") for o in options)
    if ndots is not None:
        if has_ndots:
            for i, raw in enumerate(lines):
                words = raw.split()
                if words and words[0] == "options":
                    new = _set_ndots(words, ndots)
                    if new != words:
                        lines[i] = " ".join(new)
        else:
            add.append(f"ndots:{ndots}")
    if add:
        lines.append("options " + " ".join(add))
    new_text = "\n".join(lines) + "\n"
    if parse_resolv_conf(new_text) == parse_resolv_conf(text):
        return text
    return new_text


def _expected(text: str, ndots: int | None) -> tuple[Any, ...]:
    servers, options, search = parse_resolv_conf(text)
    opts = list(options)
    if ndots is not None:
        opts = _set_ndots(opts, ndots)
        if not any(o.startswith("ndots:") for o in opts):
            opts.append(f"ndots:{ndots}")
    if not set(opts) & set(SERIAL_OPTIONS):
        opts.append(REOPEN)
    return servers, sorted(opts), search


def plan_resolv_edit(path: Path, old: str, base: str, ndots: int | None) -> Edit:
    """The edit of ``path`` (now ``old``; ``base`` is the text to start
    from: ``old``, or the host's file for a new copy), read back to check
    it: the same servers and search list, the options plus ours."""
    new = render_resolv_options(base, ndots)
    servers, options, search = parse_resolv_conf(new)
    if (servers, sorted(options), search) != _expected(base, ndots):
        raise EditRefused(f"{path}: the edited file would not read back as intended; add "
                          f"`options {REOPEN}` by hand")  # fmt: skip
    return Edit("resolv.conf", path, old, new)


def container_instructions(name: str) -> list[str]:
    """How to get the option into a Docker container's resolv.conf."""
    return [
        f'dockerd: "dns-opts": ["{REOPEN}"] in /etc/docker/daemon.json, then restart dockerd; '
        "containers created afterwards get it",
        f"one container: docker run --dns-opt {REOPEN} ... (compose: dns_opt: [{REOPEN}]); "
        f"recreate {name} with it",
        "Kubernetes: dnsConfig.options [{name: single-request-reopen}] in the pod spec",
    ]


@dataclass(frozen=True)
class ResolvPlan:
    target: ResolvTarget
    path: Path | None = None
    edit: Edit | None = None
    refusal: str = ""
    instructions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def changes_anything(self) -> bool:
        return self.edit is not None and self.edit.changed

    def steps(self) -> list[str]:
        if self.target.kind == "container":
            return [f"netsleuth does not edit {self.target.label}'s resolv.conf; instead:",
                    *self.instructions]  # fmt: skip
        if self.refusal:
            return [f"refused: {self.refusal}"]
        assert self.edit is not None
        if not self.edit.changed:
            return [f"{self.edit.path} already has the options: nothing to change"]
        verb = "write" if self.edit.old else "create"
        return [f"{verb} {self.edit.path}" + (" in place, backup first" if self.edit.old else "")]

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target.label,
            "path": None if self.path is None else str(self.path),
            "needs_change": self.changes_anything,
            "diff": "" if self.edit is None else self.edit.diff(),
            "refusal": self.refusal,
            "instructions": list(self.instructions),
            "notes": list(self.notes),
            "steps": self.steps(),
        }


def read_resolv_plan(
    target: str, *, etc_root: Path, ndots: int | None = None, copy_host: bool = False
) -> ResolvPlan:
    """Read the target's resolv.conf and plan. A namespace without a file
    of its own uses the host's: refused unless ``copy_host``."""
    t = parse_target(target)
    notes = [
        "musl (Alpine) ignores these options and always sends A and AAAA together; there, "
        "use a local caching resolver or TCP"
    ]
    if t.kind == "container":
        return ResolvPlan(t, instructions=tuple(container_instructions(t.name)),
                          notes=tuple(notes))  # fmt: skip
    Namespace.named(t.name)  # one-line error when it does not exist
    path = etc_root / "netns" / t.name / "resolv.conf"
    if path.is_symlink():
        return ResolvPlan(t, path, refusal=f"{path} is a symlink; edit the file it points to")
    if path.exists():
        old = path.read_text()
        return ResolvPlan(t, path, plan_resolv_edit(path, old, old, ndots), notes=tuple(notes))
    host = etc_root / "resolv.conf"
    if not copy_host:
        return ResolvPlan(
            t,
            path,
            refusal=(
                f"{t.name} has no {path} and uses the host's {host}; --copy-host gives it its "
                "own copy with the option (it then no longer follows the host's file)"
            ),
        )
    try:
        base = host.read_text()
    except OSError as exc:
        raise EditRefused(f"cannot read {host}: {exc.strerror}") from None
    notes.append(f"{path} is a copy of {host}: later changes to the host's file do not reach it")
    return ResolvPlan(t, path, plan_resolv_edit(path, "", base, ndots), notes=tuple(notes))


def write_in_place(edit: Edit, clock: Callable[[], float] = time.time) -> Path | None:
    """Back up the file, then rewrite it in place (same inode, so a bind
    mount of it shows the new text). Returns the backup, None if unchanged."""
    if not edit.changed:
        return None
    if edit.path.read_text() != edit.old:
        raise EditRefused(f"{edit.path} changed since it was read; run the fix again")
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(clock()))
    backup = edit.path.with_name(f"{edit.path.name}.netsleuth-{stamp}.bak")
    n = 0
    while backup.exists() and n < 100:
        n += 1
        backup = edit.path.with_name(f"{edit.path.name}.netsleuth-{stamp}-{n}.bak")
    backup.write_text(edit.old)
    os.chmod(backup, edit.path.stat().st_mode & 0o7777)
    with edit.path.open("r+") as f:
        f.write(edit.new)
        f.truncate()
    return backup


def apply_resolv_plan(plan: ResolvPlan) -> tuple[list[str], list[Path]]:
    """Carry out a plan: (what changed, backups)."""
    if plan.target.kind == "container":
        raise EditRefused(
            f"netsleuth does not edit {plan.target.label}'s resolv.conf (Docker rewrites it): "
            f'set "dns-opts": ["{REOPEN}"] in daemon.json or --dns-opt {REOPEN}'
        )
    if plan.refusal:
        raise EditRefused(plan.refusal)
    edit = plan.edit
    if edit is None or not edit.changed:
        return [], []
    if not edit.old:
        write_new_file(edit)
        return [f"{edit.path} created"], []
    backup = write_in_place(edit)
    return ([f"{edit.path} updated (backup {backup.name})"], [backup]) if backup else ([], [])
