"""The BPF mechanism: a bpftrace program on ``tracepoint:skb:kfree_skb``.

Through BTF it reads what the event itself does not hold: the namespace of
the device the packet was on (``skb->dev->nd_net.net->ns.inum``, else the
socket's), the device's name, and for IPv4 the addresses and, unless it is a
later fragment, the UDP/TCP ports (from ``skb->head`` + the network header,
the IHL giving the transport header: at ``ip_rcv_core`` the kernel has not
set the transport header yet).

Bounded in the kernel: per (reason, location, namespace) and second the
first ``rate`` drops, and at most ``total_rate`` of all keys, are printed one
by one; every other drop only increments its key in the ``@agg`` map, which
is printed, cumulative and never cleared (no increment can fall between a
print and a clear), once a second and at exit. The reader turns each key's
rise into an aggregate. The noise reasons (:data:`.reasons.NOISE`) are
filtered by number, as this kernel numbers them.

The process is ours: started with ``PR_SET_PDEATHSIG`` (it gets SIGTERM if
we die), its PID and start time in the run state (:mod:`.tracefs`) so the
next run ends it after a SIGKILL; stopped with SIGINT (bpftrace then prints
its maps one last time), SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Iterable

__all__ = ["MapDeltas", "bpftrace_script", "start_bpftrace"]

PR_SET_PDEATHSIG = 1

_TEMPLATE = r"""
tracepoint:skb:kfree_skb
PREDICATE
{
  $skb = (struct sk_buff *)args->skbaddr;
  $dev = $skb->dev;
  $ns = (uint64)0;
  $ifn = "-";
  if ($dev != 0) {
    $ns = $dev->nd_net.net->ns.inum;
    $ifn = $dev->name;
  } else {
    if ($skb->sk != 0) {
      $ns = $skb->sk->__sk_common.skc_net.net->ns.inum;
    }
  }
  $sec = nsecs / 1000000000;
  $loc = (uint64)args->location;
  if (@win[args->reason, $loc, $ns] != $sec) {
    @win[args->reason, $loc, $ns] = $sec;
    @used[args->reason, $loc, $ns] = 0;
  }
  if (@gwin != $sec) {
    @gwin = $sec;
    @gused = 0;
  }
  if (@used[args->reason, $loc, $ns] < RATE && @gused < TOTAL) {
    @used[args->reason, $loc, $ns]++;
    @gused++;
    $l4 = (uint64)0; $sa = (uint64)0; $da = (uint64)0; $sp = (uint64)0; $dp = (uint64)0;
    if (args->protocol == 0x0800) {
      $ip = $skb->head + $skb->network_header;
      $vihl = *(uint8 *)$ip;
      if (($vihl >> 4) == 4 && ($vihl & 0xf) >= 5) {
        $l4 = *(uint8 *)($ip + 9);
        $sa = *(uint32 *)($ip + 12);
        $da = *(uint32 *)($ip + 16);
        $frag = *(uint16 *)($ip + 6);
        if (($l4 == 6 || $l4 == 17) && ($frag & 0xff1f) == 0) {
          $th = $ip + ($vihl & 0xf) * 4;
          $sp = *(uint16 *)$th;
          $dp = *(uint16 *)($th + 2);
        }
      }
    }
    printf("E %llu %d %s %llu %s %u %llu %llu %llu %llu %llu\n", nsecs, args->reason,
           ksym(args->location), $ns, $ifn, args->protocol, $l4, $sa, $da, $sp, $dp);
  } else {
    @agg[args->reason, ksym(args->location), $ns, $ifn] = count();
  }
}

interval:ms:INTERVAL
{
  print(@agg);
  printf("T %llu\n", nsecs);
}

END
{
  print(@agg);
  printf("X %llu\n", nsecs);
  clear(@agg);
  clear(@win);
  clear(@used);
  delete(@gwin);
  delete(@gused);
}
"""


def bpftrace_script(
    excluded: Iterable[int], rate: int = 100, total_rate: int = 2000, interval_ms: int = 1000
) -> str:
    """The program, with the reasons numbered ``excluded`` filtered out."""
    codes = sorted(set(excluded))
    predicate = (
        "/" + " && ".join(f"args->reason != {code}" for code in codes) + "/" if codes else ""
    )
    return (
        _TEMPLATE.replace("PREDICATE", predicate)
        .replace("RATE", str(int(rate)))
        .replace("TOTAL", str(int(total_rate)))
        .replace("INTERVAL", str(int(interval_ms)))
    )


def _die_with_parent() -> None:
    """In the child: die with us, and compile at a lower priority than the
    probes (the program, once loaded, runs in the kernel at no priority)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    os.nice(10)


def start_bpftrace(program: str, script: str) -> subprocess.Popen[str]:
    """Run ``bpftrace -e SCRIPT``: line-buffered text on stdout and stderr.

    Call it from a thread that lives as long as the process should: the
    death signal follows the thread that started it."""
    return subprocess.Popen(
        [program, "-B", "line", "-e", script],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - async-signal-safe enough: one prctl
    )


def stop_bpftrace(proc: subprocess.Popen[str], grace: float = 5.0) -> None:
    """SIGINT (it prints its maps and exits), SIGKILL after ``grace`` s."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class MapDeltas:
    """The rise of each key of a cumulative map since it was last seen."""

    def __init__(self) -> None:
        self._seen: dict[object, int] = {}

    def update(self, key: object, total: int) -> int:
        before = self._seen.get(key, 0)
        self._seen[key] = total
        return max(0, total - before)
