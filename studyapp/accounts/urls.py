from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("coordinator/", views.coordinator_home, name="coordinator-home"),
    path("statistician/", views.statistician_home, name="statistician-home"),
    path("rater/", views.rater_home, name="rater-home"),
]
