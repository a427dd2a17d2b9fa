"""Randomised, counterbalanced placement order (pure; seeded).

Each surgeon places both guides (CT, X-ray) on separate printed bones of every knee, in two
periods: period 1 = one guide of each knee, period 2 = the other. Knees are shuffled per
surgeon and period. Counterbalancing: within a surgeon, half of the knees get CT first
(alternating over the shuffled knees), and the pattern flips for every other surgeon, so
over surgeons and knees each source is first equally often (exactly, with even counts).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    surgeon: int
    knee: int
    source: str
    period: int
    position: int


def schedule(seed: int, surgeons: list[int], knees: list[int]) -> list[Slot]:
    slots: list[Slot] = []
    for s_index, surgeon in enumerate(sorted(surgeons)):
        rng = random.Random(f"{seed}:{surgeon}")
        order = sorted(knees)
        rng.shuffle(order)
        first = {
            knee: ("ct", "xray")[(k_index + s_index) % 2] for k_index, knee in enumerate(order)
        }
        second_order = sorted(knees)
        rng.shuffle(second_order)
        position = 1
        for period, sequence in ((1, order), (2, second_order)):
            for knee in sequence:
                source = first[knee] if period == 1 else ("xray" if first[knee] == "ct" else "ct")
                slots.append(Slot(surgeon, knee, source, period, position))
                position += 1
    return slots
