from django.contrib import admin

from .models import BoneModel, Case, CTVolume, GroundTruth, Reconstruction, Study, XRayPair


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ["name", "protocol_version", "created_at"]
    search_fields = ["name"]


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["code", "study", "side", "split", "labelled", "is_phantom"]
    list_filter = ["study", "side", "split", "labelled", "is_phantom"]
    search_fields = ["code"]


@admin.register(CTVolume)
class CTVolumeAdmin(admin.ModelAdmin):
    list_display = ["case", "original_format", "hu_min", "hu_max", "created_at"]
    readonly_fields = ["sha256", "shape", "spacing_mm", "affine"]


@admin.register(XRayPair)
class XRayPairAdmin(admin.ModelAdmin):
    list_display = ["case", "origin", "view1_angle_deg", "view2_angle_deg", "created_at"]
    list_filter = ["origin"]


class BoneModelInline(admin.TabularInline):
    model = BoneModel
    extra = 0
    readonly_fields = [
        "bone",
        "vertex_count",
        "face_count",
        "volume_mm3",
        "area_mm2",
        "watertight",
        "sha256",
    ]


@admin.register(Reconstruction)
class ReconstructionAdmin(admin.ModelAdmin):
    list_display = ["case", "source", "method", "status", "finished_at"]
    list_filter = ["source", "status", "method"]
    inlines = [BoneModelInline]


@admin.register(GroundTruth)
class GroundTruthAdmin(admin.ModelAdmin):
    list_display = ["case", "kind", "made_by", "created_at"]
