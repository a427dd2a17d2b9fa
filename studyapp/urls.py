from django.contrib import admin
from django.urls import include, path

from studyapp.media_views import protected_media

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("studyapp.api.urls")),
    path("", include("studyapp.accounts.urls")),
    path("", include("studyapp.cases.urls")),
    path("", include("studyapp.jobs.urls")),
    path("", include("studyapp.reading.urls")),
    path("", include("studyapp.analysis.urls")),
    path("", include("studyapp.trials.urls")),
    # Media is never public: study staff only (raters get blinded copies through the reading app).
    path("media/<path:relative_path>", protected_media, name="protected-media"),
]

handler403 = "studyapp.errors.forbidden"
handler404 = "studyapp.errors.not_found"
