"""Reader-study analysis from the command line.

    python -m evaluation.analysis RATINGS.csv [--margin 0.5] [--seed S] [--json]

RATINGS.csv is the long export (columns rater, case, source, question, score;
optional round). Prints per question the X-ray - CT difference with its 90% CI,
the TOST p-value and the equivalence verdict, and per source the reliability
(ICC(A,1), ICC(A,k), Krippendorff's alpha, quadratic-weighted kappa). Bad input
exits with status 2 and a one-line message on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.stats.equivalence import (
    CI_METHODS,
    intervals_table,
    paired_tost_case_means,
    per_rater_differences,
    reader_study_equivalence,
    wilcoxon_case_means,
)
from evaluation.stats.ratings import RatingsError, missing_report, prepare_ratings
from evaluation.stats.reliability import intra_rater_agreement, source_reliability
from evaluation.stats.summaries import likert_summary


@dataclass(frozen=True)
class AnalysisOptions:
    margin: float = 0.5
    seed: int = 0
    n_boot: int = 2000
    ci_method: str = "satterthwaite"
    fit_mixed: bool = True


def read_ratings_csv(path: str | Path) -> pd.DataFrame:
    """Read and validate a ratings CSV; raise RatingsError with a specific message."""
    try:
        raw = pd.read_csv(path)
    except FileNotFoundError as exc:
        raise RatingsError(f"file not found: {path}") from exc
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise RatingsError(f"cannot parse {path} as CSV: {exc}".splitlines()[0]) from exc
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    if raw.empty:
        raise RatingsError(f"{path} has no rating rows")
    return prepare_ratings(raw)


def analyse_ratings(ratings: pd.DataFrame, options: AnalysisOptions | None = None) -> dict:
    """Full reader-study analysis of a prepared ratings table, as plain data."""
    opts = options or AnalysisOptions()
    table, results = reader_study_equivalence(
        ratings,
        margin=opts.margin,
        n_boot=opts.n_boot,
        seed=opts.seed,
        ci_method=opts.ci_method,
        fit_mixed=opts.fit_mixed,
    )
    questions = []
    for res in results:
        part = ratings[ratings["question"] == res.question]
        entry = res.to_dict()
        entry["sensitivity"] = {
            "paired_tost_case_means": paired_tost_case_means(part, opts.margin),
            "wilcoxon_case_means": wilcoxon_case_means(part),
            "per_rater": per_rater_differences(part).to_dict(orient="records"),
        }
        questions.append(entry)
    missing = missing_report(ratings)
    out = {
        "options": _fields(opts),
        "n_ratings": int(ratings["score"].notna().sum()),
        "n_missing": int(missing["missing"].sum()),
        "missing": missing[missing["missing"] > 0].to_dict(orient="records"),
        "summary": likert_summary(ratings).to_dict(orient="records"),
        "questions": questions,
        "intervals": intervals_table(results).to_dict(orient="records"),
        "reliability": source_reliability(ratings, seed=opts.seed).to_dict(orient="records"),
    }
    if ratings["round"].nunique() >= 2:
        rounds = tuple(sorted(ratings["round"].unique())[:2])
        out["intra_rater"] = intra_rater_agreement(ratings, rounds).to_dict(orient="records")
    return _jsonable(out)


def _fields(opts: AnalysisOptions) -> dict:
    return {name: getattr(opts, name) for name in opts.__dataclass_fields__}


def _jsonable(value: object) -> object:
    """NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_report(result: dict) -> str:
    """Human-readable summary of :func:`analyse_ratings` output."""
    opts = result["options"]
    lines = [
        f"Equivalence XRAY - CT (margin +/-{opts['margin']}, 90% CI, {opts['ci_method']})",
        f"{'question':<24}{'diff':>8}{'ci_low':>9}{'ci_high':>9}{'p_tost':>9}  verdict",
    ]
    for q in result["questions"]:
        verdict = "equivalent" if q["equivalent"] else "not shown equivalent"
        lines.append(
            f"{q['question']:<24}{q['estimate']:>8.3f}{q['ci_low']:>9.3f}"
            f"{q['ci_high']:>9.3f}{q['p_tost']:>9.4f}  {verdict}"
        )
    lines += ["", "Mean score by source"]
    for row in result["summary"]:
        shares = " ".join(f"{row[f'share_{v}']:.2f}" for v in range(1, 6))
        lines.append(
            f"{row['question']:<24}{row['source']:<6} mean {row['mean']:.2f} "
            f"(SD {row['sd']:.2f}, n {row['n']})  shares 1..5: {shares}"
        )
    lines += ["", "Reliability per source (first round)"]
    lines.append(
        f"{'source':<8}{'question':<24}{'ICC(A,1)':>9}{'ICC(A,k)':>9}{'alpha':>8}{'kappa_w':>9}"
    )
    for r in result["reliability"]:
        lines.append(
            f"{r['source']:<8}{r['question']:<24}{_fmt(r.get('ICC_A1'))}"
            f"{_fmt(r.get('ICC_Ak'))}{_fmt(r['kripp_alpha'], 8)}{_fmt(r['weighted_kappa'])}"
        )
    lines.append("")
    lines.append(f"ratings analysed: {result['n_ratings']}, missing: {result['n_missing']}")
    return "\n".join(lines)


def _fmt(value: float | None, width: int = 9) -> str:
    return f"{'NA':>{width}}" if value is None else f"{value:>{width}.3f}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluation.analysis", description=__doc__)
    parser.add_argument("ratings", help="long-format ratings CSV")
    parser.add_argument("--margin", type=float, default=0.5, help="equivalence margin (points)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--ci-method", choices=CI_METHODS, default="satterthwaite")
    parser.add_argument("--no-mixed", action="store_true", help="skip the MixedLM fit")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.margin > 0:
        print("error: --margin must be positive", file=sys.stderr)
        return 2
    if args.ci_method == "mixedlm_wald" and args.no_mixed:
        print("error: --ci-method mixedlm_wald needs the MixedLM fit", file=sys.stderr)
        return 2
    try:
        ratings = read_ratings_csv(args.ratings)
        options = AnalysisOptions(
            margin=args.margin,
            seed=args.seed,
            n_boot=args.n_boot,
            ci_method=args.ci_method,
            fit_mixed=not args.no_mixed,
        )
        result = analyse_ratings(ratings, options)
    except (RatingsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
