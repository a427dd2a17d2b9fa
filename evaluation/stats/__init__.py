"""Statistics core of the reader study, geometry and guide-trial analyses (framework-free)."""

from evaluation.stats.agreement import (
    angle_agreement,
    bland_altman,
    cpak_agreement,
    cpak_classify,
)
from evaluation.stats.equivalence import (
    EquivalenceResult,
    binomial_tost,
    equivalence_test,
    paired_tost_case_means,
    per_rater_differences,
    reader_study_equivalence,
    source_discrimination,
    wilcoxon_case_means,
)
from evaluation.stats.guide_trial import (
    angular_noninferiority,
    newcombe_paired_ci,
    success_paired,
    time_equivalence,
)
from evaluation.stats.power import (
    power_table,
    power_tost_paired,
    sample_size_tost_paired,
    simulate_crossed_power,
)
from evaluation.stats.ratings import RatingsError, missing_report, prepare_ratings
from evaluation.stats.reliability import (
    icc,
    icc_table,
    intra_rater_agreement,
    krippendorff_alpha,
    mean_pairwise_kappa,
    source_reliability,
    weighted_kappa,
)
from evaluation.stats.simulate import VarianceComponents, simulate_reader_study
from evaluation.stats.summaries import likert_summary, metric_summary

__all__ = [
    "EquivalenceResult",
    "RatingsError",
    "VarianceComponents",
    "angle_agreement",
    "angular_noninferiority",
    "binomial_tost",
    "bland_altman",
    "cpak_agreement",
    "cpak_classify",
    "equivalence_test",
    "icc",
    "icc_table",
    "intra_rater_agreement",
    "krippendorff_alpha",
    "likert_summary",
    "mean_pairwise_kappa",
    "metric_summary",
    "missing_report",
    "newcombe_paired_ci",
    "paired_tost_case_means",
    "per_rater_differences",
    "power_table",
    "power_tost_paired",
    "prepare_ratings",
    "reader_study_equivalence",
    "sample_size_tost_paired",
    "simulate_crossed_power",
    "simulate_reader_study",
    "source_discrimination",
    "source_reliability",
    "success_paired",
    "time_equivalence",
    "weighted_kappa",
    "wilcoxon_case_means",
]
