"""Export of a full reader study: 10 raters x 100 knees x 2 sources x 3 questions x 2 rounds
(12,000 answers) to every format, against a named baseline in the same run.

Baseline: "naive values() -> DataFrame.to_csv": one ORM values() query of the answers
written as CSV (no labels, no sources, no missing rows, no codebook).

Run: .venv/bin/python benchmarks/bench_exports.py   (uses a throw-away SQLite database)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCRATCH = Path(tempfile.mkdtemp(prefix="bench-exports-"))
os.environ["STUDYAPP_VAR_DIR"] = str(SCRATCH)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyapp.settings")
os.environ.pop("DATABASE_URL", None)

import django  # noqa: E402

django.setup()

import pandas as pd  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    from studyapp.analysis import codebook, exports, formats, services
    from studyapp.analysis.models import FORMATS
    from studyapp.reading.models import Answer
    from tests.studyapp.analysis.simulated import simulated_reader_study

    settings.MEDIA_ROOT = SCRATCH / "media"
    call_command("migrate", verbosity=0)
    seconds, reader_study = timed(
        lambda: simulated_reader_study(n_raters=10, n_cases=100, rounds=2, seed=1, name="Bench")
    )
    answers = Answer.objects.filter(assignment__reader_study=reader_study).count()
    print(f"study: {answers} answers written in {seconds:.1f} s (setup, not timed below)")
    rows: list[tuple[str, float, int]] = []

    def baseline() -> bytes:
        frame = pd.DataFrame(
            list(Answer.objects.filter(assignment__reader_study=reader_study).values())
        )
        return frame.to_csv(index=False).encode()

    seconds, data = timed(baseline)
    rows.append(("baseline: naive values() -> to_csv", seconds, len(data)))
    seconds, tables = timed(lambda: exports.build_tables(reader_study))
    rows.append(("build tidy tables from the ORM", seconds, 0))
    codebook.check_coverage(tables.frames)
    answers_frame = tables["answers"]
    folder = SCRATCH / "formats"
    folder.mkdir()

    def one(fmt: str) -> int:
        if fmt == "xlsx":
            path = folder / "export.xlsx"
            formats.write_xlsx(tables.frames, codebook.codebook_frame(tables.frames), path)
            return path.stat().st_size
        if fmt == "imrmc":
            return sum(
                len(t.encode()) for t in formats.imrmc_files(answers_frame, "bench").values()
            )
        suffix, writer = formats.WRITERS_PER_TABLE[fmt]
        total = 0
        for table, frame in tables.frames.items():
            path = folder / f"{table}.{suffix}"
            writer(frame, table, path)
            total += path.stat().st_size
        return total

    for fmt in FORMATS:
        seconds, size = timed(lambda fmt=fmt: one(fmt))
        rows.append((f"{fmt} (all tables)", seconds, size))
    export = services.Export.objects.create(reader_study=reader_study, formats=list(FORMATS))
    seconds, export = timed(lambda: services.build_export(export.pk))
    rows.append(
        (
            "full export job: tables + all formats + codebook + provenance -> zip",
            seconds,
            export.size_bytes,
        )
    )
    print(f"\nanswers table: {len(answers_frame)} rows x {answers_frame.shape[1]} columns\n")
    print(f"{'format':<72} {'seconds':>8} {'bytes':>12}")
    for name, seconds, size in rows:
        print(f"{name:<72} {seconds:>8.2f} {size:>12,}")
    base = rows[0][1]
    print(f"\nfull export / baseline time: {rows[-1][1] / base:.1f}x")


if __name__ == "__main__":
    main()
