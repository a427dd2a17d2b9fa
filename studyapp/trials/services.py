"""Writes of the guide trial: trials, knees, members, the stored order, outcomes, CSV import,
designed guides and virtual-trial results."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from studyapp.accounts.roles import Role, has_any_role

from .models import (
    BLINDED_FIELDS,
    OUTCOME_FIELDS,
    GuideFile,
    GuideTrial,
    Placement,
    TrialKnee,
    TrialMember,
)
from .randomisation import schedule

CSV_COLUMNS = ("surgeon", "knee", "source", "period", "printed_bone_id", *OUTCOME_FIELDS)
REQUIRED_CSV_COLUMNS = ("surgeon", "knee", "source")


class ImportRejected(ValueError):
    """A CSV file with errors: nothing was stored. `errors` lists one message per problem."""

    def __init__(self, errors: list[str]):
        super().__init__(f"{len(errors)} problem(s); nothing was imported")
        self.errors = errors


def create_trial(study, title: str, description: str = "", user=None) -> GuideTrial:
    trial = GuideTrial(study=study, title=title, description=description, created_by=user)
    trial.full_clean()
    trial.save()
    return trial


def add_knee(trial: GuideTrial, case) -> TrialKnee:
    knee, _ = TrialKnee.objects.get_or_create(trial=trial, case=case)
    knee.full_clean()
    return knee


def add_member(trial: GuideTrial, user, surgeon: bool = False, assessor: bool = False):
    if assessor and not has_any_role(user, {Role.COORDINATOR, Role.ADMIN}):
        raise ValidationError("An outcome assessor must hold the coordinator role.")
    member, _ = TrialMember.objects.get_or_create(trial=trial, user=user)
    member.is_surgeon = member.is_surgeon or surgeon
    member.is_assessor = member.is_assessor or assessor
    member.full_clean()
    member.save()
    return member


def randomise(trial: GuideTrial) -> int:
    """(Re)build the placement order from the stored seed; refused once outcomes exist."""
    with transaction.atomic():
        existing = Placement.objects.select_for_update().filter(trial=trial)
        if existing.filter(entered_at__isnull=False).exists():
            raise ValidationError("Outcomes are already entered: the order is frozen.")
        surgeons = list(trial.members.filter(is_surgeon=True).values_list("user_id", flat=True))
        knees = list(trial.knees.values_list("pk", flat=True))
        if not surgeons or not knees:
            raise ValidationError("Add at least one knee and one surgeon first.")
        existing.delete()
        slots = schedule(trial.seed, surgeons, knees)
        Placement.objects.bulk_create(
            Placement(
                trial=trial,
                knee_id=s.knee,
                surgeon_id=s.surgeon,
                source=s.source,
                period=s.period,
                position=s.position,
            )
            for s in slots
        )
        trial.randomised_at = timezone.now()
        trial.save(update_fields=["randomised_at"])
    return len(slots)


def is_blinded_for(trial: GuideTrial, user) -> bool:
    """Assessors of this trial see no source (admins excepted)."""
    if has_any_role(user, {Role.ADMIN}):
        return False
    return trial.members.filter(user=user, is_assessor=True).exists()


def save_outcomes(placement: Placement, cleaned: dict, user, blinded: bool) -> Placement:
    allowed = BLINDED_FIELDS if blinded else OUTCOME_FIELDS
    for name in allowed:
        if name in cleaned:
            setattr(placement, name, cleaned[name])
    placement.entered_by = user
    placement.entered_at = timezone.now()
    placement.full_clean()
    placement.save()
    return placement


# ------------------------------------------------------------------ CSV import


@dataclass
class _Row:
    number: int
    placement: Placement
    values: dict


def _parse_row(
    trial: GuideTrial, number: int, row: dict, index: dict
) -> tuple[_Row | None, list[str]]:
    from .forms import OutcomeForm

    errors: list[str] = []
    key = (
        (row.get("surgeon") or "").strip(),
        (row.get("knee") or "").strip().upper(),
        (row.get("source") or "").strip().lower().replace("-", ""),
    )
    placement = index.get(key)
    if placement is None:
        return None, [
            f"row {number}: no placement of surgeon '{key[0]}' on knee '{key[1]}' with a "
            f"'{key[2]}' guide in this trial"
        ]
    period = (row.get("period") or "").strip()
    if period and period != str(placement.period):
        errors.append(
            f"row {number}: period {period} does not match the stored order ({placement.period})"
        )
    bone = (row.get("printed_bone_id") or "").strip()
    if bone and bone != placement.printed_bone_id:
        errors.append(
            f"row {number}: printed bone '{bone}' is not this placement's ({placement.printed_bone_id})"
        )
    form = OutcomeForm(
        data={f: (row.get(f) or "").strip() for f in OUTCOME_FIELDS}, instance=placement
    )
    if not form.is_valid():
        for field, messages in form.errors.items():
            for message in messages:
                errors.append(f"row {number}: {field}: {message}")
    return (None if errors else _Row(number, placement, form.cleaned_data)), errors


def import_outcomes_csv(trial: GuideTrial, data: bytes | str, user) -> int:
    """All-or-nothing: every row valid, or ImportRejected with row-level messages."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in header]
    if missing:
        raise ImportRejected([f"header: missing column(s) {', '.join(missing)}"])
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if unknown:
        raise ImportRejected([f"header: unknown column(s) {', '.join(unknown)}"])
    index = {
        (p.surgeon.username, p.knee.case.code.upper(), p.source): p
        for p in trial.placements.select_related("surgeon", "knee__case")
    }
    rows, errors, seen = [], [], set()
    for number, row in enumerate(reader, start=2):
        row = {(k or "").strip(): v for k, v in row.items()}
        parsed, row_errors = _parse_row(trial, number, row, index)
        errors += row_errors
        if parsed is not None:
            if parsed.placement.pk in seen:
                errors.append(f"row {number}: the same placement appears twice in the file")
            seen.add(parsed.placement.pk)
            rows.append(parsed)
    if not rows and not errors:
        errors.append("the file holds no rows")
    if errors:
        raise ImportRejected(errors)
    with transaction.atomic():
        for parsed in rows:
            save_outcomes(parsed.placement, parsed.values, user, blinded=False)
    return len(rows)


# ------------------------------------------------------------------ designed guides


def guide_folder(case_id: int, source: str, key: str) -> tuple[Path, str]:
    relative = f"guides/case-{case_id}/{source}-{key}"
    return Path(settings.MEDIA_ROOT) / relative, relative


def store_guide(
    case, source: str, model_label: str, plan: dict, report: dict, relative: str
) -> GuideFile:
    return GuideFile.objects.create(
        case=case,
        source=source,
        model_label=model_label,
        label=str(report.get("label", "")),
        folder=relative,
        plan=json.loads(json.dumps(plan)),
        report=report,
    )
