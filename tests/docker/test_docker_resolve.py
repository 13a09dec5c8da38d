"""Container → PID: the pure part, on inspect documents as the API returns them."""

from __future__ import annotations

import pytest

from netsleuth.docker.resolve import ContainerRef, container_ref
from netsleuth.errors import TargetNotFound

RUNNING = {
    "Id": "b844163c11b06be1f24677b03a92fe85cb836ab18cafe007fafba6f7952a976f",
    "Name": "/probe",
    "State": {"Status": "running", "Running": True, "Pid": 4242},
}


def test_running_container_gives_pid_id_name() -> None:
    ref = container_ref(RUNNING, "unix:///run/d.sock", "probe")
    pid, cid, name = ref
    assert (pid, cid, name) == (4242, RUNNING["Id"], "probe")
    assert str(ref.netns_path) == "/proc/4242/ns/net"
    assert isinstance(ref, ContainerRef)


@pytest.mark.parametrize("status", ["exited", "created", "paused-but-no-pid"])
def test_not_running_is_a_one_line_user_error(status: str) -> None:
    attrs = {
        **RUNNING,
        "State": {"Status": status, "Running": status.startswith("paused"), "Pid": 0},
    }
    with pytest.raises(TargetNotFound) as err:
        container_ref(attrs, "unix:///run/d.sock", "probe")
    message = str(err.value)
    assert "\n" not in message
    assert "probe" in message and status in message and "start" in message
