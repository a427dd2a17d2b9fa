from rest_framework import mixins, viewsets

from studyapp.accounts.permissions import roles_permission
from studyapp.accounts.roles import Role
from studyapp.jobs import selectors

from .serializers import JobSerializer


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Background jobs and their progress (coordinators and admins)."""

    serializer_class = JobSerializer
    permission_classes = [roles_permission(Role.COORDINATOR, Role.ADMIN)]
    filterset_fields = ["state", "kind", "case"]
    ordering_fields = ["created_at", "finished_at"]

    def get_queryset(self):
        return selectors.all_jobs()
