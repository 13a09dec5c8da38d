"""A DNS workload of its own (not netsleuth's probes), run inside a client
namespace with `ip netns exec`: queries on a fixed schedule from one UDP
socket, each waiting up to TIMEOUT seconds for its answer; prints what it
counted as JSON. Only the standard library and dnspython.

usage: python workload.py SERVER NAME RATE SECONDS TIMEOUT
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time

import dns.message


def main(server: str, name: str, rate: float, seconds: float, timeout: float) -> dict[str, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    total = int(rate * seconds)
    sent_at: dict[int, float] = {}
    answered = late = 0
    start = time.monotonic()
    end = start + seconds + timeout
    sent = 0
    while time.monotonic() < end:
        now = time.monotonic()
        while sent < total and start + sent / rate <= now:
            query = dns.message.make_query(name, "A")
            query.id = sent & 0xFFFF
            sock.sendto(query.to_wire(), (server, 53))
            sent_at[query.id] = time.monotonic()
            sent += 1
        due = start + sent / rate if sent < total else end
        ready, _w, _x = select.select([sock], [], [], max(0.0, min(due, end) - time.monotonic()))
        if not ready:
            continue
        while True:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                break
            if len(data) < 12:
                continue
            qid = data[0] << 8 | data[1]
            at = sent_at.pop(qid, None)
            if at is None:
                continue
            if time.monotonic() - at <= timeout:
                answered += 1
            else:
                late += 1
    return {"sent": sent, "answered": answered, "unanswered": sent - answered, "late": late}


if __name__ == "__main__":
    server, name, rate, seconds, timeout = sys.argv[1:6]
    print(json.dumps(main(server, name, float(rate), float(seconds), float(timeout))))
