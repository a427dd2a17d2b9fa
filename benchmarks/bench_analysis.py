"""Benchmark: full reader-study analysis at the planned study size.

10 raters x 100 knees x 2 sources x 3 questions x 2 rounds (12,000 ratings),
bootstrap of 2,000. Prints per-stage times and, where a peer exists, the same
computation by that peer in the same run (statsmodels MixedLM for the crossed
REML fit, pingouin ICC, krippendorff package, scikit-learn kappa). The
max_abs_diff column checks that peer and ours agree.

    .venv/bin/python benchmarks/bench_analysis.py [--n-boot 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.analysis import AnalysisOptions, analyse_ratings  # noqa: E402
from evaluation.stats.equivalence import (  # noqa: E402
    bootstrap_interval,
    fit_crossed_mixed_model,
    satterthwaite_interval,
)
from evaluation.stats.ratings import paired_difference_matrix, prepare_ratings  # noqa: E402
from evaluation.stats.reliability import (  # noqa: E402
    icc_table,
    krippendorff_alpha,
    mean_pairwise_kappa,
    rating_matrix,
)
from evaluation.stats.simulate import simulate_reader_study  # noqa: E402

TARGET_SECONDS = 60.0


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _peer_icc(matrix: pd.DataFrame) -> tuple[float, float] | None:
    try:
        import pingouin as pg
    except ImportError:
        return None
    long = matrix.reset_index().melt(id_vars="case", var_name="rater", value_name="score")
    seconds, res = timed(lambda: pg.intraclass_corr(long, "case", "rater", "score"))
    ours = icc_table(matrix.to_numpy())["value"].to_numpy()
    diff = max(np.min(np.abs(res["ICC"].to_numpy() - v)) for v in ours)  # label-free match
    return seconds, float(diff)


def _peer_alpha(matrix: pd.DataFrame) -> tuple[float, float] | None:
    try:
        import krippendorff
    except ImportError:
        return None
    seconds, value = timed(
        lambda: krippendorff.alpha(
            reliability_data=matrix.to_numpy().T,
            level_of_measurement="ordinal",
            value_domain=[1, 2, 3, 4, 5],
        )
    )
    ours = krippendorff_alpha(matrix.to_numpy(), n_boot=0)["alpha"]
    return seconds, abs(value - ours)


def _peer_kappa(matrix: pd.DataFrame) -> tuple[float, float] | None:
    try:
        from sklearn.metrics import cohen_kappa_score
    except ImportError:
        return None

    def run() -> float:
        vals = [
            cohen_kappa_score(matrix[a], matrix[b], weights="quadratic", labels=[1, 2, 3, 4, 5])
            for a, b in combinations(matrix.columns, 2)
        ]
        return float(np.mean(vals))

    seconds, value = timed(run)
    return seconds, abs(value - mean_pairwise_kappa(matrix)["mean_kappa"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip-statsmodels", action="store_true", help="skip the slow MixedLM peer fit"
    )
    args = parser.parse_args()

    raw = simulate_reader_study(
        n_raters=10,
        n_cases=100,
        questions=("shape", "fine_detail", "usefulness"),
        n_rounds=2,
        difference=0.1,
        seed=args.seed,
    )
    rows: list[dict[str, object]] = []

    def add(stage: str, ours: float, peer: str = "", peer_s: float | None = None, diff=None):
        rows.append(
            {"stage": stage, "ours_s": ours, "peer": peer, "peer_s": peer_s, "max_abs_diff": diff}
        )

    t_prep, ratings = timed(lambda: prepare_ratings(raw))
    add("validate 12,000 ratings", t_prep)
    part = ratings[ratings["question"] == "shape"]
    dmat = paired_difference_matrix(part)
    t_boot, boot = timed(lambda: bootstrap_interval(dmat.to_numpy(), 0.5, 0.9, args.n_boot, 1))
    t_sat, sat = timed(lambda: satterthwaite_interval(dmat, 0.5, 0.9))
    t_fit, fit = timed(lambda: fit_crossed_mixed_model(part))
    add(
        f"two-way bootstrap x{args.n_boot} (1 question)",
        t_boot,
        f"REML refit x{args.n_boot} (extrapolated)",
        t_fit * args.n_boot,
    )
    add("Satterthwaite moment CI (1 question)", t_sat)
    if args.skip_statsmodels:
        add("crossed REML fit (1 question)", t_fit)
    else:
        # Same single-thread BLAS as ours, so the comparison is about the algorithm.
        with threadpool_limits(limits=1, user_api="blas"):
            t_sm, sm = timed(lambda: fit_crossed_mixed_model(part, engine="statsmodels"))
        add(
            "crossed REML fit (1 question)",
            t_fit,
            "statsmodels MixedLM vc_formula",
            t_sm,
            abs(fit["estimate"] - sm["estimate"]) + abs(fit["se"] - sm["se"]),
        )
    matrix = rating_matrix(ratings[(ratings["source"] == "CT") & (ratings["question"] == "shape")])
    t_icc, _ = timed(lambda: icc_table(matrix.to_numpy()))
    peer = _peer_icc(matrix)
    add("ICC table, 6 forms + CIs", t_icc, "pingouin.intraclass_corr", *(peer or (None, None)))
    t_alpha, _ = timed(lambda: krippendorff_alpha(matrix.to_numpy(), n_boot=0))
    peer = _peer_alpha(matrix)
    add("Krippendorff alpha (point)", t_alpha, "krippendorff.alpha", *(peer or (None, None)))
    t_alpha_b, _ = timed(lambda: krippendorff_alpha(matrix.to_numpy(), n_boot=args.n_boot))
    add(f"Krippendorff alpha + bootstrap x{args.n_boot}", t_alpha_b)
    t_kappa, _ = timed(lambda: mean_pairwise_kappa(matrix))
    peer = _peer_kappa(matrix)
    add(
        "weighted kappa, 45 rater pairs",
        t_kappa,
        "sklearn cohen_kappa_score",
        *(peer or (None, None)),
    )
    options = AnalysisOptions(margin=0.5, seed=args.seed, n_boot=args.n_boot)
    t_full, result = timed(lambda: analyse_ratings(ratings, options))
    add("FULL analysis (CLI path, 3 questions)", t_full)

    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 160, "display.max_colwidth", 44):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print()
    for q in result["questions"]:
        print(
            f"{q['question']:<12} diff {q['estimate']:+.3f} 90% CI [{q['ci_low']:+.3f}, "
            f"{q['ci_high']:+.3f}] p_TOST {q['p_tost']:.2g} equivalent={q['equivalent']}"
        )
    verdict = "OK" if t_full <= TARGET_SECONDS else "OVER TARGET"
    print(f"\nfull analysis {t_full:.1f} s (target <= {TARGET_SECONDS:.0f} s): {verdict}")


if __name__ == "__main__":
    main()
