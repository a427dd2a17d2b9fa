from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from studyapp.cases.models import Case

from .models import BLINDED_FIELDS, OUTCOME_FIELDS, GuideTrial, Placement


class TrialForm(forms.ModelForm):
    class Meta:
        model = GuideTrial
        fields = ("study", "title", "description")


class KneeForm(forms.Form):
    case = forms.ModelChoiceField(queryset=Case.objects.none())

    def __init__(self, *args, trial: GuideTrial, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["case"].queryset = Case.objects.filter(study=trial.study).order_by("code")


class MemberForm(forms.Form):
    user = forms.ModelChoiceField(queryset=get_user_model().objects.order_by("username"))
    is_surgeon = forms.BooleanField(required=False, label="Surgeon")
    is_assessor = forms.BooleanField(required=False, label="Blinded outcome assessor")


_LABELS = {
    "time_s": "Time to place (s)",
    "fit": "Fit (1-5)",
    "stability": "Stability (1-5)",
    "accuracy": "Accuracy (1-5)",
    "planned_deg": "Planned correction (degrees)",
    "achieved_deg": "Achieved correction (degrees)",
    "deviation_deg": "Cut-plane deviation (degrees)",
    "deviation_mm": "Cut-plane offset (mm)",
}


class OutcomeForm(forms.ModelForm):
    """Unblinded entry (coordinators): every outcome."""

    class Meta:
        model = Placement
        fields = OUTCOME_FIELDS
        labels = _LABELS
        error_messages = {
            name: {"invalid": "Enter a number.", "invalid_choice": "Choose a listed value."}
            for name in OUTCOME_FIELDS
        }


class BlindedOutcomeForm(forms.ModelForm):
    """Assessor entry: the guide source is neither a field nor shown."""

    class Meta:
        model = Placement
        fields = BLINDED_FIELDS
        labels = _LABELS


class ImportForm(forms.Form):
    file = forms.FileField(help_text="CSV, UTF-8, one row per placement.")
