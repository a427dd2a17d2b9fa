"""Blinded reader studies: design, items, the stored reading order, answers and their audit.

The arm of an item (the source of its reconstruction) lives only on the reconstruction;
raters reach items through their own assignments, which carry a random display code.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I look-alikes


def random_code(length: int = 8) -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def random_seed() -> int:
    return secrets.randbelow(2**31)


class ReaderStudy(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        LAUNCHED = "launched", "Launched"

    study = models.ForeignKey(
        "cases.Study", on_delete=models.PROTECT, related_name="reader_studies"
    )
    title = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    seed = models.BigIntegerField(default=random_seed, help_text="Seeds the reading order.")
    rounds = models.PositiveSmallIntegerField(default=1, help_text="Repeat reads of every item.")
    session_size = models.PositiveSmallIntegerField(default=20)
    washout_days = models.PositiveSmallIntegerField(
        default=14, help_text="Minimum days between reading two models of the same knee."
    )
    allow_answer_modification = models.BooleanField(default=False)
    readers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="reader_studies"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    launched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "reader studies"

    def __str__(self) -> str:
        return self.title

    @property
    def is_launched(self) -> bool:
        return self.status == self.Status.LAUNCHED

    def clean(self) -> None:
        if not 1 <= self.rounds <= 10:
            raise ValidationError({"rounds": "Between 1 and 10 rounds."})
        if not 1 <= self.session_size <= 500:
            raise ValidationError({"session_size": "A session holds 1 to 500 items."})
        if self.washout_days > 365:
            raise ValidationError({"washout_days": "A washout of at most 365 days."})


class Question(models.Model):
    class Kind(models.TextChoices):
        LIKERT = "likert", "Likert 1-5"
        CHOICE = "choice", "Choice"
        NUMBER = "number", "Number"
        TEXT = "text", "Free text"

    reader_study = models.ForeignKey(
        ReaderStudy, on_delete=models.CASCADE, related_name="questions"
    )
    order = models.PositiveSmallIntegerField(default=0)
    text = models.CharField(max_length=300)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.LIKERT)
    required = models.BooleanField(default=True)
    # likert: anchor labels for 1..5 (five strings); choice: the option labels.
    options = models.JSONField(default=list, blank=True)
    minimum = models.FloatField(null=True, blank=True)
    maximum = models.FloatField(null=True, blank=True)
    step = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["reader_study", "order", "pk"]

    def __str__(self) -> str:
        return self.text

    def clean(self) -> None:
        options = self.options or []
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise ValidationError({"options": "Options are a list of labels."})
        if self.kind == self.Kind.LIKERT and len(options) not in (0, 5):
            raise ValidationError({"options": "A Likert question has five anchors (1 to 5)."})
        if self.kind == self.Kind.CHOICE and len(options) < 2:
            raise ValidationError({"options": "A choice question needs at least two options."})
        if len(set(options)) != len(options):
            raise ValidationError({"options": "Options must differ."})
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValidationError({"maximum": "The maximum is below the minimum."})
        if self.step is not None and self.step <= 0:
            raise ValidationError({"step": "The step must be positive."})


class Item(models.Model):
    """One blinded model: the four bones of one reconstruction (one arm of one knee)."""

    reader_study = models.ForeignKey(ReaderStudy, on_delete=models.CASCADE, related_name="items")
    reconstruction = models.ForeignKey(
        "cases.Reconstruction", on_delete=models.PROTECT, related_name="reading_items"
    )
    code = models.CharField(max_length=12, unique=True, default=random_code)
    is_training = models.BooleanField(default=False)
    # The normalised GLB raters receive; under a random name, written by a job.
    blinded_file = models.FileField(upload_to="reading/", blank=True, max_length=255)
    blinded_bytes = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["reader_study", "code"]
        constraints = [
            models.UniqueConstraint(
                fields=["reader_study", "reconstruction"], name="reading_item_once_per_study"
            )
        ]

    def __str__(self) -> str:
        return f"Item {self.code}"


class Assignment(models.Model):
    """A row of the stored reading order: reader, round, session, position, item."""

    reader_study = models.ForeignKey(
        ReaderStudy, on_delete=models.CASCADE, related_name="assignments"
    )
    reader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reading_assignments"
    )
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="assignments")
    round = models.PositiveSmallIntegerField()
    session = models.PositiveSmallIntegerField(help_text="0 = training session.")
    position = models.PositiveSmallIntegerField()
    is_training = models.BooleanField(default=False)
    available_from = models.DateTimeField()
    # What raters see instead of the item code: differs between rounds of the same item.
    code = models.CharField(max_length=12, unique=True, default=random_code)
    opened_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    active_seconds = models.FloatField(default=0)

    class Meta:
        ordering = ["reader_study", "reader", "session", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["reader_study", "reader", "item", "round"], name="reading_once_per_round"
            ),
            models.UniqueConstraint(
                fields=["reader_study", "reader", "session", "position"],
                name="reading_one_item_per_slot",
            ),
        ]
        indexes = [models.Index(fields=["reader", "reader_study", "session"])]

    def __str__(self) -> str:
        return f"{self.code} (session {self.session}, position {self.position})"


class Answer(models.Model):
    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="answers")
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="answers")
    question = models.ForeignKey(Question, on_delete=models.PROTECT, related_name="answers")
    round = models.PositiveSmallIntegerField()
    value = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["assignment", "question"]
        constraints = [
            models.UniqueConstraint(
                fields=["reader", "item", "question", "round"], name="reading_one_answer"
            )
        ]

    def __str__(self) -> str:
        return f"Answer {self.pk}"


class Submission(models.Model):
    """One accepted form post, keyed by the client's idempotency key: a retry returns it."""

    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="submissions")
    idempotency_key = models.CharField(max_length=64)
    result = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["reader", "idempotency_key"], name="reading_submission_idempotent"
            )
        ]

    def __str__(self) -> str:
        return f"Submission {self.idempotency_key}"


class AppendOnlyError(RuntimeError):
    """The audit log is never changed or deleted."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit events are append-only.")

    def delete(self):
        raise AppendOnlyError("Audit events are append-only.")


class AuditEvent(models.Model):
    """Append-only log of answer create/change/reset and of unblinding-key exports."""

    class Action(models.TextChoices):
        CREATE = "create", "Answer created"
        CHANGE = "change", "Answer changed"
        RESET = "reset", "Answers reset"
        LAUNCH = "launch", "Study launched"
        KEY_EXPORT = "key_export", "Unblinding key exported"

    reader_study = models.ForeignKey(ReaderStudy, on_delete=models.PROTECT, related_name="audit")
    action = models.CharField(max_length=12, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)
    reader = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    item = models.ForeignKey(
        Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    question = models.ForeignKey(
        Question, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    round = models.PositiveSmallIntegerField(null=True, blank=True)
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)
    note = models.CharField(max_length=255, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.actor_id} at {self.at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise AppendOnlyError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events are append-only.")
