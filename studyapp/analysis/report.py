"""The study report: HTML from a Django template with matplotlib figures inlined as data
URIs, and a PDF (headless Chromium print-to-PDF of that HTML if available, else matplotlib
PdfPages of the same figures and tables). The footer says which engine made the PDF.

Statistics come from evaluation.stats / evaluation.analysis only; this module gathers
inputs and draws.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from django.conf import settings  # noqa: E402
from django.template.loader import render_to_string  # noqa: E402
from django.utils import timezone  # noqa: E402

from evaluation.analysis import AnalysisOptions, analyse_ratings  # noqa: E402
from evaluation.stats import angle_agreement, metric_summary, prepare_ratings  # noqa: E402
from studyapp.cases.models import SurfaceEvaluation  # noqa: E402
from studyapp.files import atomic_write_bytes  # noqa: E402
from studyapp.reading.models import ReaderStudy  # noqa: E402

from . import exports, provenance, selectors  # noqa: E402

logger = logging.getLogger(__name__)
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
ENGINE_TEXT = {
    "chromium": "PDF rendered by headless Chromium (print-to-PDF of this HTML).",
    "matplotlib": "PDF rendered by matplotlib PdfPages (figures and tables; Chromium unavailable).",
}
LIKERT_COLOURS = ["#b2182b", "#ef8a62", "#d9d9d9", "#67a9cf", "#2166ac"]
Progress = Callable[[float, str], None]


@dataclass
class BuiltReport:
    context: dict[str, Any]
    figures: dict[str, bytes]  # name -> PNG
    tables: list[tuple[str, pd.DataFrame]]  # for the PdfPages fallback
    results: dict[str, Any]
    options: dict[str, Any]
    answer_stamp: str
    notes: list[str] = field(default_factory=list)


# --- inputs ------------------------------------------------------------------------------


def participant_flow(answers: pd.DataFrame, assignments: pd.DataFrame) -> dict[str, Any]:
    study_reads = assignments[~assignments["is_training"].astype(bool)]
    study_answers = answers[~answers["excluded"].astype(bool)]
    return {
        "items": int(study_reads["item_code"].nunique()),
        "training_items": int(
            assignments.loc[assignments["is_training"].astype(bool), "item_code"].nunique()
        ),
        "cases": int(study_reads["case"].nunique()),
        "raters": int(assignments["rater"].nunique()),
        "reads_planned": int(len(study_reads)),
        "reads_completed": int((study_reads["status"] == "submitted").sum()),
        "reads_opened_not_submitted": int((study_reads["status"] == "not_submitted").sum()),
        "reads_not_opened": int((study_reads["status"] == "not_opened").sum()),
        "answers_expected": int(len(study_answers)),
        "answers_complete": int((study_answers["status"] == "complete").sum()),
        "answers_skipped": int((study_answers["status"] == "skipped").sum()),
        "excluded_rows": int(answers["excluded"].astype(bool).sum()),
        "exclusion_reasons": answers.loc[answers["excluded"].astype(bool), "exclusion_reason"]
        .value_counts()
        .to_dict(),
        "edited_answers": int(answers["edited"].astype(bool).sum()),
    }


def run_analysis(answers: pd.DataFrame, options: AnalysisOptions) -> tuple[dict | None, str]:
    """evaluation.analysis on the study's Likert reads; (None, reason) when impossible."""
    ratings = exports.ratings_for_analysis(answers)
    if ratings["score"].notna().sum() == 0:
        return None, "No Likert answers of CT and X-ray items yet."
    try:
        prepared = prepare_ratings(ratings)
        return analyse_ratings(prepared, options), ""
    except (ValueError, np.linalg.LinAlgError) as exc:  # RatingsError is a ValueError
        return None, f"The analysis could not run: {exc}"


