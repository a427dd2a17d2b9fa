"""The submission load benchmark at a tiny size: its integrity check, not its timing."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_reading_submit.py"
DATABASE_URL = os.environ.get("DATABASE_URL", "")

needs_postgres = pytest.mark.skipif(
    not DATABASE_URL.startswith(("postgres://", "postgresql://")),
    reason="the benchmark creates its own PostgreSQL database (set DATABASE_URL=postgres://...)",
)


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_reading_submit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _bench():
    pytest.importorskip("gunicorn", reason="the benchmark serves with gunicorn (dev extras)")
    return _load_bench()


@needs_postgres
def test_tiny_run_stores_every_answer_once_audits_it_and_drops_its_database():
    bench = _bench()
    result = bench.run_benchmark(
        raters=3,
        items_per_rater=2,
        workers=1,
        threads=2,
        think_ms=0,
        duplicate_fraction=0.5,
        server_url=DATABASE_URL,
        max_seconds=120,
    )
    check = result.integrity
    assert check["answers_expected"] == 3 * 2 * 3  # raters x items x default questions
    assert check["answers_stored"] == check["answers_expected"]
    assert check["audit_creates"] == check["answers_stored"]
    assert check["submissions"] == check["submissions_expected"] == 6
    assert check["duplicate_pairs_sent"] == 3
    for name in ("lost", "wrong_value", "unexpected", "duplicated", "not_accepted"):
        assert check[name] == 0, (name, check)
    assert check["duplicate_pairs_differing"] == 0
    assert check["assignments_unsubmitted"] == 0
    assert result.integrity_ok
    assert all(p.errors == 0 for p in result.baselines) and result.submit.errors == 0
    assert len(result.submit.latencies_ms) == 6 + 3  # each duplicate is a second request

    assert _leftover_databases(bench) == []


def _leftover_databases(bench) -> list:
    import psycopg

    with psycopg.connect(bench.database_url(DATABASE_URL, "postgres"), autocommit=True) as conn:
        return conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s",
            (f"kneestudy_bench_{os.getpid()}_%",),
        ).fetchall()


def test_doubled_submissions_are_one_in_n_and_spread_over_the_positions():
    bench = _load_bench()
    raters, items, every = 50, 20, 10
    doubled = [[bench.is_doubled(r, p, every) for p in range(items)] for r in range(raters)]
    assert sum(map(sum, doubled)) == raters * items // every
    per_position = [sum(row[p] for row in doubled) for p in range(items)]
    assert max(per_position) == raters // every  # never all raters at the same step
    assert not any(bench.is_doubled(r, p, 0) for r in range(3) for p in range(3))


def test_the_summary_counts_only_runs_within_the_limit_and_with_intact_data(capsys) -> None:
    bench = _load_bench()
    intact = {
        "answers_expected": 3, "answers_stored": 3, "audit_creates": 3, "submissions": 1,
        "submissions_expected": 1, "lost": 0, "wrong_value": 0, "unexpected": 0,
        "duplicated": 0, "duplicate_pairs_differing": 0, "not_accepted": 0,
        "assignments_unsubmitted": 0,
    }  # fmt: skip

    def run(latencies: list[float], check: dict) -> object:
        phase = bench.Phase("submit", latencies_ms=latencies, tags=[""] * len(latencies))
        phase.statuses.update({200: len(latencies)})
        return bench.Result([], phase, check, 0.0)

    fast, slow = [10.0] * 100, [10.0] * 90 + [80.0] * 10
    bench.print_summary([run(fast, intact), run(slow, intact), run(fast, {**intact, "lost": 1})])
    out = capsys.readouterr().out
    assert "1 of 3 runs met p95 <= 50 ms" in out
    assert out.count("FAIL") == 2


@pytest.mark.parametrize("option", ["--runs", "--raters", "--workers", "--client-processes"])
def test_counts_below_one_are_refused_with_a_clear_message(option, capsys):
    bench = _load_bench()
    with pytest.raises(SystemExit) as raised:
        bench.parse_arguments([option, "0"])
    assert raised.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
    assert bench.parse_arguments([option, "2"])  # and 2 is fine
