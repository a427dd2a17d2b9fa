from django import forms

from .models import Case, Study, normalise_case_code
from .services import CT_METHODS


class StudyForm(forms.ModelForm):
    class Meta:
        model = Study
        fields = ["name", "description", "protocol_version"]


class CaseForm(forms.ModelForm):
    class Meta:
        model = Case
        fields = ["code", "side", "site", "split", "labelled"]

    def clean_code(self) -> str:
        return normalise_case_code(self.cleaned_data["code"])


class CTUploadForm(forms.Form):
    file = forms.FileField(
        help_text="A zipped DICOM series, NIfTI (.nii, .nii.gz) or NRRD (.nrrd). Patient data is removed on arrival."
    )


class XRayPairUploadForm(forms.Form):
    view1 = forms.FileField(help_text="First view: DICOM, PNG, TIFF or NPY.")
    view2 = forms.FileField(help_text="Second view: DICOM, PNG, TIFF or NPY.")
    geometry = forms.FileField(help_text="geometry.json with both views' projection geometry.")


class LabelMapUploadForm(forms.Form):
    file = forms.FileField(
        help_text="Label map (NIfTI/NRRD): 0 background, 1 femur, 2 tibia, 3 fibula, 4 patella."
    )
    made_by = forms.CharField(
        max_length=120, help_text="Who made it (initials or tool; no patient data)."
    )


class MeshesUploadForm(forms.Form):
    femur = forms.FileField()
    tibia = forms.FileField()
    fibula = forms.FileField()
    patella = forms.FileField()
    made_by = forms.CharField(max_length=120)


class SimulateDRRForm(forms.Form):
    separation_deg = forms.FloatField(
        label="Separation (degrees)", initial=90, min_value=30, max_value=90
    )
    dose_photons = forms.FloatField(
        label="Dose (photons per pixel)",
        initial=1e5,
        min_value=1e2,
        max_value=1e8,
        help_text="Lower is noisier; the reference study used 1e5.",
    )
    size_px = forms.IntegerField(
        label="Detector size (pixels)", initial=256, min_value=64, max_value=1024
    )
    seed = forms.IntegerField(initial=0, min_value=0)


class ReconstructCTForm(forms.Form):
    method = forms.ChoiceField(choices=list(CT_METHODS.items()))
