"""Interpolate the weights of two students of one network (WiSE-FT, Wortsman et al. 2022).

    python -m reconstruction.training.interpolate START END --weight 0.5 --out M.pt

writes a shipped student whose every weight is (1 - w) START + w END. It is meant for END
fine-tuned from START (`train_student --init START`): the two then lie in one basin of
the loss, and the average can keep START's accuracy on its own data while taking part of
END's robustness to the data it was fine-tuned on. Two independent trainings do not share a
basin; their average is usually far worse than either, so the result must be measured like
any other model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reconstruction.networks.student import XrayStudent
from reconstruction.training.checkpoints import export_model, file_sha256
from reconstruction.training.train_student import require_network, student_state


def interpolate_students(
    start: str | Path, end: str | Path, weight: float, target: str | Path
) -> Path:
    """The shipped file of (1 - weight) start + weight end; the networks must be the same."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must lie in [0, 1], got {weight}")
    config, first, start_metadata = student_state(start)
    end_config, second, end_metadata = student_state(end)
    require_network(end, end_config, config)
    model = XrayStudent(config)
    model.load_state_dict(
        {name: (1.0 - weight) * first[name] + weight * second[name] for name in first}
    )
    metadata = {
        "interpolated": {
            "start": str(start),
            "start_sha256": file_sha256(start),
            "end": str(end),
            "end_sha256": file_sha256(end),
            "weight_of_end": weight,
        },
        "start_metadata": start_metadata,
        "end_metadata": end_metadata,
    }
    return export_model(model, config.to_dict(), target, metadata)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconstruction.training.interpolate")
    parser.add_argument("start", help="student the interpolation starts from (weight 0)")
    parser.add_argument("end", help="student it goes to (weight 1), e.g. START fine-tuned")
    parser.add_argument("--weight", type=float, default=0.5, help="share of END, in [0, 1]")
    parser.add_argument("--out", required=True, help="shipped student file to write")
    args = parser.parse_args(argv)
    try:
        path = interpolate_students(args.start, args.end, args.weight, args.out)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
