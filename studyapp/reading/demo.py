"""The demo's reader study: built from whatever finished reconstructions the demo study has.

So that a newcomer statistician sees the analysis pages with data, all raters but the first
get *simulated* answers (seeded random scores that know nothing about the models: an item
effect shared by raters, a rater leniency and noise, the same for every arm). The reader
study's description says so; rater1 is left unread for a newcomer to score in the browser.
"""

from __future__ import annotations

import numpy as np

from studyapp.accounts.roles import Role
from studyapp.cases.models import Study

SIMULATION_SEED = 2026
SIMULATED_NOTE = (
    " Answers of every rater except the first one are simulated (seeded random scores,"
    " the same distribution for every arm) so that the analysis has data."
)


def build_demo_reader_study(study: Study, report) -> None:
    """Demo reader study: blinded items, ten raters, sessions open now."""
    from django.contrib.auth import get_user_model

    from . import services
    from .models import ReaderStudy

    title = f"{study.name}: blinded reading"
    existing = ReaderStudy.objects.filter(title=title).first()
    if existing is not None and existing.is_launched:
        report.notes.append(f"Reader study '{title}' is ready (launched).")
        return
    candidates = services.eligible_reconstructions_of_study(study)
    arms = {r.source for r in candidates}
    if not candidates:
        report.notes.append(
            "Reader study not built: the demo study has no finished reconstructions yet."
        )
        return
    reader_study = existing or services.create_reader_study(
        study,
        title,
        session_size=6,
        washout_days=0,
        rounds=1,
        allow_answer_modification=False,
        description="Demo: score each knee model on shape, detail and usefulness." + SIMULATED_NOTE,
    )
    services.add_items(reader_study, services.eligible_reconstructions(reader_study))
    for item in reader_study.items.filter(blinded_file=""):
        services.prepare_item_file(item)
    raters = get_user_model().objects.filter(groups__name=Role.RATER.value).order_by("username")
    services.set_readers(reader_study, raters)
    count = services.launch(reader_study, actor=None)
    report.notes.append(
        f"Reader study '{title}': {reader_study.items.count()} items ({', '.join(sorted(arms))}), "
        f"{raters.count()} raters, {count} assignments; log in as rater1..rater10."
    )


def simulate_demo_reading(study: Study, report) -> None:
    """Demo reading: simulated answers of all raters but rater1 (seeded, arm-blind)"""
    from . import services
    from .models import Question, ReaderStudy

    reader_study = ReaderStudy.objects.filter(title=f"{study.name}: blinded reading").first()
    if reader_study is None or not reader_study.is_launched:
        return
    questions = list(reader_study.questions.all())
    likert = [q for q in questions if q.kind == Question.Kind.LIKERT]  # others stay unanswered
    if any(q.required and q not in likert for q in questions):
        report.notes.append(
            "Simulated reading skipped: the study has required non-Likert questions."
        )
        return
    rng = np.random.default_rng(SIMULATION_SEED)
    item_ids = list(reader_study.items.order_by("pk").values_list("pk", flat=True))
    item_effect = dict(zip(item_ids, rng.normal(0.0, 0.6, len(item_ids)), strict=True))
    first, *others = reader_study.readers.order_by("username")
    submitted = 0
    for reader in others:
        leniency = rng.normal(0.0, 0.4)
        while (assignment := services.next_assignment(reader_study, reader.pk)) is not None:
            centre = 3.4 + item_effect[assignment.item_id] + leniency
            scores = np.clip(np.rint(centre + rng.normal(0.0, 0.5, len(likert))), 1, 5)
            services.submit(
                reader,
                assignment.pk,
                {str(q.pk): int(v) for q, v in zip(likert, scores, strict=True)},
                idempotency_key=f"demo-simulated-{assignment.pk}",
            )
            submitted += 1
    if submitted:
        report.notes.append(
            f"Simulated {submitted} readings (all raters but {first.get_username()}); "
            f"{first.get_username()} has every item still to read."
        )
