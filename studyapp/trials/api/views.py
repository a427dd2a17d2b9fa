"""Read-only API of guide trials: trials, and their tidy outcome table (de-blinded data)."""

from __future__ import annotations

from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from studyapp.accounts.permissions import roles_permission
from studyapp.accounts.roles import DATA_READERS

from ..models import GuideTrial
from ..selectors import outcomes_frame


class GuideTrialSerializer(serializers.ModelSerializer):
    class Meta:
        model = GuideTrial
        fields = ("id", "study", "title", "description", "seed", "randomised_at", "created_at")


class GuideTrialViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = GuideTrial.objects.order_by("-created_at")
    serializer_class = GuideTrialSerializer
    permission_classes = [roles_permission(*DATA_READERS)]

    @action(detail=True, methods=["get"])
    def outcomes(self, request, pk=None):
        frame = outcomes_frame(trial=self.get_object())
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        return Response(records)
