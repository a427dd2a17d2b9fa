"""Properties of the reading order for many study sizes (pure Python, no database)."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studyapp.reading.randomisation import TRAINING_SESSION, Design, Item, generate

ARMS = ("ct", "xray", "expert")


@st.composite
def designs(draw) -> Design:
    arm_count = draw(st.integers(min_value=1, max_value=3))
    arms = ARMS[:arm_count]
    knees = draw(st.integers(min_value=1, max_value=14))
    items = []
    for knee in range(knees):
        # Most knees have every arm; some lack one (a failed reconstruction).
        present = [arm for arm in arms if draw(st.integers(0, 9)) > 0] or [arms[0]]
        items.extend(Item(id=f"{knee}-{arm}", pair_key=knee, arm=arm) for arm in present)
    return Design(
        readers=list(range(draw(st.integers(min_value=1, max_value=12)))),
        items=items,
        rounds=draw(st.integers(min_value=1, max_value=3)),
        session_size=draw(st.integers(min_value=1, max_value=12)),
        washout_days=draw(st.integers(min_value=0, max_value=30)),
        seed=draw(st.integers(min_value=0, max_value=2**31)),
        training=[f"t{n}" for n in range(draw(st.integers(0, 3)))],
    )


PROPERTY = settings(max_examples=150, deadline=None)


def _study_slots(design: Design):
    return [slot for slot in generate(design) if not slot.training]


@PROPERTY
@given(designs())
def test_every_reader_reads_every_item_once_per_round(design: Design) -> None:
    counts = Counter((s.reader, s.round, s.item) for s in _study_slots(design))
    expected = {
        (reader, round_, item.id)
        for reader in design.readers
        for round_ in range(1, design.rounds + 1)
        for item in design.items
    }
    assert set(counts) == expected
    assert set(counts.values()) <= {1}


@PROPERTY
@given(designs())
def test_no_session_holds_two_items_of_one_knee(design: Design) -> None:
    knee_of = {item.id: item.pair_key for item in design.items}
    sessions = defaultdict(list)
    for slot in _study_slots(design):
        sessions[(slot.reader, slot.session)].append(knee_of[slot.item])
    for knees in sessions.values():
        assert len(knees) == len(set(knees))


@PROPERTY
@given(designs())
def test_sessions_are_bounded_and_positions_contiguous(design: Design) -> None:
    sessions = defaultdict(list)
    for slot in generate(design):
        sessions[(slot.reader, slot.session)].append(slot.position)
    for (_, session), positions in sessions.items():
        assert sorted(positions) == list(range(1, len(positions) + 1))
        if session != TRAINING_SESSION:
            assert len(positions) <= design.session_size


@PROPERTY
@given(designs())
def test_washout_between_sessions_with_items_of_one_knee(design: Design) -> None:
    knee_of = {item.id: item.pair_key for item in design.items}
    reads = defaultdict(list)  # (reader, knee) -> [(session, day)]
    for slot in _study_slots(design):
        reads[(slot.reader, knee_of[slot.item])].append((slot.session, slot.available_day))
    for visits in reads.values():
        visits.sort()
        for (s1, d1), (s2, d2) in zip(visits, visits[1:], strict=False):
            assert s1 != s2
            assert d2 - d1 >= design.washout_days


@PROPERTY
@given(designs())
def test_sessions_open_in_reading_order(design: Design) -> None:
    by_reader = defaultdict(list)
    for slot in generate(design):
        by_reader[slot.reader].append((slot.session, slot.available_day))
    for visits in by_reader.values():
        assert visits == sorted(visits)


@PROPERTY
@given(designs())
def test_arm_order_is_counterbalanced_across_readers(design: Design) -> None:
    arms = sorted({item.arm for item in design.items})
    arm_of = {item.id: item.arm for item in design.items}
    knee_of = {item.id: item.pair_key for item in design.items}
    complete = {
        knee
        for knee, n in Counter(item.pair_key for item in design.items).items()
        if n == len(arms)
    }
    first = {}  # (reader, knee) -> arm read first in round 1
    for slot in _study_slots(design):
        if slot.round == 1 and knee_of[slot.item] in complete:
            first.setdefault((slot.reader, knee_of[slot.item]), arm_of[slot.item])
    for knee in complete:
        tally = Counter(first[(reader, knee)] for reader in design.readers)
        counts = [tally.get(arm, 0) for arm in arms]
        assert max(counts) - min(counts) <= 1, (knee, tally)


@PROPERTY
@given(designs())
def test_within_a_reader_the_first_arm_alternates_over_knees(design: Design) -> None:
    arms = sorted({item.arm for item in design.items})
    if len(arms) != 2:
        return
    arm_of = {item.id: item.arm for item in design.items}
    knee_of = {item.id: item.pair_key for item in design.items}
    sizes = Counter(item.pair_key for item in design.items)
    for reader in design.readers:
        first = {}
        for slot in _study_slots(design):
            if slot.reader == reader and slot.round == 1 and sizes[knee_of[slot.item]] == 2:
                first.setdefault(knee_of[slot.item], arm_of[slot.item])
        tally = Counter(first.values())
        # Knees of one arm only interrupt the alternation: allow one per such knee.
        single_arm_knees = sum(1 for n in sizes.values() if n == 1)
        assert abs(tally.get(arms[0], 0) - tally.get(arms[1], 0)) <= 1 + single_arm_knees


@PROPERTY
@given(designs())
def test_same_seed_same_table_and_training_first(design: Design) -> None:
    table = generate(design)
    assert table == generate(design)
    for reader in design.readers:
        mine = [s for s in table if s.reader == reader]
        training = [s.item for s in mine if s.training]
        assert sorted(training) == sorted(design.training)
        assert all(s.session == TRAINING_SESSION for s in mine if s.training)


def test_the_seed_changes_the_order() -> None:
    items = [Item(f"{k}-{a}", k, a) for k in range(20) for a in ("ct", "xray")]
    one = generate(Design(readers=[1, 2], items=items, seed=1))
    two = generate(Design(readers=[1, 2], items=items, seed=2))
    assert [s.item for s in one] != [s.item for s in two]


def test_a_reference_study_is_balanced_and_spaced() -> None:
    """Ten readers, 20 knees with two arms, two rounds: the study this platform runs."""
    items = [Item(f"{k}-{a}", k, a) for k in range(20) for a in ("ct", "xray")]
    design = Design(readers=list(range(10)), items=items, rounds=2, session_size=10, seed=7)
    table = generate(design)
    assert len(table) == 10 * 40 * 2
    # each reader: 2 periods per round of 20 items -> 2 sessions each -> 8 sessions
    assert {s.session for s in table} == set(range(1, 9))
    assert {s.available_day for s in table} == {0, 14, 28, 42}
    # both arms appear in every period: X-ray items are not all read last
    for reader in range(10):
        for day in (0, 14):
            arms = {
                s.item.split("-")[1] for s in table if s.reader == reader and s.available_day == day
            }
            assert arms == {"ct", "xray"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rounds": 0}, "rounds"),
        ({"session_size": 0}, "session_size"),
        ({"washout_days": -1}, "washout"),
        ({"items": [Item(1, "k", "ct"), Item(1, "j", "ct")]}, "unique"),
        ({"items": [Item(1, "k", "ct"), Item(2, "k", "ct")]}, "one item per arm"),
        ({"readers": [1, 1]}, "reader"),
    ],
)
def test_bad_designs_are_refused(kwargs, message) -> None:
    base = {"readers": [1], "items": [Item(1, "k", "ct")]}
    with pytest.raises(ValueError, match=message):
        Design(**{**base, **kwargs})
