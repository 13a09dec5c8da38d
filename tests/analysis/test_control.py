"""The control group: failure rates per target and where they put the fault."""

from __future__ import annotations

from netsleuth.analysis import localise
from netsleuth.analysis.control import data_notes, target_stats


def test_localisation_from_the_host_control() -> None:
    none = target_stats({"host": (1000, 0), "netns:a": (1000, 0)}, [])
    assert localise(none)[0] == "none"
    inside = target_stats({"host": (1000, 0), "netns:a": (1000, 40)}, [])
    where, text = localise(inside)
    assert where == "namespaces" and "host control did not fail" in text
    everywhere = target_stats({"host": (1000, 30), "netns:a": (1000, 35)}, [])
    assert localise(everywhere)[0] == "everywhere"
    few = target_stats({"host": (1000, 0), "netns:a": (1000, 1)}, [])
    assert localise(few)[0] == "some-targets"  # one failure proves nothing
    no_control = target_stats({"netns:a": (1000, 5), "netns:b": (1000, 4)}, [])
    where, text = localise(no_control)
    assert where == "all-targets" and "host as a control target" in text


def test_the_control_is_whichever_target_probes_from_the_bridges_namespace() -> None:
    stats = target_stats({"netns:core": (1000, 0), "netns:app": (1000, 40)}, [])
    assert localise(stats)[0] == "all-targets" or localise(stats)[0] == "some-targets"
    where, text = localise(stats, control="netns:core")
    assert where == "namespaces" and "host control did not fail" in text


def test_notes_say_how_low_a_rate_is_and_when_outages_are_too_few() -> None:
    clean = target_stats({"host": (3000, 0)}, [])
    [note] = data_notes(clean, 0)
    assert "below 0.001" in note and "probes to see one" in note
    few = target_stats({"host": (1000, 0), "netns:a": (1000, 3)}, [])
    assert "too few" in data_notes(few, 2)[0]
    assert data_notes(few, 2, tied=True) == []
