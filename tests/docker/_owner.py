"""A stand-in owner process for the crash tests: starts a daemon and a
container, prints what it made as one JSON line, then waits (bounded) to be
interrupted (SIGINT/SIGTERM: clean exit) or killed (SIGKILL: nothing cleaned).

Usage: python _owner.py NETNS BRIDGE
"""

from __future__ import annotations

import json
import signal
import sys
import time

from netsleuth.docker import BUSYBOX_IMAGE, DockerDaemon, ensure_image
from netsleuth.docker.daemon import shim_socket


def main() -> int:
    netns, bridge = sys.argv[1], sys.argv[2]
    # What the CLI does: SIGTERM unwinds like Ctrl-C, so `with` blocks clean up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with DockerDaemon(netns, bridge, fixed_cidr="198.18.44.128/25") as daemon:
        client = daemon.client()
        ensure_image(client)
        container = client.containers.run(BUSYBOX_IMAGE, ["sleep", "300"], detach=True)
        container.reload()
        info = {
            "daemon_id": daemon.daemon_id,
            "dockerd_pid": daemon.pid,
            "state_dir": str(daemon.paths.state_dir),
            "data_root": str(daemon.paths.data_root),
            "cgroup_parent": daemon.paths.cgroup_parent,
            "container_pid": container.attrs["State"]["Pid"],
            "shim_socket": str(shim_socket(daemon.paths.containerd_socket, container.id)),
        }
        client.close()
        print(json.dumps(info), flush=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
