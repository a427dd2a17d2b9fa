"""The reading order of a blinded reader study: a pure, seeded, reproducible assignment table.

No Django here, so the properties can be checked quickly for many study sizes.

Inputs
    readers        reader ids (any hashable, sorted for a stable order)
    items          study items, each with a *pair key* (the knee) and an *arm*
                   (the reconstruction source: CT, X-ray, expert...)
    training       items read once, in a training session 0 before round 1
    rounds         repeat reads (round 1..R) for intra-reader agreement
    session_size   maximum number of items in one session
    washout_days   minimum gap between two sessions holding items of the same knee
    seed           the stored study seed; the table is a function of the inputs and it

Algorithm
    1. Knees are sorted by pair key and shuffled once with the study seed; each knee gets
       an index j. The arms of the study are sorted (a fixed list of m arms).
    2. Latin square for the order of arms: reader r (index in the sorted readers) reads the
       arms of knee j in the cyclic order starting at offset (r + j + round - 1) mod m.
       Across readers every knee has each arm first for floor or ceil(n/m) readers; within
       a reader the knees are split as evenly as possible between the arms read first;
       the order flips between consecutive rounds. A knee lacking an arm just skips it.
    3. Period p of a round holds, for every knee, the arm at place p of that reader's
       order for the knee. So the items of one knee fall into different periods.
    4. Each period's items are shuffled (a generator seeded by seed, reader and round,
       independent of the other readers) and cut into sessions of at most session_size.
       Sessions never span periods, hence the two arms of a knee (and the repeat of an
       item in the next round) are never in the same session.
    5. Sessions are numbered per reader from 1, in reading order over rounds and periods;
       the training session is 0. The earliest opening day of a session is
       washout_days * (number of periods before it over all rounds): consecutive periods
       are at least one washout apart. The platform additionally opens a session only
       once the washout has passed since the reader actually submitted the paired items.

Adding readers or items changes the table, so it is generated once, at launch, and stored.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

TRAINING_SESSION = 0


@dataclass(frozen=True)
class Item:
    id: Hashable
    pair_key: Hashable  # the knee: items sharing it must never share a session
    arm: str


@dataclass(frozen=True)
class Slot:
    reader: Hashable
    round: int
    session: int
    position: int
    item: Hashable
    available_day: int  # earliest opening, in days after launch
    training: bool = False


@dataclass(frozen=True)
class Design:
    readers: Sequence[Hashable]
    items: Sequence[Item]
    rounds: int = 1
    session_size: int = 20
    washout_days: int = 14
    seed: int = 0
    training: Sequence[Hashable] = ()

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError("rounds must be at least 1")
        if self.session_size < 1:
            raise ValueError("session_size must be at least 1")
        if self.washout_days < 0:
            raise ValueError("washout_days cannot be negative")
        ids = [item.id for item in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("item ids must be unique")
        arms_per_knee = [(item.pair_key, item.arm) for item in self.items]
        if len(set(arms_per_knee)) != len(arms_per_knee):
            raise ValueError("a knee has at most one item per arm")
        if len(set(self.readers)) != len(self.readers):
            raise ValueError("reader ids must be unique")


def _rng(*parts: object) -> random.Random:
    """A generator seeded by a stable digest of the parts (not Python's salted hash())."""
    digest = hashlib.sha256(":".join(repr(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _sort_key(value: Hashable) -> tuple[str, str]:
    return (type(value).__name__, repr(value))


def knees_in_order(design: Design) -> list[dict[str, Hashable]]:
    """Knee -> {arm: item id}, in the seeded knee order (step 1)."""
    by_knee: dict[Hashable, dict[str, Hashable]] = {}
    for item in design.items:
        by_knee.setdefault(item.pair_key, {})[item.arm] = item.id
    keys = sorted(by_knee, key=_sort_key)
    _rng(design.seed, "knees").shuffle(keys)
    return [by_knee[key] for key in keys]


def arm_order(arms: Sequence[str], reader_index: int, knee_index: int, round_: int) -> list[str]:
    """The Latin-square row: the study's arms rotated by (reader + knee + round - 1) mod m."""
    offset = (reader_index + knee_index + round_ - 1) % len(arms)
    return list(arms[offset:]) + list(arms[:offset])


def periods_for(design: Design, reader_index: int, round_: int) -> list[list[Hashable]]:
    """Item ids per period for one reader and round (steps 2-3)."""
    arms = sorted({item.arm for item in design.items})
    periods: list[list[Hashable]] = [[] for _ in arms]
    for knee_index, knee in enumerate(knees_in_order(design)):
        present = [arm for arm in arm_order(arms, reader_index, knee_index, round_) if arm in knee]
        for place, arm in enumerate(present):
            periods[place].append(knee[arm])
    return [period for period in periods if period]


def _chunks(values: list[Hashable], size: int) -> list[list[Hashable]]:
    return [values[start : start + size] for start in range(0, len(values), size)]


def generate(design: Design) -> list[Slot]:
    """The whole assignment table, in reading order per reader."""
    slots: list[Slot] = []
    readers = sorted(design.readers, key=_sort_key)
    for reader_index, reader in enumerate(readers):
        slots.extend(_training_slots(design, reader))
        session = TRAINING_SESSION
        period_number = 0
        for round_ in range(1, design.rounds + 1):
            rng = _rng(design.seed, "order", reader, round_)
            for period in periods_for(design, reader_index, round_):
                shuffled = list(period)
                rng.shuffle(shuffled)
                for chunk in _chunks(shuffled, design.session_size):
                    session += 1
                    slots.extend(
                        Slot(
                            reader=reader,
                            round=round_,
                            session=session,
                            position=position,
                            item=item,
                            available_day=period_number * design.washout_days,
                        )
                        for position, item in enumerate(chunk, start=1)
                    )
                period_number += 1
    return slots


def _training_slots(design: Design, reader: Hashable) -> list[Slot]:
    order = list(design.training)
    _rng(design.seed, "training", reader).shuffle(order)
    return [
        Slot(reader, 1, TRAINING_SESSION, position, item, available_day=0, training=True)
        for position, item in enumerate(order, start=1)
    ]
