"""``fix rp-filter IFACE|all``: loose reverse-path filtering.

The kernel filters a packet arriving on IFACE by the larger of
``net.ipv4.conf.all.rp_filter`` and ``net.ipv4.conf.IFACE.rp_filter``:
0 off, 1 strict (drop unless the route back to the source leaves by IFACE),
2 loose (drop only when there is no route back at all). With asymmetric
routes strict mode drops replies; loose mode keeps the spoofing protection
that matters and stops those drops.

:func:`rp_filter_values` decides (pure): for IFACE, set it to 2 when its
effective mode is strict (2 beats an ``all`` of 1, so ``all`` is left
alone); for ``all``, set ``all`` to 2 when any interface is strict.
:func:`read_rp_filter_plan` reads every interface's value in the namespace
and plans, with a sysctl.d file for the host (a namespace's settings last
as long as it does; sysctl.d is applied to the host's at boot).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from netsleuth.errors import InvalidArgument, TargetNotFound
from netsleuth.fix.sysctld import (
    SysctlPlan,
    SysctlSetting,
    file_header,
    override_notes,
    plan_sysctl_file,
    sysctl_file,
)
from netsleuth.netns import Namespace

__all__ = [
    "LOOSE",
    "plan_rp_filter",
    "read_rp_filter",
    "read_rp_filter_plan",
    "rp_filter_key",
    "rp_filter_values",
]

LOOSE = "2"
STRICT = 1


def rp_filter_key(iface: str) -> str:
    return f"net.ipv4.conf.{iface}.rp_filter"


def _int(value: str | None) -> int:
    try:
        return int(value or "0")
    except ValueError:
        return 0


def rp_filter_values(iface: str, values: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(key -> wanted value, notes) for loose filtering on ``iface`` (or
    ``all``), given every interface's ``rp_filter`` (with ``all`` and
    ``default``) in one namespace."""
    all_value = _int(values.get("all"))
    if iface == "all":
        strict = sorted(
            n
            for n, v in values.items()
            if n not in ("all", "default", "lo") and max(all_value, _int(v)) == STRICT
        )
        if not strict:
            return {}, [f"no interface filters strictly (all={all_value}): nothing to change"]
        return {rp_filter_key("all"): LOOSE}, [
            f"strict now on {', '.join(strict)}; all=2 makes every interface at least loose "
            "(the larger of all and the interface's value applies)"
        ]
    if iface not in values:
        raise TargetNotFound(f"no interface {iface} here; check the name with `ip link`")
    own = _int(values[iface])
    effective = max(all_value, own)
    if effective != STRICT:
        return {}, [
            f"{iface} is not strict: effective rp_filter {effective} = max(all {all_value}, "
            f"{iface} {own}); nothing to change"
        ]
    notes = [f"effective rp_filter of {iface} is 1 (strict) = max(all {all_value}, {iface} {own})"]
    if all_value == STRICT:
        others = sorted(
            n for n in values if n not in ("all", "default", iface, "lo") and _int(values[n]) < 2
        )
        if others:
            notes.append(
                f"all=1 keeps the other interfaces strict ({', '.join(others)}); "
                "`netsleuth fix rp-filter all` makes them loose too"
            )
    return {rp_filter_key(iface): LOOSE}, notes


def read_rp_filter(netns: str | Path | None) -> dict[str, str]:
    """Every ``net/ipv4/conf/*/rp_filter`` in ``netns`` (None: this one)."""

    def body() -> dict[str, str]:
        base = Path("/proc/sys/net/ipv4/conf")
        out = {}
        for d in sorted(base.iterdir()):
            try:
                out[d.name] = (d / "rp_filter").read_text().strip()
            except OSError:
                continue
        return out

    return Namespace.of(netns).run(body)


def plan_rp_filter(
    iface: str,
    values: Mapping[str, str],
    netns: str | None,
    *,
    etc_root: Path,
    persist: bool = True,
    runtime: bool = True,
) -> SysctlPlan:
    """The plan for ``iface`` given the namespace's values (None: the host's,
    whose plan includes the sysctl.d file under ``etc_root``)."""
    if not iface or "/" in iface:
        raise InvalidArgument(f"not an interface name: {iface!r}")
    wanted, notes = rp_filter_values(iface, values)
    current = {rp_filter_key(n): v for n, v in values.items()}
    settings = tuple(SysctlSetting(k, current.get(k, "?"), v) for k, v in wanted.items())
    if netns is not None and not runtime:
        raise InvalidArgument(
            "--persist-only: sysctl.d files are applied to the host namespace at boot, not "
            f"to {netns}; set it where the namespace is created"
        )
    edit = None
    if wanted and netns is not None:
        notes.append(
            f"not persisted: sysctl.d is applied to the host namespace at boot; {netns}'s "
            "settings last as long as it does, so set it where the namespace is created "
            f"(e.g. `ip netns exec {netns} sysctl -w {next(iter(wanted))}={LOOSE}`)"
        )
    elif wanted and persist:
        path = sysctl_file(etc_root, "rp-filter")
        lines = [
            "Loose reverse-path filtering (2): strict mode (1) drops replies on asymmetric routes.",
            "Applied at boot and, where udev runs, whenever the interface appears.",
        ]
        edit = plan_sysctl_file(path, wanted, file_header("rp-filter", lines))
        notes += override_notes(etc_root, path, wanted)
    elif wanted:
        notes.append("not persisted (--no-persist): lost at reboot")
    return SysctlPlan(
        what=f"rp-filter {iface}",
        netns=netns or "host",
        settings=settings,
        edit=edit,
        notes=tuple(notes),
        runtime=runtime,
    )


def read_rp_filter_plan(
    iface: str,
    netns: str | None,
    *,
    etc_root: Path,
    persist: bool = True,
    runtime: bool = True,
) -> SysctlPlan:
    """Read the namespace's values and plan (:func:`plan_rp_filter`)."""
    if not iface or "/" in iface:
        raise InvalidArgument(f"not an interface name: {iface!r}")
    return plan_rp_filter(
        iface, read_rp_filter(netns), netns, etc_root=etc_root, persist=persist, runtime=runtime
    )
