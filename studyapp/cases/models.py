"""Studies, cases and their imaging data, reconstructions and bone models.

No protected health information is stored: cases carry pseudonymous codes and
DICOM input is de-identified before it is written (see services).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

CASE_CODE_VALIDATOR = RegexValidator(
    r"^[A-Z0-9][A-Z0-9-]{1,31}$",
    "A case code is 2-32 capital letters, digits or hyphens (a pseudonym, never a name or MRN).",
)


def normalise_case_code(code: str) -> str:
    """Case codes are compared and stored upper-case, without surrounding spaces."""
    return code.strip().upper()


class Bone(models.TextChoices):
    FEMUR = "femur", "Femur"
    TIBIA = "tibia", "Tibia"
    FIBULA = "fibula", "Fibula"
    PATELLA = "patella", "Patella"


BONE_LABELS = {Bone.FEMUR: 1, Bone.TIBIA: 2, Bone.FIBULA: 3, Bone.PATELLA: 4}


class Study(models.Model):
    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    protocol_version = models.CharField(max_length=32, default="1.0")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.name


class Case(models.Model):
    class Side(models.TextChoices):
        LEFT = "L", "Left"
        RIGHT = "R", "Right"

    class Split(models.TextChoices):
        TRAIN = "train", "Training"
        VALIDATION = "validation", "Validation"
        TEST = "test", "Test"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="cases")
    code = models.CharField(max_length=32, validators=[CASE_CODE_VALIDATOR])
    side = models.CharField(max_length=1, choices=Side.choices)
    site = models.CharField(
        max_length=64, blank=True, help_text="Recruiting site (no patient data)."
    )
    split = models.CharField(max_length=16, choices=Split.choices, default=Split.TEST)
    labelled = models.BooleanField(default=False, help_text="Has expert ground truth for training.")
    is_phantom = models.BooleanField(default=False)
    phantom_seed = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "code"]
        constraints = [
            models.UniqueConstraint(fields=["study", "code"], name="unique_case_code_per_study")
        ]

    def __str__(self) -> str:
        return self.code


class CTVolume(models.Model):
    case = models.OneToOneField(Case, on_delete=models.CASCADE, related_name="ct")
    file = models.FileField(upload_to="ct/", max_length=255)
    original_format = models.CharField(max_length=16)  # dicom / nifti / nrrd
    shape = models.JSONField()
    spacing_mm = models.JSONField()
    affine = models.JSONField()
    hu_min = models.FloatField()
    hu_max = models.FloatField()
    sha256 = models.CharField(max_length=64)
    preview = models.ImageField(upload_to="ct-previews/", blank=True, max_length=255)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "CT volume"

    def __str__(self) -> str:
        return f"CT of {self.case}"

    def clean(self) -> None:
        if len(self.shape or []) != 3 or len(self.spacing_mm or []) != 3:
            raise ValidationError("A CT volume is 3D: shape and spacing need three values.")
        if any(float(s) <= 0 for s in self.spacing_mm):
            raise ValidationError("Voxel spacing must be positive.")


class XRayPair(models.Model):
    class Origin(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        SIMULATED = "simulated", "Simulated DRR"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="xray_pairs")
    origin = models.CharField(max_length=16, choices=Origin.choices)
    view1 = models.FileField(upload_to="xray/", max_length=255)
    view2 = models.FileField(upload_to="xray/", max_length=255)
    geometry = models.JSONField(help_text="Full geometry as read and validated.")
    source_to_detector_mm = models.FloatField()
    source_to_isocentre_mm = models.FloatField()
    pixel_spacing_mm = models.JSONField()
    detector_size_px = models.JSONField()
    view1_angle_deg = models.FloatField()
    view2_angle_deg = models.FloatField()
    projection_matrix1 = models.JSONField()
    projection_matrix2 = models.JSONField()
    dose_photons = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "X-ray pair"
        ordering = ["case", "-created_at"]

    def __str__(self) -> str:
        return f"X-ray pair {self.pk} of {self.case} ({self.separation_deg:.0f} deg)"

    @property
    def separation_deg(self) -> float:
        difference = abs(self.view2_angle_deg - self.view1_angle_deg) % 360
        return min(difference, 360 - difference)

    def clean(self) -> None:
        if self.source_to_isocentre_mm >= self.source_to_detector_mm:
            raise ValidationError("The isocentre must lie between the source and the detector.")
        if not 30 <= self.separation_deg <= 90:
            raise ValidationError("The two views must be 30 to 90 degrees apart.")


class Reconstruction(models.Model):
    class Source(models.TextChoices):
        CT = "ct", "CT"
        XRAY = "xray", "X-ray"
        EXPERT = "expert", "Expert ground truth"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="reconstructions")
    source = models.CharField(max_length=8, choices=Source.choices)
    method = models.CharField(max_length=64)
    method_version = models.CharField(max_length=64, blank=True)
    xray_pair = models.ForeignKey(
        XRayPair, null=True, blank=True, on_delete=models.SET_NULL, related_name="reconstructions"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    parameters = models.JSONField(default=dict, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["case", "-created_at"]

    def __str__(self) -> str:
        return f"{self.get_source_display()} reconstruction {self.pk} of {self.case}"

    def clean(self) -> None:
        if self.source == self.Source.XRAY and self.xray_pair_id is None:
            raise ValidationError("An X-ray reconstruction names the X-ray pair it came from.")
        if self.xray_pair_id and self.xray_pair.case_id != self.case_id:
            raise ValidationError("The X-ray pair belongs to another case.")


class BoneModel(models.Model):
    reconstruction = models.ForeignKey(
        Reconstruction, on_delete=models.CASCADE, related_name="bones"
    )
    bone = models.CharField(max_length=8, choices=Bone.choices)
    mesh = models.FileField(upload_to="meshes/", max_length=255)
    vertex_count = models.PositiveIntegerField()
    face_count = models.PositiveIntegerField()
    volume_mm3 = models.FloatField()
    area_mm2 = models.FloatField()
    watertight = models.BooleanField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["reconstruction", "bone"]
        constraints = [
            models.UniqueConstraint(fields=["reconstruction", "bone"], name="one_mesh_per_bone")
        ]

    def __str__(self) -> str:
        return f"{self.get_bone_display()} of {self.reconstruction}"


class GroundTruth(models.Model):
    class Kind(models.TextChoices):
        LABEL_MAP = "labels", "Label map"
        MESHES = "meshes", "Meshes"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="ground_truths")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    label_map = models.FileField(upload_to="ground-truth/", blank=True, max_length=255)
    reconstruction = models.OneToOneField(
        Reconstruction,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        help_text="For mesh ground truth: the expert reconstruction holding the four meshes.",
    )
    made_by = models.CharField(max_length=120, help_text="Who or what produced it (no PHI).")
    label_values = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["case", "-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ground truth of {self.case}"

    def clean(self) -> None:
        if self.kind == self.Kind.LABEL_MAP and not self.label_map:
            raise ValidationError("A label-map ground truth needs its label file.")
        if self.kind == self.Kind.MESHES and self.reconstruction_id is None:
            raise ValidationError("A mesh ground truth needs its expert reconstruction.")


class SurfaceEvaluation(models.Model):
    """One reconstruction measured against a reference reconstruction of the same case."""

    reconstruction = models.ForeignKey(
        Reconstruction, on_delete=models.CASCADE, related_name="evaluations"
    )
    reference = models.ForeignKey(Reconstruction, on_delete=models.CASCADE, related_name="+")
    parameters = models.JSONField(default=dict)
    figure = models.ImageField(upload_to="error-maps/", blank=True, max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["reconstruction", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["reconstruction", "reference"], name="one_evaluation_per_reference"
            )
        ]

    def __str__(self) -> str:
        return f"{self.reconstruction} vs {self.reference}"

    def clean(self) -> None:
        if self.reconstruction.case_id != self.reference.case_id:
            raise ValidationError(
                "A reconstruction is measured against a reference of its own case."
            )
        if self.reconstruction_id == self.reference_id:
            raise ValidationError("A reconstruction cannot be its own reference.")


class SurfaceMetric(models.Model):
    """Long format: one row per bone, metric and variant (see evaluation.surface)."""

    evaluation = models.ForeignKey(
        SurfaceEvaluation, on_delete=models.CASCADE, related_name="metrics"
    )
    bone = models.CharField(max_length=8, choices=Bone.choices)
    metric = models.CharField(max_length=32)
    variant = models.CharField(max_length=120)
    value = models.FloatField()
    unit = models.CharField(max_length=16)

    class Meta:
        ordering = ["evaluation", "bone", "metric", "variant"]
        constraints = [
            models.UniqueConstraint(
                fields=["evaluation", "bone", "metric", "variant"], name="one_value_per_metric"
            )
        ]

    def __str__(self) -> str:
        return f"{self.bone} {self.metric} ({self.variant}) = {self.value:.3g} {self.unit}"


class AlignmentResult(models.Model):
    """Landmarks, alignment angles, CPAK and the HTO plan measured on one reconstruction."""

    reconstruction = models.OneToOneField(
        Reconstruction, on_delete=models.CASCADE, related_name="alignment"
    )
    report = models.JSONField(
        help_text="evaluation.alignment report: angles, flags, landmarks, plan"
    )
    overlay = models.ImageField(upload_to="alignment/", blank=True, max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["reconstruction"]

    def __str__(self) -> str:
        return f"Alignment of {self.reconstruction}"

    @property
    def angles(self) -> dict:
        return self.report.get("angles", {})

    @property
    def approximate(self) -> dict:
        return self.report.get("flags", {}).get("approximate", {})

    @property
    def missing(self) -> dict:
        return self.report.get("flags", {}).get("missing", {})
