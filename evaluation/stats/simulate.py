"""Simulated crossed reader studies with known effects and variance components."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from evaluation.stats.ratings import CT, LIKERT_MAX, LIKERT_MIN, XRAY


@dataclass(frozen=True)
class VarianceComponents:
    """Standard deviations of the crossed model's random effects (score points)."""

    rater: float = 0.4
    case: float = 0.6
    rater_source: float = 0.15
    case_source: float = 0.3
    residual: float = 0.6


def simulate_reader_study(
    *,
    n_raters: int = 10,
    n_cases: int = 100,
    difference: float = 0.0,
    reference_mean: float = 3.5,
    components: VarianceComponents | None = None,
    questions: tuple[str, ...] = ("shape",),
    n_rounds: int = 1,
    likert: bool = True,
    seed: int | np.random.Generator = 0,
) -> pd.DataFrame:
    """Long ratings table from the crossed model; XRAY mean = CT mean + difference.

    With ``likert`` the latent score is rounded and clipped to 1..5 (this moves
    the realised difference slightly away from ``difference``); without, the
    continuous latent score is returned so the true difference is exact.
    Random effects are drawn independently per question.
    """
    vc = components or VarianceComponents()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    raters = np.array([f"R{i:02d}" for i in range(n_raters)])
    cases = np.array([f"K{i:03d}" for i in range(n_cases)])
    frames = []
    for question in questions:
        r_eff = rng.normal(0, vc.rater, n_raters)
        c_eff = rng.normal(0, vc.case, n_cases)
        for s_idx, source in enumerate((CT, XRAY)):
            rs = rng.normal(0, vc.rater_source, n_raters)
            cs = rng.normal(0, vc.case_source, n_cases)
            mean = reference_mean + difference * s_idx
            base = mean + r_eff[:, None] + c_eff[None, :] + rs[:, None] + cs[None, :]
            for rnd in range(1, n_rounds + 1):
                latent = base + rng.normal(0, vc.residual, base.shape)
                score = np.clip(np.rint(latent), LIKERT_MIN, LIKERT_MAX) if likert else latent
                frames.append(
                    pd.DataFrame(
                        {
                            "rater": np.repeat(raters, n_cases),
                            "case": np.tile(cases, n_raters),
                            "source": source,
                            "question": question,
                            "round": rnd,
                            "score": score.ravel(),
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True)
