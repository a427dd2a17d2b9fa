"""The demo's reader study: built from whatever finished reconstructions the demo study has."""

from __future__ import annotations

from studyapp.accounts.roles import Role
from studyapp.cases.models import Study


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
        description="Demo: score each knee model on shape, detail and usefulness.",
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
