"""Kernel drop reasons: where every lost packet died, and why.

The kernel frees a packet it drops with ``kfree_skb_reason()``; the
``skb:kfree_skb`` tracepoint carries the reason (``OTHERHOST``,
``NETFILTER_DROP``, ``NO_SOCKET`` ...; numbered differently by each kernel,
named by :mod:`.reasons` from the running kernel's format file) and the
function that dropped it. :class:`DropSource` follows it with bpftrace (BTF:
namespace, device, IPv4 addresses and ports; :mod:`.bpf`) or, where BPF is
not available, a private ftrace instance (reason and location only;
:mod:`.tracefs`), bounded under a storm by per-second aggregates that keep
every count (:mod:`.aggregate`). :mod:`.link` ties drops to the failed
probes whose packets they were; :mod:`.names` names the namespaces.
"""

from netsleuth.drops.aggregate import Limiter
from netsleuth.drops.reasons import NOISE, TracepointFormat, parse_format, read_format
from netsleuth.drops.record import Drop, DropKey, parse_bpftrace_line, parse_ftrace_line
from netsleuth.drops.source import Availability, DropSource, DropsUnavailable, availability

__all__ = [
    "NOISE",
    "Availability",
    "Drop",
    "DropKey",
    "DropSource",
    "DropsUnavailable",
    "Limiter",
    "TracepointFormat",
    "availability",
    "parse_bpftrace_line",
    "parse_format",
    "parse_ftrace_line",
    "read_format",
]
