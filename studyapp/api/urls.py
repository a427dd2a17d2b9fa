"""The API root: every app's router plus token auth and the OpenAPI schema/docs."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter

from studyapp.analysis.api import views as analysis
from studyapp.cases.api.views import CaseViewSet, ReconstructionViewSet, StudyViewSet
from studyapp.jobs.api.views import JobViewSet
from studyapp.reading.api.views import RaterAssignmentViewSet, ReaderStudyViewSet
from studyapp.trials.api.views import GuideTrialViewSet

router = DefaultRouter()
router.register("studies", StudyViewSet, basename="study")
router.register("cases", CaseViewSet, basename="case")
router.register("reconstructions", ReconstructionViewSet, basename="reconstruction")
router.register("jobs", JobViewSet, basename="job")
router.register("reading/assignments", RaterAssignmentViewSet, basename="reading-assignment")
router.register("reader-studies", ReaderStudyViewSet, basename="reader-study")
router.register("guide-trials", GuideTrialViewSet, basename="guide-trial")
for prefix, viewset, basename in analysis.ROUTES:
    router.register(prefix, viewset, basename=basename)

urlpatterns = [
    path("", include(router.urls)),
    path("token/", obtain_auth_token, name="api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
