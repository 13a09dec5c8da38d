"""``fix conntrack-max`` and ``fix neigh-thresh``: size two kernel tables
from what they hold now.

Both limits are machine-wide, so these commands act on the host only and
count every namespace: ``nf_conntrack_max`` caps each namespace's own
entry count (``nf_conntrack_count`` is per namespace, the limit and the hash
table are shared), so the fullest namespace is what hits it; the IPv4
neighbour table is one for all namespaces, so ``gc_thresh3`` caps the sum of
their entries.

:func:`conntrack_values` and :func:`neigh_values` decide (pure): a new limit
with the current peak at a quarter of it, rounded up to a power of two and
never below the present one (or the value given), the hash table grown so
its average chain stays as long as it is now, ``gc_thresh1/2`` kept in the
kernel's default proportion to ``gc_thresh3`` (1/8, 1/2). Nothing changes
while the peak is below half the limit. :func:`read_conntrack_plan` and
:func:`read_neigh_plan` read the counts and the limits and plan, with the
sysctl.d file that keeps the values.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from netsleuth.errors import InvalidArgument, NetsleuthError
from netsleuth.fix.configs import Edit
from netsleuth.fix.sysctld import (
    SysctlPlan,
    SysctlSetting,
    file_header,
    override_notes,
    plan_sysctl_file,
    sysctl_file,
)
from netsleuth.netns import Namespace, count_neighbours, list_named, sysctl_path

__all__ = [
    "CT_BUCKETS",
    "CT_COUNT",
    "CT_MAX",
    "GC_THRESH",
    "ConntrackUsage",
    "NeighUsage",
    "conntrack_values",
    "neigh_values",
    "read_conntrack_plan",
    "read_neigh_plan",
]

CT_MAX = "net.netfilter.nf_conntrack_max"
CT_COUNT = "net.netfilter.nf_conntrack_count"
CT_BUCKETS = "net.netfilter.nf_conntrack_buckets"
GC_THRESH = tuple(f"net.ipv4.neigh.default.gc_thresh{i}" for i in (1, 2, 3))

# The peak of a table is kept at this share of its new limit.
TARGET_FILL = 0.25
# Below this share of the limit nothing is changed.
ACT_FILL = 0.5
# Kernel memory per conntrack entry (struct nf_conn and its extensions), roughly.
CT_ENTRY_BYTES = 320


def _pow2(n: int) -> int:
    return 1 << max(0, (max(1, n) - 1).bit_length())


@dataclass(frozen=True, slots=True)
class ConntrackUsage:
    counts: Mapping[str, int]  # namespace label -> its nf_conntrack_count
    max: int
    buckets: int
    buckets_writable: bool
    partial: bool = False  # only some namespaces could be read

    @property
    def peak(self) -> tuple[str, int]:
        return max(self.counts.items(), key=lambda kv: kv[1], default=("host", 0))


def conntrack_values(
    usage: ConntrackUsage, wanted: int | None = None
) -> tuple[dict[str, str], list[str]]:
    """(key -> value, notes) for ``nf_conntrack_max`` and the hash size."""
    where, peak = usage.peak
    fill = peak / usage.max if usage.max else 1.0
    notes = [
        f"fullest namespace: {where} with {peak} of {usage.max} entries ({fill:.0%}); "
        f"{sum(usage.counts.values())} in all {len(usage.counts)} namespaces read"
    ]
    if usage.partial:
        notes.append("only the namespaces readable without root were counted")
    if wanted is None:
        if fill < ACT_FILL:
            notes.append(f"below {ACT_FILL:.0%} of the limit: nothing to change (--max N sets one)")
            return {}, notes
        new_max = max(usage.max, _pow2(int(peak / TARGET_FILL)))
        notes.append(f"new limit {new_max}: the peak at {peak / new_max:.0%} of it")
    else:
        if wanted < peak:
            raise InvalidArgument(
                f"--max {wanted} is below the {peak} entries {where} tracks now: new flows "
                "would be dropped at once"
            )
        new_max = wanted
        if new_max < usage.max:
            notes.append(f"lowers the limit from {usage.max}")
    values = {CT_MAX: str(new_max)}
    if usage.max and usage.buckets:
        buckets = -(-new_max * usage.buckets // usage.max)  # keep max/buckets as it is
        if buckets > usage.buckets:
            if usage.buckets_writable:
                values[CT_BUCKETS] = str(buckets)
                notes.append(f"hash table {usage.buckets} -> {buckets} buckets (same chain length)")
            else:
                notes.append(
                    f"the hash table stays at {usage.buckets} buckets (nf_conntrack_buckets is "
                    f"read-only here): add `options nf_conntrack hashsize={buckets}` to "
                    "/etc/modprobe.d/ for the next module load"
                )
    notes.append(
        f"at most {new_max * CT_ENTRY_BYTES / 2**20:.0f} MiB of kernel memory when full "
        f"(~{CT_ENTRY_BYTES} bytes an entry)"
    )
    return values, notes


@dataclass(frozen=True, slots=True)
class NeighUsage:
    counts: Mapping[str, int]  # namespace label -> its IPv4 neighbour entries
    thresholds: tuple[int, int, int]  # gc_thresh1, 2, 3
    table_fulls: int = 0
    partial: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def neigh_values(usage: NeighUsage, wanted: int | None = None) -> tuple[dict[str, str], list[str]]:
    """(key -> value, notes) for ``gc_thresh1/2/3``."""
    t1, t2, t3 = usage.thresholds
    total = usage.total
    where = ", ".join(f"{k}: {v}" for k, v in usage.counts.items())
    notes = [
        f"{total} IPv4 neighbour entries ({where}; one table for all namespaces) against "
        f"gc_thresh3 {t3}; table_fulls since boot: {usage.table_fulls}"
    ]
    if usage.partial:
        notes.append("only the namespaces readable without root were counted")
    if wanted is None:
        if total < t3 * ACT_FILL and usage.table_fulls == 0:
            notes.append(
                f"below {ACT_FILL:.0%} of gc_thresh3 and never full: nothing to change "
                "(--thresh3 N sets one)"
            )
            return {}, notes
        new3 = max(t3 if total >= t3 * ACT_FILL else 2 * t3, _pow2(int(total / TARGET_FILL)))
        if usage.table_fulls:
            new3 = max(new3, 2 * t3)  # it overflowed at some point: at least double it
        notes.append(f"new gc_thresh3 {new3}: the entries now at {total / new3:.0%} of it")
    else:
        if wanted < total:
            raise InvalidArgument(
                f"--thresh3 {wanted} is below the {total} entries the table holds now"
            )
        new3 = wanted
    new2, new1 = max(t2, new3 // 2), max(t1, new3 // 8)
    if new3 < t3:
        new2, new1 = min(new2, new3), min(new1, new3)
        notes.append(f"lowers gc_thresh3 from {t3}")
    values = dict(zip(GC_THRESH, (str(new1), str(new2), str(new3)), strict=True))
    return values, notes


def _namespaces() -> tuple[list[Namespace], bool]:
    """This namespace, then every named one and every container (root only)."""
    out = [Namespace.of(None, "host")]
    if os.geteuid() != 0:
        return out, True
    for name in list_named():
        with contextlib.suppress(NetsleuthError):
            out.append(Namespace.named(name, f"netns {name}"))
    from netsleuth.audit.doctor import container_namespaces

    out += [ns for ns, _ in container_namespaces()]
    return out, False


def _read_int(key: str) -> int:
    try:
        return int(sysctl_path(key).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        raise InvalidArgument(f"cannot read {key}: is the module loaded?") from None


def _counts(read: str | None) -> tuple[dict[str, int], bool]:
    namespaces, partial = _namespaces()
    counts: dict[str, int] = {}
    for ns in namespaces:
        try:
            if read is None:
                value: int | None = ns.run(lambda: count_neighbours(socket.AF_INET))
            else:
                text = ns.sysctl(read)
                value = int(text) if text is not None else None
        except (OSError, ValueError, NetsleuthError):  # gone, or no conntrack there
            continue
        if value is not None:
            counts[ns.label] = value
    return counts, partial


def _persist(
    what: str, values: dict[str, str], etc_root: Path, lines: list[str], persist: bool
) -> tuple[Edit | None, list[str]]:
    if not values or not persist:
        return None, [] if not values else ["not persisted (--no-persist): lost at reboot"]
    path = sysctl_file(etc_root, what)
    edit = plan_sysctl_file(path, values, file_header(what, lines))
    return edit, override_notes(etc_root, path, values)


def _plan(
    what: str,
    *,
    current: Mapping[str, int],
    values: dict[str, str],
    notes: list[str],
    etc_root: Path,
    lines: list[str],
    persist: bool,
    runtime: bool,
) -> SysctlPlan:
    edit, more = _persist(what, values, etc_root, lines, persist)
    settings = tuple(SysctlSetting(k, str(current.get(k, "?")), v) for k, v in values.items())
    return SysctlPlan(
        what=what,
        netns="host",
        settings=settings,
        edit=edit,
        notes=tuple(notes + more),
        runtime=runtime,
    )


def read_conntrack_plan(
    wanted: int | None, *, etc_root: Path, persist: bool = True, runtime: bool = True
) -> SysctlPlan:
    """Read the limit, the hash size and every namespace's count, and plan."""
    ct_max = _read_int(CT_MAX)
    buckets = _read_int(CT_BUCKETS)
    try:
        writable = bool(os.stat(sysctl_path(CT_BUCKETS)).st_mode & stat.S_IWUSR)
    except OSError:
        writable = False
    counts, partial = _counts(CT_COUNT)
    usage = ConntrackUsage(counts, ct_max, buckets, writable, partial)
    values, notes = conntrack_values(usage, wanted)
    lines = [
        "Room for the connection tracking table: when full, new flows are dropped.",
        "net.netfilter keys are applied again when nf_conntrack is loaded (systemd's udev rule).",
    ]
    current = {CT_MAX: ct_max, CT_BUCKETS: buckets}
    return _plan(
        "conntrack-max", current=current, values=values, notes=notes, etc_root=etc_root,
        lines=lines, persist=persist, runtime=runtime,
    )  # fmt: skip