# --- figures ---------------------------------------------------------------------------------


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def likert_figure(summary: list[dict]) -> bytes | None:
    """Diverging stacked bars: share of each score by question and source, centred on 3."""
    if not summary:
        return None
    rows = pd.DataFrame(summary)
    labels = [f"{q} - {s}" for q, s in zip(rows["question"], rows["source"], strict=True)]
    shares = rows[[f"share_{v}" for v in range(1, 6)]].to_numpy(dtype=float) * 100
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.4))
    left = -(shares[:, 0] + shares[:, 1] + shares[:, 2] / 2)
    for value in range(5):
        ax.barh(
            labels, shares[:, value], left=left, color=LIKERT_COLOURS[value], label=str(value + 1)
        )
        left = left + shares[:, value]
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("% of ratings (centred on the neutral score 3)")
    ax.invert_yaxis()
    ax.legend(title="Score", ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
    ax.set_title("Likert scores by source")
    return _png(fig)


def forest_figure(questions: list[dict], margin: float) -> bytes | None:
    """X-ray - CT difference per question: every interval method, margin lines at +/-margin."""
    if not questions:
        return None
    methods = sorted({m for q in questions for m in (q.get("intervals") or {})})
    fig, ax = plt.subplots(figsize=(8, 0.9 * len(questions) * max(1, len(methods)) / 2 + 1.5))
    ticks, names = [], []
    y = 0.0
    markers = {"satterthwaite": "o", "bootstrap": "s", "mixedlm_wald": "^"}
    for q in questions:
        for k, method in enumerate(methods):
            interval = (q.get("intervals") or {}).get(method)
            if not interval or interval.get("ci_low") is None:
                continue
            yy = y + 0.25 * k
            ax.plot([interval["ci_low"], interval["ci_high"]], [yy, yy], color="#333")
            ax.plot(
                interval["estimate"], yy, markers.get(method, "o"), color="#2166ac", label=method
            )
        ticks.append(y + 0.25 * (len(methods) - 1) / 2)
        names.append(str(q["question"]))
        y += 1.0
    for x in (-margin, margin):
        ax.axvline(x, color="#b2182b", ls="--", lw=1)
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_yticks(ticks, names)
    ax.invert_yaxis()
    ax.set_xlabel(f"X-ray - CT mean score (90% CI); equivalence margin +/-{margin:g}")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), loc="best", fontsize=8)
    ax.set_title("Equivalence of X-ray and CT derived models")
    return _png(fig)


def bland_altman_figures(angles: pd.DataFrame, agreement: pd.DataFrame) -> dict[str, bytes]:
    figures = {}
    for row in agreement.to_dict(orient="records"):
        part = angles[angles["angle"] == row["angle"]]
        wide = part.pivot_table(index="case", columns="source", values="value").dropna()
        if "XRAY" not in wide or "CT" not in wide:
            continue
        mean = (wide["XRAY"] + wide["CT"]) / 2
        diff = wide["XRAY"] - wide["CT"]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.scatter(mean, diff, s=12)
        for value, style in ((row["bias"], "-"), (row["loa_low"], "--"), (row["loa_high"], "--")):
            ax.axhline(value, color="#b2182b", ls=style, lw=1)
        ax.set_xlabel("Mean of X-ray and CT (degree)")
        ax.set_ylabel("X-ray - CT (degree)")
        ax.set_title(f"Bland-Altman: {row['angle']}")
        figures[f"bland_altman_{row['angle']}"] = _png(fig)
    return figures


def error_maps(reader_study: ReaderStudy, limit: int = 24) -> list[dict[str, str]]:
    root = Path(settings.MEDIA_ROOT)
    gallery = []
    evaluations = (
        SurfaceEvaluation.objects.filter(reconstruction__case__study=reader_study.study)
        .exclude(figure="")
        .select_related("reconstruction__case", "reference")
        .order_by("reconstruction__case__code", "reconstruction__source")
    )
    for evaluation in evaluations[:limit]:
        path = root / evaluation.figure.name
        if not path.is_file():
            continue
        mime = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
        gallery.append(
            {
                "caption": f"{evaluation.reconstruction.case.code}: "
                f"{evaluation.reconstruction.get_source_display()} vs "
                f"{evaluation.reference.get_source_display()}",
                "src": f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}",
            }
        )
    return gallery


