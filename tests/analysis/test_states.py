"""State intervals and their alignment with outages (pure logic, no root)."""

from __future__ import annotations

import numpy as np
import pytest

from netsleuth.analysis import Episode, StateInterval, align, state_intervals
from netsleuth.analysis.states import chance_of_alignment
from netsleuth.model import EventKind, NetEvent, StateChange, StateKind, detail_from_json

S = 1_000_000_000
MS = 1_000_000
PROBE = 50 * MS
GONE, PORT = StateKind.GATEWAY_MAC_GONE, StateKind.GATEWAY_MAC_PORT
FAMILY = {"flap": (GONE, PORT)}


def event(
    t_ms: int, kind: EventKind, state: StateKind, target: str = "t1", **change: str
) -> NetEvent:
    detail = StateChange(state, bridge="br0", **change)
    return NetEvent(t_ms * MS, t_ms * MS, target, kind, "br0", str(state), detail)


def test_intervals_from_enter_and_leave_events() -> None:
    events = [
        event(1000, EventKind.STATE_ENTERED, GONE, mac="02:00:00:00:00:01"),
        event(7000, EventKind.STATE_LEFT, GONE, mac="02:00:00:00:00:01"),
        event(9000, EventKind.STATE_ENTERED, PORT, port="v1"),
        event(9500, EventKind.STATE_LEFT, GONE),  # no open interval of that state: ignored
        NetEvent(
            0,
            0,
            "t1",
            EventKind.STATE_ENTERED,
            "",
            "x",
            detail_from_json(EventKind.STATE_ENTERED, {"state": "from-the-future"}),
        ),
    ]
    ivs = state_intervals(events)
    assert [
        (i.state, i.start_ns // MS, None if i.end_ns is None else i.end_ns // MS) for i in ivs
    ] == [
        (GONE, 1000, 7000),
        (PORT, 9000, None),  # still open at the end
    ]
    assert ivs[0].change.mac == "02:00:00:00:00:01" and ivs[1].bridge == "br0"


def iv(
    start_ms: int, end_ms: int | None, state: StateKind = GONE, target: str = "t1"
) -> StateInterval:
    end = None if end_ms is None else end_ms * MS
    return StateInterval(target, state, start_ms * MS, end, StateChange(state, bridge="br0"))


def ep(start_ms: int, end_ms: int, recovered_ms: int | None, target: str = "t1") -> Episode:
    n = (end_ms - start_ms) // 50 + 1
    rec = None if recovered_ms is None else recovered_ms * MS
    return Episode(target, start_ms * MS, end_ms * MS, n, n, rec)


def evidence(ivs: list[StateInterval], eps: list[Episode], record_ms: int = 20_000):  # type: ignore[no-untyped-def]
    records = {t: (0, record_ms * MS) for t in {e.target for e in eps} | {i.target for i in ivs}}
    return align(FAMILY, ivs, eps, probe_interval_ns=PROBE, records=records)["flap"]


def test_an_outage_that_begins_and_ends_with_the_state_lines_up() -> None:
    se = evidence([iv(5000, 11_320)], [ep(5030, 11_300, 11_350)])
    assert len(se.aligned) == 1 and se.unexplained == 0 and se.inside == 0
    a = se.aligned[0]
    assert a.start_offset_ms == pytest.approx(30) and a.end_offset_ms == pytest.approx(20)


def test_a_state_seen_ending_just_after_the_first_answer_still_lines_up() -> None:
    # the change that ended it was seen 30 ms after the first answer was sent (a
    # busy host: the monitor's line came late); within the start's window
    se = evidence([iv(5000, 11_380)], [ep(5030, 11_300, 11_350)])
    assert len(se.aligned) == 1 and se.aligned[0].end_offset_ms == pytest.approx(80)


@pytest.mark.parametrize(
    ("interval", "outage", "why"),
    [
        (iv(5000, 11_320), ep(5400, 11_300, 11_350), "began 400 ms after the state"),
        (iv(5000, 11_700), ep(5030, 11_300, 11_350), "the state ended 350 ms after the answer"),
        (iv(5000, 11_320), ep(4900, 11_300, 11_350), "began 100 ms before the state"),
        (iv(5000, 15_000), ep(5030, 11_300, 11_350), "the state lasted 3.7 s longer"),
        (iv(5000, 9000), ep(5030, 11_300, 11_350), "the outage lasted 2.3 s longer"),
    ],
)
def test_what_does_not_line_up(interval: StateInterval, outage: Episode, why: str) -> None:
    se = evidence([interval], [outage])
    assert not se.aligned, why


def test_an_outage_inside_a_long_state_is_counted_as_inside() -> None:
    se = evidence([iv(1000, 15_000)], [ep(5000, 6000, 6050)])
    assert (len(se.aligned), se.inside, se.unexplained) == (0, 1, 0)
    assert se.explained == frozenset({("t1", 5000 * MS)})


def test_open_state_and_open_outage_line_up_at_the_end_of_the_record() -> None:
    se = evidence([iv(18_000, None)], [ep(18_020, 19_950, None)])
    assert len(se.aligned) == 1 and se.aligned[0].end_offset_ms is None
    # an outage that recovered does not line up with a state that never ended
    assert not evidence([iv(18_000, None)], [ep(18_020, 19_000, 19_050)]).aligned


def test_touching_states_of_a_family_are_one_interval() -> None:
    se = evidence([iv(5000, 8000), iv(8000, 11_320, PORT)], [ep(5030, 11_300, 11_350)])
    assert len(se.intervals) == 1 and len(se.aligned) == 1


def test_simultaneous_outages_of_several_targets_count_once() -> None:
    ivs = [iv(5000, 11_320, target=t) for t in ("t1", "t2", "t3")]
    eps = [ep(5030 + 10 * i, 11_300, 11_350, target=t) for i, t in enumerate(("t1", "t2", "t3"))]
    se = evidence(ivs, eps)
    assert se.outages == 1 and len(se.aligned) == 1


def test_chance_is_two_coincidences_and_grows_with_more_intervals() -> None:
    outage = ep(5030, 11_300, 11_350)
    one = chance_of_alignment([iv(5000, 11_320)], outage, window_ns=120 * MS, record=(0, 20 * S))
    # start: (120 + 20 ms) / 20 s; end: (50 + 20 + 120 ms) / (20 s - 5 s)
    assert one == pytest.approx(0.140 / 20 * 0.190 / 15, rel=1e-6)
    many = chance_of_alignment(
        [iv(t, t + 6000) for t in range(0, 20_000, 2000)],
        outage,
        window_ns=120 * MS,
        record=(0, 20 * S),
    )
    assert many > one


def test_p_value_of_k_alignments_and_the_correction_for_families() -> None:
    eps = [ep(t + 30, t + 6300, t + 6350) for t in (5000, 20_000, 35_000)]
    ivs = [iv(t, t + 6320) for t in (5000, 20_000, 35_000)]
    se = evidence(ivs, eps, record_ms=45_000)
    assert len(se.aligned) == 3 and se.p_value < 1e-9
    two = align(
        {"flap": (GONE, PORT), "other": (StateKind.NAT_MISSING,)},
        [*ivs, iv(40_000, 41_000, StateKind.NAT_MISSING)],
        eps,
        probe_interval_ns=PROBE,
        records={"t1": (0, 45_000 * MS)},
    )
    assert two["flap"].families_tested == 2
    assert two["flap"].p_value == pytest.approx(2 * se.p_value)


def test_quiet_intervals_saw_probes_and_no_failure() -> None:
    times = np.arange(0, 20 * S, PROBE, dtype=np.int64)
    failed = (times >= 5000 * MS) & (times <= 11_300 * MS)
    records = {"t1": (0, 20 * S)}
    se = align(
        FAMILY,
        [iv(5000, 11_320), iv(14_000, 16_000)],
        [ep(5000, 11_300, 11_350)],
        probe_interval_ns=PROBE,
        records=records,
        attempts={"t1": (times, failed)},
    )["flap"]
    assert se.quiet == 1  # the second stretch: probes went through