def read_neigh_plan(
    wanted: int | None, *, etc_root: Path, persist: bool = True, runtime: bool = True
) -> SysctlPlan:
    """Read gc_thresh1/2/3 and the table's entries (every namespace's: the
    ``entries`` column of /proc/net/stat/arp_cache counts the whole table;
    without it, the named namespaces' and containers' counts are summed) and
    table_fulls, and plan."""
    t1, t2, t3 = (_read_int(k) for k in GC_THRESH)
    entries, fulls = _arp_cache()
    if entries is not None:
        counts, partial = {"every namespace": entries}, False
    else:
        counts, partial = _counts(None)
    usage = NeighUsage(counts, (t1, t2, t3), fulls, partial)
    values, notes = neigh_values(usage, wanted)
    lines = ["Room for the IPv4 neighbour (ARP) table: above gc_thresh3 new entries are refused."]
    current = dict(zip(GC_THRESH, (t1, t2, t3), strict=True))
    return _plan(
        "neigh-thresh", current=current, values=values, notes=notes, etc_root=etc_root,
        lines=lines, persist=persist, runtime=runtime,
    )  # fmt: skip


def _arp_cache(path: Path = Path("/proc/net/stat/arp_cache")) -> tuple[int | None, int]:
    """(entries of the whole IPv4 neighbour table, table_fulls summed over
    CPUs) from /proc/net/stat/arp_cache (hex columns, a row per CPU)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None, 0
    header = lines[0].split() if lines else []
    rows = [line.split() for line in lines[1:] if line.split()]
    entries = None
    if "entries" in header and rows:
        entries = int(rows[0][header.index("entries")], 16)
    fulls = 0
    if "table_fulls" in header:
        col = header.index("table_fulls")
        fulls = sum(int(r[col], 16) for r in rows if len(r) > col)
    return entries, fulls