def _data_uri(png: bytes | None) -> str:
    return f"data:image/png;base64,{base64.b64encode(png).decode()}" if png else ""


def _records(frame: pd.DataFrame, digits: int = 3) -> dict[str, Any]:
    """A table for the template: header and rows with numbers rounded, NA as an en dash."""
    rows = []
    for record in frame.to_dict(orient="records"):
        row = []
        for value in record.values():
            if isinstance(value, float | np.floating):
                row.append("–" if not np.isfinite(value) else f"{value:.{digits}f}")
            elif value is None or value is pd.NA:
                row.append("–")
            else:
                row.append(str(value))
        rows.append(row)
    return {"columns": list(frame.columns), "rows": rows}


# --- build --------------------------------------------------------------------------------


def build(
    reader_study: ReaderStudy,
    *,
    progress: Progress = lambda p, m="": None,
    margin: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
) -> BuiltReport:
    stamp = selectors.answer_stamp(reader_study)
    progress(5, "tables")
    tables = exports.build_tables(reader_study)
    answers, assignments = tables["answers"], tables["assignments"]
    flow = participant_flow(answers, assignments)
    progress(15, "statistics")
    options = AnalysisOptions(margin=margin, n_boot=n_boot, seed=seed)
    results, analysis_note = run_analysis(answers, options)
    figures: dict[str, bytes] = {}
    report_tables: list[tuple[str, pd.DataFrame]] = [("Participant flow", _flow_frame(flow))]
    progress(55, "figures")
    primary, reliability = pd.DataFrame(), pd.DataFrame()
    if results:
        if png := likert_figure(results["summary"]):
            figures["likert"] = png
        if png := forest_figure(results["questions"], margin):
            figures["forest"] = png
        primary = pd.DataFrame(
            [
                {
                    "question": q["question"],
                    "X-ray mean": q["mean_test"],
                    "CT mean": q["mean_reference"],
                    "difference": q["estimate"],
                    "90% CI low": q["ci_low"],
                    "90% CI high": q["ci_high"],
                    "p (TOST)": q["p_tost"],
                    "equivalent": "yes" if q["equivalent"] else "no",
                    "method": q["ci_method"],
                    "raters": q["n_raters"],
                    "cases": q["n_cases"],
                }
                for q in results["questions"]
            ]
        )
        reliability = pd.DataFrame(results["reliability"])
        keep = [c for c in reliability.columns if not c.endswith(("_ci_low", "_ci_high"))]
        reliability = reliability[keep]
        report_tables += [("Equivalence (X-ray - CT)", primary), ("Reliability", reliability)]
    surface = tables["surface_metrics"]
    accuracy = pd.DataFrame()
    if not surface.empty:
        frame = surface.assign(
            bone=surface["bone"].astype(str), metric=surface["metric"].astype(str)
        )
        frame = frame[frame["source"].astype(str) == "XRAY"]
        if not frame.empty:
            accuracy = metric_summary(frame[["case", "bone", "metric", "variant", "unit", "value"]])
            accuracy = accuracy[
                [
                    "bone",
                    "metric",
                    "variant",
                    "unit",
                    "n",
                    "mean",
                    "sd",
                    "median",
                    "ci_low",
                    "ci_high",
                ]
            ]
            report_tables.append(("Per-bone accuracy (X-ray vs reference)", accuracy))
    angles = tables["alignment_angles"]
    angle_table = pd.DataFrame()
    context_notes: list[str] = []
    if not angles.empty:
        usable = angles.dropna(subset=["value"]).assign(source=angles["source"].astype(str))
        usable = usable[usable["source"].isin(["CT", "XRAY"])]
        try:
            angle_table = angle_agreement(usable) if not usable.empty else pd.DataFrame()
        except ValueError as exc:  # e.g. an angle with fewer than 3 CT/X-ray pairs
            angle_table = pd.DataFrame()
            context_notes.append(f"Angle agreement not computed: {exc}")
        if not angle_table.empty:
            figures.update(bland_altman_figures(usable, angle_table))
    guide_results = guide_trial_results(tables["guide_trial"], context_notes)
    progress(70, "provenance")
    record = provenance.provenance(reader_study)
    context = {
        "reader_study": reader_study,
        "study": reader_study.study,
        "generated_at": timezone.now(),
        "flow": flow,
        "analysis_note": analysis_note,
        "results": results,
        "margin": margin,
        "primary": _records(primary) if not primary.empty else None,
        "reliability": _records(reliability) if not reliability.empty else None,
        "intra_rater": _records(pd.DataFrame(results["intra_rater"]))
        if results and results.get("intra_rater")
        else None,
        "missing": _records(pd.DataFrame(results["missing"]))
        if results and results["missing"]
        else None,
        "accuracy": _records(accuracy) if not accuracy.empty else None,
        "angles": _records(angle_table) if not angle_table.empty else None,
        "guide_trial_rows": len(tables["guide_trial"]),
        "guide_results": guide_results,
        "alignment_rows": len(angles),
        "context_notes": context_notes,
        "not_yet_stored": exports.NOT_YET_STORED,
        "figures": {name: _data_uri(png) for name, png in figures.items()},
        "bland_altman": [
            _data_uri(png) for name, png in figures.items() if name.startswith("bland_altman_")
        ],
        "gallery": error_maps(reader_study),
        "provenance": record,
        "provenance_json": json.dumps(
            {k: v for k, v in record.items() if k != "meshes"}, indent=2, default=str
        ),
        "meshes": record["meshes"],
    }
    stored = {"flow": flow, "analysis": results, "analysis_note": analysis_note}
    return BuiltReport(
        context=context,
        figures=figures,
        tables=report_tables,
        results=json.loads(json.dumps(stored, default=str)),
        options={"margin": margin, "n_boot": n_boot, "seed": seed},
        answer_stamp=stamp,
    )


