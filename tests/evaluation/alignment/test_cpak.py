from __future__ import annotations

import pytest

from evaluation.alignment.cpak import classify
from evaluation.alignment.errors import AlignmentError


@pytest.mark.parametrize(
    ("ahka", "jlo", "expected"),
    [
        (-4.0, 174.0, "I"),
        (0.0, 174.0, "II"),
        (4.0, 174.0, "III"),
        (-4.0, 180.0, "IV"),
        (0.0, 180.0, "V"),
        (4.0, 180.0, "VI"),
        (-4.0, 186.0, "VII"),
        (0.0, 186.0, "VIII"),
        (4.0, 186.0, "IX"),
        (-2.0, 177.0, "V"),  # boundary values are neutral
        (2.0, 183.0, "V"),
        (-2.0001, 176.9999, "I"),
    ],
)
def test_table(ahka: float, jlo: float, expected: str) -> None:
    assert classify(ahka, jlo).type == expected


def test_boundary_distance() -> None:
    result = classify(-2.7, 179.6)
    assert result.boundary_distance_deg == pytest.approx(0.7)
    assert result.nearest_boundary == "aHKA = -2"
    assert classify(0.3, 182.1).nearest_boundary == "JLO = 183"


def test_nan_rejected() -> None:
    with pytest.raises(AlignmentError):
        classify(float("nan"), 180.0)
