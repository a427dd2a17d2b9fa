"""Coordinator forms of reader studies (reading answers are validated by services)."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from studyapp.accounts.roles import Role

from .models import Question, ReaderStudy


class ReaderStudyForm(forms.ModelForm):
    class Meta:
        model = ReaderStudy
        fields = [
            "study",
            "title",
            "description",
            "rounds",
            "session_size",
            "washout_days",
            "allow_answer_modification",
        ]


class SettingsForm(forms.ModelForm):
    class Meta:
        model = ReaderStudy
        fields = ["rounds", "session_size", "washout_days", "allow_answer_modification"]


class QuestionForm(forms.Form):
    text = forms.CharField(max_length=300)
    kind = forms.ChoiceField(choices=Question.Kind.choices)
    required = forms.BooleanField(required=False, initial=True)
    options = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line: five anchors (1 to 5) for Likert, the options for a choice.",
    )
    minimum = forms.FloatField(required=False)
    maximum = forms.FloatField(required=False)
    step = forms.FloatField(required=False)

    def clean_options(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["options"].splitlines() if line.strip()]


class ReadersForm(forms.Form):
    readers = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.none(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["readers"].queryset = (
            get_user_model()
            .objects.filter(groups__name=Role.RATER.value, is_active=True)
            .order_by("username")
        )


class AddItemsForm(forms.Form):
    reconstructions = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    training = forms.BooleanField(required=False, help_text="Training/calibration items.")

    def __init__(self, *args, candidates=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.candidates = {str(r.pk): r for r in candidates}
        self.fields["reconstructions"].choices = [
            (str(r.pk), f"{r.case.code} · {r.get_source_display()} · {r.method}")
            for r in candidates
        ]

    def chosen(self) -> list:
        return [self.candidates[pk] for pk in self.cleaned_data["reconstructions"]]
