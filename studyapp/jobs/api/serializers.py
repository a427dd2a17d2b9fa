from rest_framework import serializers

from studyapp.jobs.models import Job


class JobSerializer(serializers.ModelSerializer):
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "case",
            "state",
            "progress",
            "message",
            "error",
            "attempts",
            "result",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
        ]
        read_only_fields = fields
