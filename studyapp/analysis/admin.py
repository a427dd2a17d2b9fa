from django.contrib import admin

from .models import AnalysisRun, Export, Report


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "reader_study",
        "status",
        "formats",
        "size_bytes",
        "created_by",
        "created_at",
    ]
    list_filter = ["status"]
    readonly_fields = ["sha256", "file", "row_counts", "job", "error"]


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["id", "reader_study", "status", "pdf_engine", "created_at", "finished_at"]
    list_filter = ["status", "pdf_engine"]
    readonly_fields = ["html", "pdf", "html_sha256", "pdf_sha256", "job", "error"]


@admin.register(AnalysisRun)
class AnalysisRunAdmin(admin.ModelAdmin):
    list_display = ["id", "reader_study", "report", "created_at"]
    readonly_fields = ["results", "options"]
