"""Reading over the API: raters read and submit their own assignments; staff monitor."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from studyapp.accounts.permissions import roles_permission
from studyapp.accounts.roles import Role
from studyapp.reading import selectors, services
from studyapp.reading.models import Assignment

from .serializers import RaterAssignmentSerializer, ReaderStudySerializer, SubmitSerializer

RaterOnly = roles_permission(Role.RATER)
StaffOrStatistician = roles_permission(Role.COORDINATOR, Role.ADMIN, Role.STATISTICIAN)


class RaterAssignmentViewSet(viewsets.ReadOnlyModelViewSet):
    """The caller's open assignments only; anything else is 404."""

    serializer_class = RaterAssignmentSerializer
    permission_classes = [RaterOnly]
    queryset = Assignment.objects.none()  # typed path parameters for the schema; see get_queryset
    filter_backends: list = []

    def get_queryset(self):
        user = self.request.user
        reachable: set[int] = set()
        for study in selectors.studies_of_reader(user):
            reachable |= services.reachable_assignment_ids(study, user.pk)
        return (
            Assignment.objects.filter(pk__in=reachable, reader=user)
            .select_related("reader_study")
            .prefetch_related("reader_study__questions")
            .order_by("session", "position")
        )

    @extend_schema(request=SubmitSerializer, responses={200: dict})
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        payload = SubmitSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        try:
            result = services.submit(
                request.user,
                int(pk),
                {str(k): v for k, v in data["answers"].items()},
                idempotency_key=data["idempotency_key"],
                active_seconds=data["active_seconds"],
            )
        except services.NotAvailable:
            raise NotFound("No such item.") from None
        except services.InvalidAnswers as exc:
            return Response(
                {"answers": {str(k): v for k, v in exc.errors.items()}},
                status=status.HTTP_400_BAD_REQUEST,
            )
        except services.AnswerLocked as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except services.ReadingError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(result)


class ReaderStudyViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ReaderStudySerializer
    permission_classes = [StaffOrStatistician]

    def get_queryset(self):
        return selectors.reader_studies().order_by("-created_at")

    @action(detail=True, methods=["get"])
    def progress(self, request, pk=None):
        return Response(selectors.progress_per_reader(self.get_object()))
