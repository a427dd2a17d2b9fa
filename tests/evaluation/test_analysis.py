import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.analysis import main
from evaluation.stats.simulate import simulate_reader_study

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory) -> Path:
    df = simulate_reader_study(
        n_raters=6, n_cases=12, questions=("shape", "detail"), n_rounds=2, seed=4
    )
    df["source"] = df["source"].map({"CT": "ct", "XRAY": "x-ray"})
    path = tmp_path_factory.mktemp("cli") / "ratings.csv"
    df.to_csv(path, index=False)
    return path


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_reports_equivalence_and_reliability(ratings_csv, capsys):
    code, out, err = _run([ratings_csv, "--json", "--no-mixed", "--n-boot", "200"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert [q["question"] for q in result["questions"]] == ["detail", "shape"]
    for q in result["questions"]:
        assert q["ci_low"] <= q["estimate"] <= q["ci_high"]
        assert 0 <= q["p_tost"] <= 1
        assert q["equivalent"] == (q["ci_low"] > -0.5 and q["ci_high"] < 0.5)
        assert q["ci_level"] == 0.9
    rel = {(r["source"], r["question"]) for r in result["reliability"]}
    assert rel == {(s, q) for s in ("CT", "XRAY") for q in ("detail", "shape")}
    for r in result["reliability"]:
        assert r["ICC_A1"] <= r["ICC_Ak"]
        assert {"kripp_alpha", "weighted_kappa"} <= set(r)
    assert result["n_missing"] == 0
    assert "intra_rater" in result
    summary = {(r["question"], r["source"]): r for r in result["summary"]}
    assert len(summary) == 4 and summary[("shape", "CT")]["n"] == 6 * 12 * 2
    per_rater = result["questions"][0]["sensitivity"]["per_rater"]
    assert len(per_rater) == 6


def test_cli_margin_and_seed_change_the_result(ratings_csv, capsys):
    base = ["--json", "--no-mixed", "--n-boot", "200", "--ci-method", "bootstrap"]
    _, out1, _ = _run([ratings_csv, *base, "--seed", "1"], capsys)
    _, out2, _ = _run([ratings_csv, *base, "--seed", "1"], capsys)
    _, out3, _ = _run([ratings_csv, *base, "--seed", "2", "--margin", "0.01"], capsys)
    r1, r2, r3 = (json.loads(o) for o in (out1, out2, out3))
    assert r1 == r2
    assert r3["options"]["margin"] == 0.01
    assert r1["questions"][0]["ci_low"] != r3["questions"][0]["ci_low"]
    assert not any(q["equivalent"] for q in r3["questions"])


def test_cli_reports_missing_ratings(ratings_csv, tmp_path, capsys):

    df = pd.read_csv(ratings_csv)
    df.loc[:9, "score"] = np.nan
    path = tmp_path / "holes.csv"
    df.to_csv(path, index=False)
    code, out, _ = _run([path, "--json", "--no-mixed", "--n-boot", "50"], capsys)
    result = json.loads(out)
    assert code == 0
    assert result["n_missing"] == 10
    assert sum(m["missing"] for m in result["missing"]) == 10


def test_module_entry_point_prints_table(ratings_csv):
    proc = subprocess.run(
        [sys.executable, "-m", "evaluation.analysis", str(ratings_csv), "--n-boot", "100"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Equivalence XRAY - CT" in proc.stdout and "ICC(A,1)" in proc.stdout


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.drop(columns="rater"), "missing required column(s): rater"),
        (lambda d: d.assign(score=d["score"].where(d.index != 3, 7)), "outside 1..5"),
        (
            lambda d: d.assign(score=d["score"].astype(object).where(d.index != 3, "x")),
            "non-numeric",
        ),
        (lambda d: d[d["source"] == "ct"], "have no ratings"),
    ],
)
def test_cli_bad_csv_exits_nonzero_with_one_line(ratings_csv, tmp_path, capsys, edit, message):

    path = tmp_path / "bad.csv"
    edit(pd.read_csv(ratings_csv)).to_csv(path, index=False)
    code, out, err = _run([path, "--json"], capsys)
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_cli_empty_and_missing_files(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, _, err = _run([empty], capsys)
    assert code == 2 and "cannot parse" in err
    code, _, err = _run([tmp_path / "nope.csv"], capsys)
    assert code == 2 and "file not found" in err
