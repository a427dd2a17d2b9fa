from rest_framework import serializers

from studyapp.cases.models import (
    BoneModel,
    Case,
    CTVolume,
    GroundTruth,
    Reconstruction,
    Study,
    XRayPair,
)
from studyapp.cases.services import CT_METHODS


class StudySerializer(serializers.ModelSerializer):
    class Meta:
        model = Study
        fields = ["id", "name", "description", "protocol_version", "created_at"]
        read_only_fields = ["id", "created_at"]


class CTVolumeSerializer(serializers.ModelSerializer):
    class Meta:
        model = CTVolume
        fields = [
            "original_format",
            "shape",
            "spacing_mm",
            "affine",
            "hu_min",
            "hu_max",
            "sha256",
            "created_at",
        ]
        read_only_fields = fields


class XRayPairSerializer(serializers.ModelSerializer):
    separation_deg = serializers.FloatField(read_only=True)

    class Meta:
        model = XRayPair
        fields = [
            "id",
            "origin",
            "source_to_detector_mm",
            "source_to_isocentre_mm",
            "pixel_spacing_mm",
            "detector_size_px",
            "view1_angle_deg",
            "view2_angle_deg",
            "separation_deg",
            "projection_matrix1",
            "projection_matrix2",
            "dose_photons",
            "created_at",
        ]
        read_only_fields = fields


class CaseSerializer(serializers.ModelSerializer):
    ct = CTVolumeSerializer(read_only=True)
    # Normalised and validated by the service (see models.normalise_case_code).
    code = serializers.CharField(max_length=40)

    class Meta:
        model = Case
        fields = [
            "id",
            "study",
            "code",
            "side",
            "site",
            "split",
            "labelled",
            "is_phantom",
            "ct",
            "created_at",
        ]
        read_only_fields = ["id", "is_phantom", "ct", "created_at"]


class BoneModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = BoneModel
        fields = [
            "bone",
            "vertex_count",
            "face_count",
            "volume_mm3",
            "area_mm2",
            "watertight",
            "sha256",
        ]
        read_only_fields = fields


class ReconstructionSerializer(serializers.ModelSerializer):
    bones = BoneModelSerializer(many=True, read_only=True)

    class Meta:
        model = Reconstruction
        fields = [
            "id",
            "case",
            "source",
            "method",
            "method_version",
            "xray_pair",
            "status",
            "parameters",
            "summary",
            "timings",
            "error",
            "started_at",
            "finished_at",
            "bones",
        ]
        read_only_fields = fields


class CTUploadSerializer(serializers.Serializer):
    file = serializers.FileField()


class XRayUploadSerializer(serializers.Serializer):
    view1 = serializers.FileField()
    view2 = serializers.FileField()
    geometry = serializers.FileField()


class LabelMapUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    made_by = serializers.CharField(max_length=120)


class GroundTruthSerializer(serializers.ModelSerializer):
    class Meta:
        model = GroundTruth
        fields = ["id", "case", "kind", "made_by", "label_values", "reconstruction", "created_at"]
        read_only_fields = fields


class SimulateXRaySerializer(serializers.Serializer):
    separation_deg = serializers.FloatField(min_value=30, max_value=90, default=90)
    dose_photons = serializers.FloatField(
        min_value=1e2, max_value=1e8, allow_null=True, default=1e5
    )
    size_px = serializers.IntegerField(min_value=64, max_value=1024, default=256)
    seed = serializers.IntegerField(min_value=0, default=0)


class ReconstructCTSerializer(serializers.Serializer):
    method = serializers.ChoiceField(choices=list(CT_METHODS), default="classical")


class ReconstructXRaySerializer(serializers.Serializer):
    xray_pair = serializers.IntegerField(help_text="id of one of the case's X-ray pairs")
