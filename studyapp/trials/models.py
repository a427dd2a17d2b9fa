"""Osteotomy-guide trials: knees, surgeons and blinded assessors, the randomised and
counterbalanced placement order, outcomes, designed guides and virtual-trial runs.

Blinding choice: an outcome assessor is a coordinator-role user with ``is_assessor`` on the
trial membership. Assessors enter outcomes on a dedicated page that never shows the guide
source, and the unblinded trial pages refuse them (admins excepted).
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def random_seed() -> int:
    return secrets.randbelow(2**31)


def bone_code() -> str:
    return "B-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))


class Source(models.TextChoices):
    CT = "ct", "CT"
    XRAY = "xray", "X-ray"


class GuideTrial(models.Model):
    study = models.ForeignKey("cases.Study", on_delete=models.PROTECT, related_name="guide_trials")
    title = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    seed = models.BigIntegerField(default=random_seed, help_text="Seeds the placement order.")
    randomised_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


class TrialKnee(models.Model):
    trial = models.ForeignKey(GuideTrial, on_delete=models.CASCADE, related_name="knees")
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="guide_trials")

    class Meta:
        ordering = ["trial", "case__code"]
        constraints = [models.UniqueConstraint(fields=["trial", "case"], name="one_knee_per_case")]

    def __str__(self) -> str:
        return self.case.code

    def clean(self) -> None:
        if self.case_id and self.trial_id and self.case.study_id != self.trial.study_id:
            raise ValidationError("The knee belongs to another study.")


class TrialMember(models.Model):
    trial = models.ForeignKey(GuideTrial, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    is_surgeon = models.BooleanField(default=False)
    is_assessor = models.BooleanField(
        default=False, help_text="Blinded outcome assessor: never sees the guide source."
    )

    class Meta:
        ordering = ["trial", "user__username"]
        constraints = [models.UniqueConstraint(fields=["trial", "user"], name="one_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.trial}"

    def clean(self) -> None:
        if not (self.is_surgeon or self.is_assessor):
            raise ValidationError("A member is a surgeon, an assessor, or both.")


def _range(lo: float, hi: float, what: str, unit: str):
    message = f"{what} must be between {lo:g} and {hi:g} {unit}."
    return [MinValueValidator(lo, message), MaxValueValidator(hi, message)]


LIKERT = _range(1, 5, "A score", "(1 = worst, 5 = best)")
OUTCOME_FIELDS = (
    "time_s",
    "fit",
    "stability",
    "accuracy",
    "planned_deg",
    "achieved_deg",
    "deviation_deg",
    "deviation_mm",
    "comments",
)
BLINDED_FIELDS = ("achieved_deg", "deviation_deg", "deviation_mm", "accuracy", "comments")


class Placement(models.Model):
    """One guide placed by one surgeon on one printed bone of one knee, with its outcomes."""

    trial = models.ForeignKey(GuideTrial, on_delete=models.CASCADE, related_name="placements")
    knee = models.ForeignKey(TrialKnee, on_delete=models.CASCADE, related_name="placements")
    surgeon = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    source = models.CharField(max_length=4, choices=Source.choices)
    period = models.PositiveSmallIntegerField(help_text="1 = first guide of this knee, 2 = second.")
    position = models.PositiveSmallIntegerField(help_text="Order within the surgeon's sequence.")
    printed_bone_id = models.CharField(max_length=40, default=bone_code)
    # outcomes
    time_s = models.FloatField(
        null=True, blank=True, validators=_range(0, 3600, "The time to place", "seconds")
    )
    fit = models.PositiveSmallIntegerField(null=True, blank=True, validators=LIKERT)
    stability = models.PositiveSmallIntegerField(null=True, blank=True, validators=LIKERT)
    accuracy = models.PositiveSmallIntegerField(null=True, blank=True, validators=LIKERT)
    planned_deg = models.FloatField(
        null=True, blank=True, validators=_range(-30, 30, "The planned correction", "degrees")
    )
    achieved_deg = models.FloatField(
        null=True, blank=True, validators=_range(-30, 30, "The achieved correction", "degrees")
    )
    deviation_deg = models.FloatField(
        null=True, blank=True, validators=_range(0, 45, "The cut-plane deviation", "degrees")
    )
    deviation_mm = models.FloatField(
        null=True, blank=True, validators=_range(0, 50, "The cut-plane offset", "mm")
    )
    comments = models.TextField(blank=True)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    entered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["trial", "surgeon__username", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["trial", "surgeon", "knee", "source"], name="one_placement_per_arm"
            ),
            models.UniqueConstraint(
                fields=["trial", "printed_bone_id"], name="one_placement_per_printed_bone"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.printed_bone_id} ({self.knee}, period {self.period})"


class GuideFile(models.Model):
    """A designed guide bundle (guide.stl/.3mf, tibia_print.stl, report.json) of one knee."""

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="guides")
    source = models.CharField(max_length=4, choices=Source.choices)
    model_label = models.CharField(max_length=120, help_text="Which tibia model it was made on.")
    label = models.CharField(max_length=120)
    folder = models.CharField(max_length=255, help_text="Media-relative folder of the bundle.")
    plan = models.JSONField(default=dict)
    report = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["case", "source", "-created_at"]

    def __str__(self) -> str:
        return self.label


class VirtualRun(models.Model):
    trial = models.ForeignKey(GuideTrial, on_delete=models.CASCADE, related_name="virtual_runs")
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL)
    rows = models.JSONField(default=list)
    summary = models.JSONField(default=dict)
    notes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["trial", "-created_at"]

    def __str__(self) -> str:
        return f"virtual run {self.pk} of {self.trial}"
