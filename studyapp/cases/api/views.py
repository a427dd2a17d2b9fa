"""Studies, cases and reconstructions over the API. Writes go through the services."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from studyapp.accounts.permissions import roles_permission
from studyapp.accounts.roles import Role
from studyapp.cases import selectors, services
from studyapp.cases.models import Reconstruction, Study, XRayPair
from studyapp.jobs.api.serializers import JobSerializer

from .serializers import (
    CaseSerializer,
    CTUploadSerializer,
    CTVolumeSerializer,
    GroundTruthSerializer,
    LabelMapUploadSerializer,
    ReconstructCTSerializer,
    ReconstructionSerializer,
    ReconstructXRaySerializer,
    SimulateXRaySerializer,
    StudySerializer,
    XRayPairSerializer,
    XRayUploadSerializer,
)

StaffOnly = roles_permission(Role.COORDINATOR, Role.ADMIN)
StaffOrStatistician = roles_permission(Role.COORDINATOR, Role.ADMIN, Role.STATISTICIAN)
READ_ACTIONS = {"list", "retrieve"}


class ReadForStatisticiansMixin:
    def get_permissions(self):
        allowed = StaffOrStatistician if self.action in READ_ACTIONS else StaffOnly
        return [allowed()]


class StudyViewSet(
    ReadForStatisticiansMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet
):
    serializer_class = StudySerializer
    ordering_fields = ["name", "created_at"]

    def get_queryset(self):
        return Study.objects.all()

    def perform_create(self, serializer):
        try:
            serializer.instance = services.create_study(**serializer.validated_data)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from exc


class CaseViewSet(
    ReadForStatisticiansMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet
):
    serializer_class = CaseSerializer
    filterset_fields = ["study", "side", "split", "labelled"]
    ordering_fields = ["code", "created_at"]

    def get_queryset(self):
        return selectors.all_cases()

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        study = data.pop("study")
        try:
            serializer.instance = services.create_case(study, **data)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from exc
        except IntegrityError as exc:
            raise ValidationError(
                {"code": ["A case with this code already exists in the study."]}
            ) from exc

    def _upload(self, request, serializer_class, handler, response_serializer):
        case = self.get_object()
        payload = serializer_class(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            stored = handler(case, payload.validated_data, request.user.pk)
        except services.UploadRejected as exc:
            raise ValidationError({"file": [str(exc)]}) from exc
        return Response(response_serializer(stored).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request={"multipart/form-data": CTUploadSerializer}, responses=CTVolumeSerializer
    )
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser], url_path="upload-ct")
    def upload_ct(self, request, pk=None):
        return self._upload(
            request,
            CTUploadSerializer,
            lambda case, data, user_id: services.upload_ct(case, data["file"], user_id=user_id),
            CTVolumeSerializer,
        )

    @extend_schema(
        request={"multipart/form-data": XRayUploadSerializer}, responses=XRayPairSerializer
    )
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser], url_path="upload-xray")
    def upload_xray(self, request, pk=None):
        return self._upload(
            request,
            XRayUploadSerializer,
            lambda case, data, user_id: services.upload_xray_pair(
                case, data["view1"], data["view2"], data["geometry"], user_id=user_id
            ),
            XRayPairSerializer,
        )

    @extend_schema(
        request={"multipart/form-data": LabelMapUploadSerializer}, responses=GroundTruthSerializer
    )
    @action(
        detail=True, methods=["post"], parser_classes=[MultiPartParser], url_path="upload-labels"
    )
    def upload_labels(self, request, pk=None):
        return self._upload(
            request,
            LabelMapUploadSerializer,
            lambda case, data, user_id: services.upload_label_map(
                case, data["file"], data["made_by"], user_id=user_id
            ),
            GroundTruthSerializer,
        )

    @extend_schema(request=SimulateXRaySerializer, responses={202: JobSerializer})
    @action(detail=True, methods=["post"], url_path="simulate-xray")
    def simulate_xray(self, request, pk=None):
        case = self.get_object()
        payload = SimulateXRaySerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            job = services.request_drr_simulation(
                case, user_id=request.user.pk, **payload.validated_data
            )
        except services.UploadRejected as exc:
            raise ValidationError({"non_field_errors": [str(exc)]}) from exc
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=ReconstructCTSerializer, responses={202: JobSerializer})
    @action(detail=True, methods=["post"], url_path="reconstruct-ct")
    def reconstruct_ct(self, request, pk=None):
        case = self.get_object()
        payload = ReconstructCTSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            _, job = services.request_ct_reconstruction(
                case, payload.validated_data["method"], request.user.pk
            )
        except services.UploadRejected as exc:
            raise ValidationError({"non_field_errors": [str(exc)]}) from exc
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=ReconstructXRaySerializer, responses={202: JobSerializer})
    @action(detail=True, methods=["post"], url_path="reconstruct-xray")
    def reconstruct_xray(self, request, pk=None):
        case = self.get_object()
        payload = ReconstructXRaySerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        pair = XRayPair.objects.filter(pk=payload.validated_data["xray_pair"], case=case).first()
        if pair is None:
            raise ValidationError({"xray_pair": ["No such X-ray pair in this case."]})
        _, job = services.request_xray_reconstruction(case, pair, request.user.pk)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ReconstructionViewSet(ReadForStatisticiansMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = ReconstructionSerializer
    filterset_fields = ["case", "source", "status"]

    def get_queryset(self):
        return Reconstruction.objects.select_related("case").prefetch_related("bones")
