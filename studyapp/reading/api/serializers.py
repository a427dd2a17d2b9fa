"""API shapes. Rater-facing ones carry no item code, case, source or other readers' data."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from studyapp.reading.models import Assignment, Question, ReaderStudy


class QuestionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Question
        fields = [
            "id",
            "order",
            "text",
            "kind",
            "required",
            "options",
            "minimum",
            "maximum",
            "step",
        ]


class RaterAssignmentSerializer(serializers.ModelSerializer):
    questions = serializers.SerializerMethodField()
    model_url = serializers.SerializerMethodField()
    submitted = serializers.SerializerMethodField()

    class Meta:
        model = Assignment
        fields = [
            "id",
            "code",
            "round",
            "session",
            "position",
            "submitted",
            "model_url",
            "questions",
        ]

    def get_questions(self, assignment: Assignment) -> list[dict]:
        # Every assignment of a study shares its questions: serialise them once per response.
        done = self.context.setdefault("questions_by_study", {})
        if assignment.reader_study_id not in done:
            questions = assignment.reader_study.questions.all()
            done[assignment.reader_study_id] = QuestionSerializer(questions, many=True).data
        return done[assignment.reader_study_id]

    def get_model_url(self, assignment: Assignment) -> str:
        return reverse("reading:model", args=[assignment.pk])

    def get_submitted(self, assignment: Assignment) -> bool:
        return assignment.submitted_at is not None


class SubmitSerializer(serializers.Serializer):
    answers = serializers.DictField(child=serializers.JSONField(), help_text="question id -> value")
    idempotency_key = serializers.RegexField(r"^[A-Za-z0-9-]{8,64}$")
    active_seconds = serializers.FloatField(required=False, default=0)


class ReaderStudySerializer(serializers.ModelSerializer):
    item_count = serializers.IntegerField(read_only=True)
    reader_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = ReaderStudy
        fields = [
            "id",
            "title",
            "study",
            "status",
            "rounds",
            "session_size",
            "washout_days",
            "allow_answer_modification",
            "item_count",
            "reader_count",
            "launched_at",
        ]
