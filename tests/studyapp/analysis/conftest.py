"""A small launched reader study with answers, gaps and an edit, for export/report tests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from studyapp.accounts.roles import Role
from studyapp.reading import services as reading_services
from studyapp.reading.models import Assignment
from tests.studyapp.factories import (
    CaseFactory,
    ItemFactory,
    ReaderStudyFactory,
    ReconstructionFactory,
    UserFactory,
)


def add_surface_metrics(reconstruction, reference, offset: float = 0.0) -> None:
    from studyapp.cases.models import SurfaceEvaluation, SurfaceMetric

    evaluation = SurfaceEvaluation.objects.create(
        reconstruction=reconstruction,
        reference=reference,
        parameters={"samples_per_mm2": 4, "seed": 0, "nsd_tolerance_mm": 1.0},
    )
    for bone in ("femur", "tibia"):
        for metric, variant, value, unit in (
            ("ASSD", "pooled", 0.8, "mm"),
            ("HD95", "max of directed 95th percentiles", 2.1, "mm"),
            ("NSD", "tau=1mm", 0.91, "1"),
        ):
            SurfaceMetric.objects.create(
                evaluation=evaluation,
                bone=bone,
                metric=metric,
                variant=variant,
                value=value + offset,
                unit=unit,
            )


def build_study(n_cases: int = 3, n_raters: int = 2, rounds: int = 2, seed: int = 7):
    """Launched study: n_cases knees x (CT, X-ray), one training knee, Likert questions.

    Every reader submits all reads except: the last reader leaves their final two study
    reads (one opened, one never opened); the first reader changes one answer.
    """
    reader_study = ReaderStudyFactory(
        rounds=rounds, session_size=4, washout_days=0, allow_answer_modification=True
    )
    for order, (text, anchors) in enumerate(reading_services.LIKERT_DEFAULTS, start=1):
        reading_services.add_question(reader_study, text, "likert", options=anchors, order=order)
    reading_services.add_question(reader_study, "Comment", "text", required=False, order=9)
    for n in range(n_cases):
        case = CaseFactory(study=reader_study.study, code=f"K{seed:02d}{n:03d}")
        made = {}
        for source in ("ct", "xray"):
            made[source] = ReconstructionFactory(case=case, source=source)
            ItemFactory(reader_study=reader_study, reconstruction=made[source])
        add_surface_metrics(made["xray"], made["ct"], offset=0.1 * n)
    training_case = CaseFactory(study=reader_study.study, code=f"T{seed:02d}000")
    ItemFactory(
        reader_study=reader_study,
        reconstruction=ReconstructionFactory(case=training_case, source="ct"),
        is_training=True,
    )
    readers = [UserFactory(roles=[Role.RATER]) for _ in range(n_raters)]
    reading_services.set_readers(reader_study, readers)
    start = timezone.now().replace(microsecond=123456) - timedelta(days=1)
    reading_services.launch(reader_study, actor=None, now=start - timedelta(hours=1))
    questions = list(reader_study.questions.all())
    for r_index, reader in enumerate(readers):
        slots = list(
            Assignment.objects.filter(reader_study=reader_study, reader=reader).order_by(
                "session", "position"
            )
        )
        stop = len(slots) - 2 if r_index == n_raters - 1 else len(slots)
        for s_index, slot in enumerate(slots[:stop]):
            values = {
                f"q{q.pk}": 1 + (r_index + s_index + q.order) % 5
                for q in questions
                if q.kind == "likert"
            }
            if s_index % 3 == 0:
                values[f"q{questions[-1].pk}"] = 'Ünïcode, comma; "quoted"'
            opened = start + timedelta(minutes=s_index)
            reading_services.open_assignment(reader, slot.pk, now=opened)
            reading_services.submit(
                reader,
                slot.pk,
                values,
                idempotency_key=f"key-{slot.pk:06d}-a",
                active_seconds=25 + s_index,
                now=opened + timedelta(seconds=40),
            )
        if r_index == n_raters - 1:
            reading_services.open_assignment(reader, slots[stop].pk)
        if r_index == 0:
            first = slots[0]
            values = {f"q{q.pk}": 5 for q in questions if q.kind == "likert"}
            reading_services.submit(
                reader, first.pk, values, idempotency_key=f"key-{first.pk:06d}-b"
            )
    return reader_study


@pytest.fixture
def reader_study(db):
    return build_study()
