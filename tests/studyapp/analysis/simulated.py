"""A full simulated reader study written straight to the database (bulk, fast).

Scores come from evaluation.stats.simulate_reader_study; the reading order from the
platform's own launch (randomisation). Used by the report tests and the benchmark.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from evaluation.stats import simulate_reader_study
from studyapp.cases.models import Case, Reconstruction, Study
from studyapp.reading import services as reading_services
from studyapp.reading.models import Answer, Assignment, Item, ReaderStudy


def simulated_reader_study(
    n_raters: int = 10,
    n_cases: int = 20,
    rounds: int = 1,
    difference: float = 0.0,
    seed: int = 0,
    name: str = "Simulated study",
    missing_reads: int = 0,
):
    study = Study.objects.create(name=name)
    cases = Case.objects.bulk_create(
        Case(study=study, code=f"S{seed:02d}-{n:04d}", side="R") for n in range(n_cases)
    )
    recons = Reconstruction.objects.bulk_create(
        Reconstruction(case=case, source=source, method="sim", status="done")
        for case in cases
        for source in ("ct", "xray")
    )
    reader_study = reading_services.create_reader_study(
        study, f"{name}: reading", rounds=rounds, session_size=50, washout_days=0, seed=seed
    )
    Item.objects.bulk_create(
        Item(reader_study=reader_study, reconstruction=r, blinded_file=f"reading/{r.pk}.glb")
        for r in recons
    )
    group, _ = Group.objects.get_or_create(name="rater")
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"sim{seed}-rater{n:02d}") for n in range(n_raters)
    )
    group.user_set.add(*users)
    reader_study.readers.set(users)
    start = timezone.now() - timedelta(days=1)
    reading_services.launch(reader_study, actor=None, now=start)
    _answer(
        reader_study,
        users,
        cases,
        n_raters,
        n_cases,
        rounds,
        difference,
        seed,
        start,
        missing_reads,
    )
    return ReaderStudy.objects.get(pk=reader_study.pk)


def _answer(
    reader_study, users, cases, n_raters, n_cases, rounds, difference, seed, start, missing
):
    questions = list(reader_study.questions.order_by("order"))
    ratings = simulate_reader_study(
        n_raters=n_raters,
        n_cases=n_cases,
        difference=difference,
        questions=tuple(str(q.pk) for q in questions),
        n_rounds=rounds,
        seed=seed,
    )
    rater_index = {f"R{i:02d}": users[i].pk for i in range(n_raters)}
    case_index = {f"K{i:03d}": cases[i].pk for i in range(n_cases)}
    source_of = {"CT": "ct", "XRAY": "xray"}
    scores = {
        (rater_index[r], case_index[c], source_of[s], int(q), int(n)): int(v)
        for r, c, s, q, n, v in ratings[
            ["rater", "case", "source", "question", "round", "score"]
        ].itertuples(index=False)
    }
    slots = list(
        Assignment.objects.filter(reader_study=reader_study).values_list(
            "pk",
            "reader_id",
            "item_id",
            "item__reconstruction__case_id",
            "item__reconstruction__source",
            "round",
        )
    )
    skip = (
        {
            slots[i][0]
            for i in np.random.default_rng(seed).choice(len(slots), missing, replace=False)
        }
        if missing
        else set()
    )
    answers, done = [], []
    for pk, reader_id, item_id, case_id, source, round_ in slots:
        if pk in skip:
            continue
        done.append(pk)
        for q in questions:
            answers.append(
                Answer(
                    assignment_id=pk,
                    reader_id=reader_id,
                    item_id=item_id,
                    question_id=q.pk,
                    round=round_,
                    value=scores[(reader_id, case_id, source, q.pk, round_)],
                )
            )
    Answer.objects.bulk_create(answers, batch_size=2000)
    opened = start + timedelta(hours=1)
    Assignment.objects.filter(pk__in=done).update(
        opened_at=opened, submitted_at=opened + timedelta(seconds=45), active_seconds=30.0
    )