def _flow_frame(flow: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"quantity": k.replace("_", " "), "value": str(v)} for k, v in flow.items()]
    )


def render_html(built: BuiltReport, engine: str) -> str:
    return render_to_string(
        "analysis/report.html", {**built.context, "pdf_engine": ENGINE_TEXT.get(engine, "")}
    )


# --- outputs --------------------------------------------------------------------------------


def chromium_path() -> str | None:
    configured = getattr(settings, "ANALYSIS_CHROMIUM", None)
    for candidate in ([configured] if configured else []) + list(CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def chromium_pdf(html_path: Path, pdf_path: Path, timeout: float = 120) -> bool:
    binary = chromium_path()
    if binary is None:
        return False
    with tempfile.TemporaryDirectory(prefix="report-pdf-") as scratch:
        out = Path(scratch) / "report.pdf"
        command = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            f"--user-data-dir={scratch}/profile",
            f"--print-to-pdf={out}",
            html_path.resolve().as_uri(),
        ]
        try:
            subprocess.run(command, capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            logger.warning("chromium print-to-pdf failed: %s", exc)
            return False
        if not out.is_file() or not out.read_bytes().startswith(b"%PDF"):
            return False
        atomic_write_bytes(pdf_path, out.read_bytes())
    return True


def matplotlib_pdf(built: BuiltReport, pdf_path: Path) -> None:
    from matplotlib.backends.backend_pdf import PdfPages

    buffer = io.BytesIO()
    with PdfPages(buffer) as pdf:
        fig = plt.figure(figsize=(8.27, 11.69))
        study = built.context["reader_study"]
        fig.text(0.08, 0.92, f"Report: {study.title}", fontsize=16, weight="bold")
        fig.text(
            0.08, 0.88, f"Generated {built.context['generated_at']:%Y-%m-%d %H:%M} UTC", fontsize=10
        )
        fig.text(0.08, 0.04, ENGINE_TEXT["matplotlib"], fontsize=8)
        pdf.savefig(fig)
        plt.close(fig)
        for title, frame in built.tables:
            _table_page(pdf, title, frame)
        for name, png in built.figures.items():
            image = plt.imread(io.BytesIO(png), format="png")
            fig, ax = plt.subplots(figsize=(8.27, 11.69))
            ax.imshow(image)
            ax.set_axis_off()
            ax.set_title(name.replace("_", " "))
            pdf.savefig(fig)
            plt.close(fig)
    atomic_write_bytes(pdf_path, buffer.getvalue())


def _table_page(pdf, title: str, frame: pd.DataFrame) -> None:
    data = _records(frame)
    fig, ax = plt.subplots(figsize=(11.69, 8.27))
    ax.set_axis_off()
    ax.set_title(title)
    if data["rows"]:
        table = ax.table(
            cellText=[r[:12] for r in data["rows"][:40]],
            colLabels=data["columns"][:12],
            loc="upper center",
        )
        table.auto_set_font_size(False)
        table.set_fontsize(6)
    pdf.savefig(fig)
    plt.close(fig)


def write_outputs(built: BuiltReport, html_path: Path, pdf_path: Path) -> str:
    """Write the HTML and the PDF; returns the PDF engine used (named in the footer)."""
    atomic_write_bytes(html_path, render_html(built, "chromium").encode("utf-8"))
    if chromium_pdf(html_path, pdf_path):
        return "chromium"
    atomic_write_bytes(html_path, render_html(built, "matplotlib").encode("utf-8"))
    matplotlib_pdf(built, pdf_path)
    return "matplotlib"


def guide_trial_results(trial: pd.DataFrame, notes: list[str]) -> list[dict]:
    """Non-inferiority of the correction error, TOST on log time, paired success (X-ray vs CT).

    Rows without an achieved correction (outcome not entered) are left out and counted.
    """
    from evaluation.stats import angular_noninferiority, success_paired, time_equivalence

    entered = trial.dropna(subset=["achieved_correction_deg", "planned_correction_deg"])
    if entered.empty:
        return []
    skipped = len(trial) - len(entered)
    if skipped:
        notes.append(
            f"Guide trial: {skipped} placement(s) without an achieved correction left out."
        )
    frame = pd.DataFrame(
        {
            "surgeon": entered["surgeon"].astype(str),
            "bone": entered["case"].astype(str),
            "arm": entered["arm"].astype(str),
            "period": entered["period"].astype(float),
            "planned": entered["planned_correction_deg"].astype(float),
            "achieved": entered["achieved_correction_deg"].astype(float),
            "time": entered["placement_time_s"].astype(float),
        }
    )
    analyses = [
        (
            "Correction error |achieved - planned|: non-inferiority, margin 2 degrees",
            lambda: angular_noninferiority(frame),
        ),
        (
            "Time to place: TOST on log time, ratio 0.8-1.25",
            lambda: time_equivalence(frame.dropna(subset=["time"])),
        ),
        ("Success within 2 degrees: paired difference (Newcombe)", lambda: success_paired(frame)),
    ]
    results = []
    for title, run in analyses:
        try:
            values = run()
        except (ValueError, ZeroDivisionError, np.linalg.LinAlgError) as exc:
            notes.append(f"Guide trial: {title.split(':')[0]} not computed ({exc}).")
            continue
        results.append(
            {
                "title": title,
                "values": {
                    key: (round(value, 4) if isinstance(value, float) else value)
                    for key, value in values.items()
                    if not isinstance(value, dict | list)
                },
            }
        )
    return results
