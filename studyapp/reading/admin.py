from django.contrib import admin

from .models import Answer, Assignment, AuditEvent, Item, Question, ReaderStudy


class QuestionInline(admin.TabularInline):
    model = Question
    extra = 0


@admin.register(ReaderStudy)
class ReaderStudyAdmin(admin.ModelAdmin):
    list_display = ["title", "study", "status", "rounds", "session_size", "washout_days"]
    inlines = [QuestionInline]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["code", "reader_study", "reconstruction", "is_training", "blinded_bytes"]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "reader_study",
        "reader",
        "round",
        "session",
        "position",
        "submitted_at",
    ]
    list_filter = ["reader_study"]


@admin.register(Answer)
class AnswerAdmin(admin.ModelAdmin):
    list_display = ["pk", "reader", "item", "question", "round", "value"]
    readonly_fields = ["assignment", "reader", "item", "question", "round", "value"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only."""

    list_display = ["at", "action", "actor", "reader", "item", "question", "old_value", "new_value"]
    list_filter = ["action", "reader_study"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False
